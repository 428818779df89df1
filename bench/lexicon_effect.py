"""Benchmark: does the domain lexicon help? Each shipped recipe on its real dataset, with and without
its lexicon, over 3 training seeds (the data split stays fixed), packaged MiniLM base.

Reports the test score (mean and spread over seeds), tokens per word on the training data before and
after the lexicon, and the change in training time. Each run is `domainft run` in its own process,
one after the other; rows are appended to bench/out/lexicon_effect.json as they finish.

    python bench/lexicon_effect.py [--recipes finance_sentiment medical_ner] [--seeds 13 14 15]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT.parent / "shared" / "datasets"
OUT = ROOT / "bench" / "out"
# recipe -> (real data override, lexicon, main test metric)
SETUPS = {
    "finance_sentiment": (f"data.path={DATASETS / 'financial_phrasebank' / 'Sentences_50Agree.txt'}",
                          "lexicons/finance.txt", "macro_f1"),
    "medical_ner": (f"data.path={DATASETS / 'ncbi_disease'}", "lexicons/medical.txt", "f1"),
}


def run_one(recipe: str, lexicon: str | None, seed: int) -> dict:
    data_override, _, metric = SETUPS[recipe]
    run_dir = OUT / f"lexicon_{recipe}_{'on' if lexicon else 'off'}_{seed}"
    sets = [data_override, "base=minilm", f"train.seed={seed}", f"output.dir={run_dir}", "output.overwrite=true"]
    if lexicon:
        sets.append(f"lexicon=[{lexicon}]")
    cmd = [sys.executable, "-m", "domainft", "run", str(ROOT / "recipes" / f"{recipe}.yaml"), "--quiet",
           *[a for s in sets for a in ("--set", s)]]
    subprocess.run(cmd, check=True, cwd=ROOT)
    m = json.loads((run_dir / "metrics.json").read_text())
    lex = m.get("lexicon", {})
    return {"recipe": recipe, "lexicon": lexicon, "seed": seed, "test": m["test"][metric], "metric": metric,
            "train_wall_s": m["train"]["wall_time_s"], "epochs": m["train"]["epochs_run"],
            "terms_added": lex.get("terms_added", 0),
            "tokens_per_word": lex.get("tokens_per_word", {})}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipes", nargs="+", default=list(SETUPS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[13, 14, 15])
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for recipe in args.recipes:
        for seed in args.seeds:
            for lexicon in (None, SETUPS[recipe][1]):
                rows.append(run_one(recipe, lexicon, seed))
                print(json.dumps(rows[-1]), flush=True)
                (OUT / "lexicon_effect.json").write_text(json.dumps(rows, indent=2))
    print_table(rows)


def print_table(rows: list[dict]) -> None:
    print("\n| recipe | lexicon | terms added | test score (mean ± sd, n) | Δ vs none | tokens/word before → after "
          "| train time (s, mean) | Δ time |")
    print("|---|---|---|---|---|---|---|---|")
    for recipe in dict.fromkeys(r["recipe"] for r in rows):
        groups = {}
        for r in rows:
            if r["recipe"] == recipe:
                groups.setdefault(r["lexicon"], []).append(r)
        base = groups.get(None)
        for lexicon, rs in groups.items():
            scores = [r["test"] for r in rs]
            mean = statistics.mean(scores)
            sd = statistics.stdev(scores) if len(scores) > 1 else 0.0
            time_mean = statistics.mean(r["train_wall_s"] for r in rs)
            delta = f"{100 * (mean - statistics.mean(r['test'] for r in base)):+.2f}" if base and lexicon else "–"
            dtime = (f"{100 * (time_mean / statistics.mean(r['train_wall_s'] for r in base) - 1):+.0f}%"
                     if base and lexicon else "–")
            tpw = rs[0]["tokens_per_word"]
            tpw_s = f"{tpw['before']:.3f} → {tpw['after']:.3f}" if tpw else "–"
            print(f"| {recipe} | {lexicon or 'none'} | {rs[0]['terms_added']} | {100 * mean:.2f} ± {100 * sd:.2f} "
                  f"({rs[0]['metric']}, {len(rs)}) | {delta} | {tpw_s} | {time_mean:.0f} | {dtime} |")


if __name__ == "__main__":
    main()
