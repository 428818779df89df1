"""Benchmark: does domain-adaptive pretraining (adapt:) make the packaged MiniLM a better domain model,
and does the lexicon pay once its rows are learnt during adaptation? Finance sentiment on Financial
PhraseBank 50Agree (the finance recipe, its split).

Arms (test macro-F1 / accuracy, seeds are train.seed; the adaptation has its own seed, so the three
seeds of an arm share one adapted base):
  finetune       the recipe as it is: the very run bench/distill.py's student arm makes (same settings,
                 same directory, bench/out/distill/finance_student_s<seed>), so one run serves both tables
  tapt           adapt.task_texts (the run's training texts only)
  dapt           adapt.corpus: FiQA 2018 task 1 posts and headlines, SemEval-2017 task 5 headlines
                 (../shared/datasets, written once to bench/out/adapt/finance_corpus.txt; domainft drops
                 any that is a validation or test text of the run)
  dapt_tapt      both
  ..._lexicon    the same with lexicon.from_data (terms added before adaptation)
  ..._warmup     the same with adapt.head_warmup_steps=200 (MiniLM's new MLM head trained alone first)
Adaptation settings: the adapt section's defaults (3 epochs, 15% whole-word masking, lr 5e-5,
batch 32, 5% held out, early stopping on its loss) unless --set says otherwise.

    python bench/adapt.py [--arms finetune tapt dapt dapt_tapt] [--seeds 13 14 15] [--resume]
        [--set adapt.epochs=2 ...]

Results: bench/results/adapt_finance.json (rewritten after every run: the arm's test scores, the
adaptation's held-out perplexity before / after and its wall time); a Markdown table on stdout.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runner import FPB, OUT, ROOT, finance_domain_texts, run_recipe  # noqa: E402

WORK = OUT / "adapt"
RESULTS = ROOT / "bench" / "results" / "adapt_finance.json"


def corpus_file() -> Path:
    return finance_domain_texts(WORK / "finance_corpus.txt")


def run_dir(arm: str, seed: int, extra: list[str]) -> Path:
    if arm == "finetune" and not extra:
        return OUT / "distill" / f"finance_student_s{seed}"
    return WORK / f"finance_{arm}_s{seed}"


def overrides(arm: str, seed: int, extra: list[str]) -> list[str]:
    if arm == "finetune" and not extra:  # bench/distill.py's student arm, to the letter
        from distill import arm_overrides

        return arm_overrides("student", seed, teacher_seed=seed)
    sets = [f"data.path={FPB}", "base=minilm", f"train.seed={seed}", *extra]
    kind = arm.removesuffix("_lexicon").removesuffix("_warmup")
    if kind in ("tapt", "dapt_tapt"):
        sets.append("adapt.task_texts=true")
    if kind in ("dapt", "dapt_tapt"):
        sets.append(f"adapt.corpus=[{corpus_file()}]")
    if arm.endswith("_lexicon"):
        sets.append("lexicon.from_data=true")
    if arm.endswith("_warmup"):  # the new MLM head trained alone first
        sets.append("adapt.head_warmup_steps=200")
    return sets


def table(results: dict) -> list[str]:
    lines = ["| arm | seeds | test macro-F1 | test accuracy | held-out perplexity before -> after | adaptation s |",
             "|---|---|---|---|---|---|"]
    for arm, runs in results["runs"].items():
        f1 = [100 * r["macro_f1"] for r in runs.values()]
        acc = [100 * r["accuracy"] for r in runs.values()]
        a = next((r["adapt"] for r in runs.values() if r.get("adapt")), None)
        ppl = f"{a['before']:.1f} -> {a['after']:.1f}" if a else "-"
        lines.append(f"| {arm} | {', '.join(runs)} | {mean_sd(f1)} | {mean_sd(acc)} | {ppl} | "
                     f"{a['wall_time_s'] if a else '-'} |")
    return lines


def mean_sd(values: list[float]) -> str:
    return f"{statistics.mean(values):.1f}" + (f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arms", nargs="+", default=["finetune", "tapt", "dapt", "dapt_tapt"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[13, 14, 15])
    parser.add_argument("--set", dest="extra", action="append", default=[], help="FIELD=VALUE for every arm")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    results = json.loads(RESULTS.read_text()) if args.resume and RESULTS.is_file() else {}
    results.setdefault("runs", {})
    results.update({"dataset": "Financial PhraseBank 50Agree", "extra": args.extra})
    for arm in args.arms:
        for seed in args.seeds:
            started = time.perf_counter()
            metrics = run_recipe("finance_sentiment", overrides(arm, seed, args.extra),
                                 run_dir(arm, seed, args.extra), resume=args.resume)
            row = {"macro_f1": metrics["test"]["macro_f1"], "accuracy": metrics["test"]["accuracy"],
                   "train_wall_s": metrics["train"]["wall_time_s"]}
            if "adapt" in metrics:
                a = metrics["adapt"]
                row["adapt"] = {"before": a["perplexity"]["before"], "after": a["perplexity"]["after"],
                                "wall_time_s": a["wall_time_s"], "steps": a["steps"], "texts": a["texts"],
                                "new_head": a["new_head"]}
            results["runs"].setdefault(arm, {})[str(seed)] = row
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(results, indent=2) + "\n")
            print(f"{arm} seed {seed}: macro-F1 {100 * row['macro_f1']:.1f} ({time.perf_counter() - started:.0f} s)",
                  flush=True)
    print("\n".join(table(results)))


if __name__ == "__main__":
    main()
