"""Benchmark: the medical NER recipe on NCBI-disease and BC5CDR (official train/devel/test), packaged
MiniLM base, tuning methods full and lora; plus a run_ner-style peer script on NCBI-disease.

Each run is `domainft run recipes/medical_ner.yaml --set data.path=<corpus>` in its own process,
one after the other. Prints a Markdown table and writes bench/out/ner_corpora.json after every run.

    python bench/ner_corpora.py [--corpora ncbi_disease bc5cdr] [--methods full lora] [--skip-peer]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT.parent / "shared" / "datasets"
OUT = ROOT / "bench" / "out"
# Entity-level test F1 with 110M bases, from the issue: (BERT-base, BioBERT v1.1).
ANCHORS = {"ncbi_disease": {"Disease": (85.3, 88.3)},
           "bc5cdr": {"Disease": (83.3, 86.4), "Chemical": (91.8, 93.0)}}


def run_domainft(corpus: str, method: str, overrides: list[str]) -> dict:
    run_dir = OUT / f"ner_{corpus}_{method}"
    cmd = [sys.executable, "-m", "domainft", "run", str(ROOT / "recipes" / "medical_ner.yaml"), "--quiet",
           "--set", f"data.path={DATASETS / corpus}", "--set", "base=minilm", "--set", f"tuning.method={method}",
           "--set", f"output.dir={run_dir}", "--set", "output.overwrite=true",
           *[a for o in overrides for a in ("--set", o)]]
    subprocess.run(cmd, check=True, cwd=ROOT)
    m = json.loads((run_dir / "metrics.json").read_text())
    return {"corpus": corpus, "tool": f"domainft {method}", "test_f1": m["test"]["f1"],
            "per_type": {t: v["f1"] for t, v in m["test"]["per_class"].items()},
            "train_wall_s": m["train"]["wall_time_s"], "epochs": m["train"]["epochs_run"],
            "lr": m["train"]["lr"], "peak_rss_mb": m["train"]["peak_rss_mb"],
            "windowed": m["data"]["truncated"]["test"]}


def run_peer(corpus: str) -> dict:
    base = subprocess.run([sys.executable, "-c", "from domainft.bases import resolve_base;"
                           "print(resolve_base(['minilm']).path)"], capture_output=True, text=True,
                          check=True, cwd=ROOT).stdout.strip()
    cmd = [sys.executable, str(ROOT / "bench" / "peer_ner_script.py"), str(DATASETS / corpus), base,
           str(OUT / "peer_ner_checkpoints")]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return {"corpus": corpus, **json.loads(proc.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpora", nargs="+", default=["ncbi_disease", "bc5cdr"])
    parser.add_argument("--methods", nargs="+", default=["full", "lora"])
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    jobs = [(c, m) for m in args.methods for c in args.corpora]
    if not args.skip_peer:
        jobs.insert(1, ("ncbi_disease", "peer"))
    rows = []
    for corpus, method in jobs:
        row = run_peer(corpus) if method == "peer" else run_domainft(corpus, method, args.overrides)
        rows.append(row)
        print(json.dumps(row), flush=True)
        (OUT / "ner_corpora.json").write_text(json.dumps(rows, indent=2))
    print_table(rows)


def print_table(rows: list[dict]) -> None:
    print("\n| corpus | tool | test entity F1 | per type | anchor BERT-base / BioBERT (110M) "
          "| train time (s) | epochs | peak memory (MB) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        per_type = ", ".join(f"{t} {100 * f:.1f}" for t, f in sorted(r.get("per_type", {}).items())) or "–"
        anchors = ", ".join(f"{t} {a[0]} / {a[1]}" for t, a in ANCHORS[r["corpus"]].items())
        print(f"| {r['corpus']} | {r['tool']} | {100 * r['test_f1']:.1f} | {per_type} | {anchors} "
              f"| {r['train_wall_s']:.0f} | {r['epochs']:.0f} | {r['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
