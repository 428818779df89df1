"""Benchmark: what do the four tuning methods cost and give on Financial PhraseBank 50Agree?

Same split as bench/finance_phrasebank.py (duplicates and conflicting labels removed, stratified
80/10/10, seed 13), packaged MiniLM base, the finance recipe with only `tuning.method` changed
(each method at its default learning rate). Runs one after the other, each in its own process;
prints a Markdown table and writes bench/out/tuning_methods.json.

    python bench/tuning_methods.py [--methods full lora ...] [--set FIELD=VALUE ...] [--readme]
"""
from __future__ import annotations

import argparse
import json

from runner import OUT, run_finance, save_results, write_readme_section

METHODS = ["full", "freeze", "lora", "adapter"]
README_SECTION = "tuning_methods.py"


def table(rows: list[dict]) -> str:
    full = next((r for r in rows if r["tool"] == "full"), None)
    lines = ["| method | lr | test macro-F1 | Δ vs full | trainable params | % of full | train time (s) "
             "| epochs | peak memory (MB) | saved (MB) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        delta = f"{100 * (r['test_macro_f1'] - full['test_macro_f1']):+.1f}" if full else "–"
        share = f"{100 * r['trainable_params'] / full['trainable_params']:.2f}%" if full else "–"
        lines.append(f"| {r['tool']} | {r['lr']:g} | {r['test_macro_f1']:.4f} | {delta} | {r['trainable_params']:,} "
                     f"| {share} | {r['train_wall_s']:.0f} | {r['epochs']:.0f} | {r['peak_rss_mb']:.0f} "
                     f"| {r['saved_mb']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--readme", action="store_true", help=f"also write the table into bench/README.md "
                                                               f"(its bench/{README_SECTION} block)")
    args = parser.parse_args()
    rows = []
    for method in args.methods:
        row = run_finance([f"tuning.method={method}", *args.overrides], f"methods_{method}", method)
        rows.append(row)
        print(json.dumps(row), flush=True)
        save_results(OUT / "tuning_methods.json", rows, indent=2)
    print("\n" + table(rows))
    if args.readme:
        write_readme_section(README_SECTION, table(rows))


if __name__ == "__main__":
    main()
