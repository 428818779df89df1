"""Benchmark: is `domainft run` as good and as fast as a plain Trainer script on Financial PhraseBank 50Agree?

Same split for both (exact duplicates and conflicting labels removed, stratified 80/10/10, seed 13,
made by domainft's loader), same packaged MiniLM base. Each tool trains in its own process, one
after the other; prints a Markdown table and writes bench/out/finance_phrasebank.json.

    python bench/finance_phrasebank.py [--set FIELD=VALUE ...]   # overrides go to the domainft run
                                       [--skip-peer] [--readme]
"""
from __future__ import annotations

import argparse
import json

from runner import (
    FINANCE_RECIPE,
    FPB,
    OUT,
    PEER_TRAINER,
    base_path,
    run_finance,
    run_script_json,
    save_results,
    write_readme_section,
    write_split,
)

README_SECTION = "finance_phrasebank.py"


def run_peer(split_dir) -> dict:
    """The plain Trainer script on the same split and base; its JSON line."""
    return run_script_json(PEER_TRAINER, [split_dir, base_path("minilm"), OUT / "peer_checkpoints"])[0]


def table(rows: list[dict]) -> str:
    lines = ["| tool | test accuracy | test macro-F1 | train wall time (s) | peak memory (MB) |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['tool']} | {r['test_accuracy']:.4f} | {r['test_macro_f1']:.4f} | "
                     f"{r['train_wall_s']:.0f} | {r['peak_rss_mb']:.0f} |")
    if len(rows) == 2:
        lines.append(f"\ntime ratio domainft/peer: {rows[1]['train_wall_s'] / rows[0]['train_wall_s']:.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--readme", action="store_true", help=f"also write the table into bench/README.md "
                                                               f"(its bench/{README_SECTION} block)")
    args = parser.parse_args()
    from domainft.recipe import Recipe

    split_dir = write_split(Recipe.from_yaml(FINANCE_RECIPE, [f"data.path={FPB}", *args.overrides]))
    rows = []
    if not args.skip_peer:
        rows.append(run_peer(split_dir))
        print(json.dumps(rows[-1]), flush=True)
    rows.append(run_finance(args.overrides))
    print(json.dumps(rows[-1]), flush=True)
    save_results(OUT / "finance_phrasebank.json", rows, indent=2)
    print("\n" + table(rows))
    if args.readme:
        write_readme_section(README_SECTION, table(rows))


if __name__ == "__main__":
    main()
