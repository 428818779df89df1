"""Benchmark: `domainft run` vs a plain Trainer script on Financial PhraseBank 50Agree.

Same split for both (exact duplicates and conflicting labels removed, stratified 80/10/10, seed 13,
made by domainft's loader), same packaged MiniLM base. Each tool trains in its own process, one
after the other; prints a Markdown table and writes bench/out/finance_phrasebank.json.

    python bench/finance_phrasebank.py [--set FIELD=VALUE ...]   # overrides go to the domainft run
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FPB = ROOT.parent / "shared" / "datasets" / "financial_phrasebank" / "Sentences_50Agree.txt"
OUT = ROOT / "bench" / "out"  # run directories, splits, checkpoints: large, not committed
# Results JSON of bench/recipes.py and bench/validation_sweep.py: small and committed, so the README
# tables can be re-rendered from a fresh clone and a later session resumes or extends them.
RESULTS = ROOT / "bench" / "results"


def write_split(recipe, split_dir: Path = OUT / "fpb50_split") -> Path:
    """The recipe's train/validation/test as domainft loads them (texts rendered by the recipe's
    template, deduplicated, split) to SPLIT_DIR/{name}.csv (text,label) for a peer script, and the
    recipe's label order to SPLIT_DIR/labels.json. Classification recipes."""
    from domainft.tasks import get_task

    data = get_task(recipe.task).load_data(recipe.data)
    split_dir.mkdir(parents=True, exist_ok=True)
    for name, examples in data.splits().items():
        with open(split_dir / f"{name}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            w.writerows((e.text, e.label) for e in examples)
    (split_dir / "labels.json").write_text(json.dumps(data.labels))
    print(f"split: {data.report}", flush=True)
    return split_dir


def run_peer(split_dir: Path, base_path: str) -> dict:
    cmd = [sys.executable, str(ROOT / "bench" / "peer_trainer_script.py"), str(split_dir), base_path,
           str(OUT / "peer_checkpoints")]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_domainft(overrides: list[str], run_name: str = "domainft_fpb50",
                 tool: str = "domainft run (recipe defaults)") -> dict:
    """One `domainft run` of the finance recipe on FPB 50Agree in its own process; its metrics."""
    run_dir = OUT / run_name
    cmd = [sys.executable, "-m", "domainft", "run", str(ROOT / "recipes" / "finance_sentiment.yaml"),
           "--quiet", "--set", f"data.path={FPB}", "--set", "base=minilm", "--set", f"output.dir={run_dir}",
           "--set", "output.overwrite=true", *[a for o in overrides for a in ("--set", o)]]
    subprocess.run(cmd, check=True, cwd=ROOT)
    m = json.loads((run_dir / "metrics.json").read_text())
    return {"tool": tool, "test_accuracy": m["test"]["accuracy"],
            "test_macro_f1": m["test"]["macro_f1"], "train_wall_s": m["train"]["wall_time_s"],
            "peak_rss_mb": m["train"]["peak_rss_mb"], "epochs": m["train"]["epochs_run"],
            "lr": m["train"]["lr"], "trainable_params": m["run"]["trainable_params"],
            "total_params": m["run"]["total_params"], "saved_mb": m["run"]["saved_mb"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--skip-peer", action="store_true")
    args = parser.parse_args()
    from domainft.bases import resolve_base
    from domainft.recipe import Recipe

    recipe = Recipe.from_yaml(ROOT / "recipes" / "finance_sentiment.yaml", [f"data.path={FPB}", *args.overrides])
    split_dir = write_split(recipe)
    rows = []
    if not args.skip_peer:
        rows.append(run_peer(split_dir, resolve_base(["minilm"]).path))
        print(json.dumps(rows[-1]), flush=True)
    rows.append(run_domainft(args.overrides))
    print(json.dumps(rows[-1]), flush=True)
    (OUT / "finance_phrasebank.json").write_text(json.dumps(rows, indent=2))
    print("\n| tool | test accuracy | test macro-F1 | train wall time (s) | peak memory (MB) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['tool']} | {r['test_accuracy']:.4f} | {r['test_macro_f1']:.4f} | "
              f"{r['train_wall_s']:.0f} | {r['peak_rss_mb']:.0f} |")
    if len(rows) == 2:
        print(f"\ntime ratio domainft/peer: {rows[1]['train_wall_s'] / rows[0]['train_wall_s']:.2f}")


if __name__ == "__main__":
    main()
