"""Benchmark: does domain-adaptive pretraining (adapt:) make the packaged MiniLM a better domain model,
and does the lexicon pay once its rows are learnt during adaptation? Each task's recipe on its real
data and split: --task finance (Financial PhraseBank 50Agree, macro-F1), ncbi (NCBI-disease, entity
F1), cuad (CUAD clause types, legal_clause_review, micro-F1).

Arms (seeds are train.seed; the adaptation has its own seed, so the three seeds of an arm share one
adapted base):
  finetune       the recipe as it is; for finance and ncbi the very run bench/distill.py's student arm
                 makes (same settings, same directory, bench/out/distill/<task>_student_s<seed>), so one
                 run serves both tables
  tapt           adapt.task_texts (the run's training texts only)
  dapt           adapt.corpus, domain text only (../shared/datasets, written once to
                 bench/out/adapt/<task>_corpus.txt, one sentence a line; domainft drops any that is a
                 validation or test text of the run): finance, FiQA 2018 task 1 posts and headlines and
                 SemEval-2017 task 5 headlines; ncbi, Medical Abstracts and MedQuAD questions and
                 answers (the first 20,000 sentences); cuad, the ContractNLI contract documents
  dapt_tapt      both
  ..._lexicon    the same with lexicon.from_data (terms added before adaptation)
  ..._warmup     the same with adapt.head_warmup_steps=200 (MiniLM's new MLM head trained alone first)
Adaptation settings: the adapt section's defaults (3 epochs, 15% whole-word masking, lr 5e-5,
batch 32, 5% held out, early stopping on its loss) unless --set says otherwise.

    python bench/adapt.py [--task finance|ncbi|cuad] [--arms finetune tapt dapt dapt_tapt]
        [--seeds 13 14 15] [--resume] [--set adapt.epochs=2 ...] [--tag epochs10]

--tag names a variant of the arms (their settings changed with --set): its rows are "<arm>_<tag>" and
its runs bench/out/adapt/<task>_<arm>_<tag>_s<seed>, beside the arm's own, not over them.

Several copies may run at once on one task (each on its own arms or seeds; an adaptation shared by
two is made once, the other waits for it). Results: bench/results/adapt_<task>.json (a row merged
after every run: the arm's test and validation scores, the adaptation's held-out perplexity
before / after and its wall time); a table on stdout.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from runner import (  # noqa: E402
    METRICS,
    OUT,
    REAL_DATA,
    ROOT,
    finance_domain_texts,
    legal_domain_texts,
    medical_domain_texts,
    run_recipe,
    save_row,
    train_precision,
)

WORK = OUT / "adapt"
# task -> (recipe, the corpus writer, the DAPT corpus limit); the recipe's real data and test metrics
# are runner.REAL_DATA / METRICS
TASKS = {
    "finance": ("finance_sentiment", finance_domain_texts, None),
    "ncbi": ("medical_ner", medical_domain_texts, 20000),
    "cuad": ("legal_clause_review", legal_domain_texts, 20000),
}


def results_file(task: str) -> Path:
    return ROOT / "bench" / "results" / f"adapt_{task}.json"


def corpus_file(task: str = "finance") -> Path:
    name = "finance_corpus.txt" if task == "finance" else f"{task}_corpus.txt"
    return TASKS[task][1](WORK / name)


def run_dir(arm: str, seed: int, extra: list[str], task: str = "finance", tag: str | None = None) -> Path:
    if arm == "finetune" and not extra and task in ("finance", "ncbi") and not tag:
        return OUT / "distill" / f"{task}_student_s{seed}"
    return WORK / f"{task}_{row_name(arm, tag)}_s{seed}"


def row_name(arm: str, tag: str | None) -> str:
    return f"{arm}_{tag}" if tag else arm


def overrides(arm: str, seed: int, extra: list[str], task: str = "finance") -> list[str]:
    if arm == "finetune" and not extra and task in ("finance", "ncbi"):  # bench/distill.py's student, to the letter
        from distill import EXPERIMENTS, arm_overrides

        return arm_overrides("student", seed, teacher_seed=seed, exp=EXPERIMENTS[task])
    recipe, _, limit = TASKS[task]
    sets = [*REAL_DATA[recipe], "base=minilm", f"train.seed={seed}", *extra]
    kind = arm
    while kind.endswith(("_lexicon", "_warmup")):  # the suffixes in either order
        kind = kind.removesuffix("_lexicon").removesuffix("_warmup")
    # Said either way: a recipe may adopt an adaptation (the legal one adapts on its task texts), and an
    # arm is what its name says whatever the recipe holds.
    sets.append(f"adapt.task_texts={str(kind in ('tapt', 'dapt_tapt')).lower()}")
    if kind in ("dapt", "dapt_tapt"):
        sets.append(f"adapt.corpus=[{corpus_file(task)}]")
        if limit:
            sets.append(f"adapt.corpus_limit={limit}")
    if "_lexicon" in arm:
        sets.append("lexicon.from_data=true")
    if "_warmup" in arm:  # the new MLM head trained alone first
        sets.append("adapt.head_warmup_steps=200")
    return sets


def table(results: dict, metrics: tuple[str, str] = ("macro_f1", "accuracy")) -> list[str]:
    main, second = metrics
    lines = [f"| arm | seeds | validation {main} | test {main} | test {second} | held-out perplexity before -> after "
             "| adaptation s |", "|---|---|---|---|---|---|---|"]
    for arm, runs in results["runs"].items():
        f1 = [100 * r[main] for r in runs.values()]
        acc = [100 * r[second] for r in runs.values()]
        val = [100 * r["validation"] for r in runs.values() if "validation" in r]
        a = next((r["adapt"] for r in runs.values() if r.get("adapt")), None)
        ppl = f"{a['before']:.1f} -> {a['after']:.1f}" if a else "-"
        lines.append(f"| {arm} | {', '.join(runs)} | {mean_sd(val) if val else '-'} | {mean_sd(f1)} | {mean_sd(acc)} | "
                     f"{ppl} | "
                     f"{a['wall_time_s'] if a else '-'} |")
    return lines


def mean_sd(values: list[float]) -> str:
    return f"{statistics.mean(values):.1f}" + (f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(TASKS), default="finance")
    parser.add_argument("--arms", nargs="+", default=["finetune", "tapt", "dapt", "dapt_tapt"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[13, 14, 15])
    parser.add_argument("--set", dest="extra", action="append", default=[], help="FIELD=VALUE for every arm")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--tag", help="a name for this variant of the arms (see above)")
    args = parser.parse_args()
    recipe = TASKS[args.task][0]
    shown = METRICS[recipe][:2]
    path = results_file(args.task)
    results = {"runs": {}}
    for arm in args.arms:
        for seed in args.seeds:
            started = time.perf_counter()
            metrics = run_recipe(recipe, overrides(arm, seed, args.extra, args.task),
                                 run_dir(arm, seed, args.extra, args.task, args.tag), resume=args.resume)
            row = {m: metrics["test"][m] for m in shown}
            row["validation"] = metrics["validation"][shown[0]]
            row["train_wall_s"] = metrics["train"]["wall_time_s"]
            row["train_precision"] = train_precision(metrics)
            row["extra"] = args.extra
            if "adapt" in metrics:
                a = metrics["adapt"]
                row["adapt"] = {"before": a["perplexity"]["before"], "after": a["perplexity"]["after"],
                                "wall_time_s": a["wall_time_s"], "steps": a["steps"], "texts": a["texts"],
                                "new_head": a["new_head"]}
            name = row_name(arm, args.tag)
            results = save_row(path, name, seed, row, {"dataset": recipe})
            print(f"{name} seed {seed}: {shown[0]} {100 * row[shown[0]]:.1f} ({time.perf_counter() - started:.0f} s)",
                  flush=True)
    print("\n".join(table(results, shown)))


if __name__ == "__main__":
    main()
