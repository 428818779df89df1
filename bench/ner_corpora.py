"""Benchmark: how does the medical NER recipe score on NCBI-disease and BC5CDR against the published
110M-parameter anchors and a run_ner-style peer script?

Official train/devel/test splits, packaged MiniLM base, tuning methods full and lora; the peer runs
on NCBI-disease. Each run is `domainft run recipes/medical_ner.yaml --set data.path=<corpus>` in its
own process, one after the other. Prints a Markdown table and writes bench/out/ner_corpora.json
after every run.

    python bench/ner_corpora.py [--corpora ncbi_disease bc5cdr] [--methods full lora] [--skip-peer] [--readme]
"""
from __future__ import annotations

import argparse
import json

from runner import (
    DATASETS,
    NER_ANCHORS,
    OUT,
    PEER_NER,
    base_path,
    run_recipe,
    run_script_json,
    save_results,
    write_readme_section,
)

README_SECTION = "ner_corpora.py"


def run_domainft(corpus: str, method: str, overrides: list[str]) -> dict:
    m = run_recipe("medical_ner", [f"data.path={DATASETS / corpus}", "base=minilm", f"tuning.method={method}",
                                   *overrides], OUT / f"ner_{corpus}_{method}")
    return {"corpus": corpus, "tool": f"domainft {method}", "test_f1": m["test"]["f1"],
            "per_type": {t: v["f1"] for t, v in m["test"]["per_class"].items()},
            "train_wall_s": m["train"]["wall_time_s"], "epochs": m["train"]["epochs_run"],
            "lr": m["train"]["lr"], "peak_rss_mb": m["train"]["peak_rss_mb"],
            "windowed": m["data"]["truncated"]["test"]}


def run_peer(corpus: str) -> dict:
    out, _ = run_script_json(PEER_NER,
                             [DATASETS / corpus, base_path("minilm"), OUT / "peer_ner_checkpoints"])
    return {"corpus": corpus, **out}


def table(rows: list[dict]) -> str:
    lines = ["| corpus | tool | test entity F1 | per type | anchor BERT-base / BioBERT (110M) "
             "| train time (s) | epochs | peak memory (MB) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        per_type = ", ".join(f"{t} {100 * f:.1f}" for t, f in sorted(r.get("per_type", {}).items())) or "–"
        anchors = ", ".join(f"{t} {a[0]} / {a[1]}" for t, a in NER_ANCHORS[r["corpus"]].items())
        lines.append(f"| {r['corpus']} | {r['tool']} | {100 * r['test_f1']:.1f} | {per_type} | {anchors} "
                     f"| {r['train_wall_s']:.0f} | {r['epochs']:.0f} | {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpora", nargs="+", default=["ncbi_disease", "bc5cdr"])
    parser.add_argument("--methods", nargs="+", default=["full", "lora"])
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--readme", action="store_true", help=f"also write the table into bench/README.md "
                                                               f"(its bench/{README_SECTION} block)")
    args = parser.parse_args()
    jobs = [(c, m) for m in args.methods for c in args.corpora]
    if not args.skip_peer:
        jobs.insert(1, ("ncbi_disease", "peer"))
    rows = []
    for corpus, method in jobs:
        row = run_peer(corpus) if method == "peer" else run_domainft(corpus, method, args.overrides)
        rows.append(row)
        print(json.dumps(row), flush=True)
        save_results(OUT / "ner_corpora.json", rows, indent=2)
    print("\n" + table(rows))
    if args.readme:
        write_readme_section(README_SECTION, table(rows))


if __name__ == "__main__":
    main()
