"""Benchmark: does distilling a large teacher into the packaged MiniLM carry the teacher's quality into
a model that serves at MiniLM's speed? Finance sentiment on Financial PhraseBank 50Agree (--task
finance, the default) and disease NER on NCBI-disease (--task ncbi).

Arms (the task's recipe on its real data and split; seeds are train.seed):
  teacher      base mpnet (all-mpnet-base-v2, 110M; scripts/setup.sh --teacher); finance: lr 3e-5,
               4 epochs; ncbi: lr 5e-5, the recipe's 4 epochs
  student      the recipe as it is (MiniLM, 22M)
  distilled    the recipe + distill.teacher (the teacher run of --teacher-seed), alpha / temperature defaults
  transfer     distilled + distill.transfer, unlabelled domain text from ../shared/datasets written once
               to bench/out/distill/<task>_transfer.txt: finance, FiQA 2018 task 1 posts and headlines and
               SemEval-2017 task 5 headlines; ncbi, the first 5,000 sentences of Medical Abstracts and
               MedQuAD (runner.medical_domain_texts); a text that is one of the run's own texts (after
               normalization) is dropped by domainft itself
Then the teacher's and the students' bundles (int8 where the export gate kept it, else fp32): batch-1
latency and batch-32 throughput on 400 test sentences, in the same process (every --teacher-seeds
teacher; the distilled, transfer and student runs of the first of --seeds that are on disk).

    python bench/distill.py [--task finance|ncbi] [--seeds 13 14 15] [--teacher-seeds 13]
        [--arms teacher student distilled transfer] [--alpha A] [--temperature T] [--resume]

--alpha / --temperature / --augment set distill.alpha / temperature / augment for the distilled and
transfer arms; a setting other than the defaults is its own arm (e.g. transfer_a0.8_t4,
distilled_aug4: four perturbed copies of each training text labelled by the teacher), so a sweep resumes and its
validation scores sit beside the defaults' (choose on validation; the test column is reported).
--student BASE / --student-lr LR train the student, distilled and transfer arms on another base or
learning rate (arms student_bert-tiny_lr0.0002, ...): the mechanism on a student further below the
teacher than the MiniLM.
Several copies may run at once (each on its own arms or seeds): a row is merged into the file as it
is written, not the whole file.

Results: bench/results/distill_<task>.json (a row merged after every run); a Markdown table on stdout.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runner import (  # noqa: E402
    DATASETS,
    FPB,
    METRICS,
    OUT,
    REAL_DATA,
    ROOT,
    finance_domain_texts,
    medical_domain_texts,
    run_recipe,
    save_field,
    save_row,
    train_precision,
)

WORK = OUT / "distill"
DEFAULT_ALPHA, DEFAULT_TEMPERATURE = 0.5, 2.0
DEFAULT_STUDENT = "minilm"  # the recipes' base
NCBI = DATASETS / "ncbi_disease"


@dataclass(frozen=True)
class Experiment:
    name: str  # --task, and the prefix of its run directories and results file
    recipe: str  # its real data and test metrics: runner.REAL_DATA / METRICS
    dataset: str
    teacher: tuple[str, ...]  # the teacher's overrides (base, lr, epochs)
    transfer: object  # (out path) -> the transfer texts file, written once
    transfer_limit: int | None  # at most this many transfer texts (the first)
    speed_texts: object  # () -> texts the bundles are timed on

    @property
    def results(self) -> Path:
        return ROOT / "bench" / "results" / f"distill_{self.name}.json"

    @property
    def metrics(self) -> tuple[str, str]:
        """The test metrics reported, the first the recipe's main one."""
        return METRICS[self.recipe][:2]


def _fpb_texts() -> list[str]:
    return [line.rsplit("@", 1)[0] for line in FPB.read_text(encoding="latin-1").splitlines()][-400:]


def _ncbi_texts() -> list[str]:
    sentences, words = [], []
    for line in (NCBI / "test.tsv").read_text(encoding="utf-8").splitlines():
        if line.strip():
            words.append(line.split("\t")[0])
        elif words:
            sentences.append(" ".join(words))
            words = []
    return sentences[:400]


EXPERIMENTS = {exp.name: exp for exp in (
    # mpnet's lr / epochs for FPB as measured for the base; for NCBI the recipe's 4 epochs and batch 8
    # with BERT-base's usual NER rate (not tuned here: the FPB teacher took 37 to 66 minutes a seed).
    Experiment("finance", "finance_sentiment", "Financial PhraseBank 50Agree",
               ("base=mpnet", "train.lr=3e-5", "train.epochs=4"), finance_domain_texts, None, _fpb_texts),
    Experiment("ncbi", "medical_ner", "NCBI-disease", ("base=mpnet", "train.lr=5e-5"),
               medical_domain_texts, 5000, _ncbi_texts),
)}


def transfer_file(exp: Experiment) -> Path:
    return exp.transfer(WORK / f"{exp.name}_transfer.txt")


def arm_name(arm: str, alpha: float, temperature: float, augment: int = 0, student: str = DEFAULT_STUDENT,
             student_lr: float | None = None) -> str:
    """The arm's name in the results and its run directory: a student base or learning rate, and a
    distillation setting, other than the defaults is named in it."""
    if arm == "teacher":
        return arm
    name = arm
    if arm != "student" and (alpha, temperature) != (DEFAULT_ALPHA, DEFAULT_TEMPERATURE):
        name = f"{name}_a{alpha:g}_t{temperature:g}"
    if arm != "student" and augment:
        name = f"{name}_aug{augment}"
    if student != DEFAULT_STUDENT:
        name = f"{name}_{student}"
    return f"{name}_lr{student_lr:g}" if student_lr is not None else name


def arm_overrides(arm: str, seed: int, teacher_seed: int, alpha: float = DEFAULT_ALPHA,
                  temperature: float = DEFAULT_TEMPERATURE, exp: Experiment | None = None,
                  augment: int = 0, student: str = DEFAULT_STUDENT, student_lr: float | None = None) -> list[str]:
    exp = exp or EXPERIMENTS["finance"]
    sets = [*REAL_DATA[exp.recipe], "export.enabled=true", f"train.seed={seed}"]
    if arm == "teacher":
        return [*sets, *exp.teacher]
    sets.append(f"base={student}")
    if student_lr is not None:
        sets.append(f"train.lr={student_lr:g}")
    if arm == "student":
        return sets
    sets += [f"distill.teacher={run_dir(exp, 'teacher', teacher_seed)}",
             f"distill.alpha={alpha}", f"distill.temperature={temperature}"]
    if augment:
        sets.append(f"distill.augment={augment}")
    if arm == "transfer":
        sets.append(f"distill.transfer=[{transfer_file(exp)}]")
        if exp.transfer_limit:
            sets.append(f"distill.transfer_limit={exp.transfer_limit}")
    return sets


def run_dir(exp: Experiment, arm: str, seed: int) -> Path:
    return WORK / f"{exp.name}_{arm}_s{seed}"


def serve_speed(bundle: Path, texts: list[str], rounds: int = 3) -> dict:
    from domainft.serving import load

    model = load(bundle, threads=2)
    model.predict(texts[:32], batch_size=32)
    one, batched = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        for t in texts[:100]:
            model.predict([t], batch_size=1)
        one.append((time.perf_counter() - started) / 100)
        started = time.perf_counter()
        model.predict(texts[:320], batch_size=32)
        batched.append(320 / (time.perf_counter() - started))
    return {"precision": model.precision, "batch1_ms": round(1000 * min(one), 2),
            "batch32_texts_per_s": round(max(batched), 1)}


def sd(values: list[float]) -> str:
    return f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else ""


def summary(exp: Experiment, results: dict) -> list[str]:
    main, second = exp.metrics
    lines = [f"| arm | seeds | validation {main} | test {main} | test {second} | train wall s (mean) |",
             "|---|---|---|---|---|---|"]
    for arm, runs in results["runs"].items():
        if not runs:
            continue
        first = [100 * r[main] for r in runs.values()]
        other = [100 * r[second] for r in runs.values()]
        val = [100 * r[f"validation_{main}"] for r in runs.values() if f"validation_{main}" in r]
        wall = statistics.mean(r["wall_s"] for r in runs.values())
        val_text = f"{statistics.mean(val):.1f}{sd(val)}" if val else "-"
        lines.append(f"| {arm} | {', '.join(runs)} | {val_text} | {statistics.mean(first):.1f}{sd(first)} | "
                     f"{statistics.mean(other):.1f}{sd(other)} | {wall:.0f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(EXPERIMENTS), default="finance")
    parser.add_argument("--seeds", type=int, nargs="+", default=[13, 14, 15])
    parser.add_argument("--teacher-seeds", type=int, nargs="+", default=[13])
    parser.add_argument("--teacher-seed", type=int, default=13, help="the teacher run the students distil from")
    parser.add_argument("--arms", nargs="+", default=["teacher", "student", "distilled", "transfer"])
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    parser.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE)
    parser.add_argument("--augment", type=int, default=0, help="distill.augment for the distilled and transfer arms")
    parser.add_argument("--student", default=DEFAULT_STUDENT, help="the student's base (student, distilled, transfer)")
    parser.add_argument("--student-lr", type=float, default=None, help="the student's train.lr (default the recipe's)")
    parser.add_argument("--resume", action="store_true", help="read finished runs instead of training them again")
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args()
    exp = EXPERIMENTS[args.task]
    if not args.resume and exp.results.is_file():
        exp.results.unlink()  # a fresh measurement: no rows of an earlier one
    header = {"dataset": exp.dataset, "teacher_seed": args.teacher_seed, "teacher": " ".join(exp.teacher)}
    results = json.loads(exp.results.read_text()) if exp.results.is_file() else {"runs": {}}
    main_metric = exp.metrics[0]
    for arm in args.arms:
        seeds = args.teacher_seeds if arm == "teacher" else args.seeds
        name = arm_name(arm, args.alpha, args.temperature, args.augment, args.student, args.student_lr)
        for seed in seeds:
            started = time.perf_counter()
            metrics = run_recipe(exp.recipe,
                                 arm_overrides(arm, seed, args.teacher_seed, args.alpha, args.temperature, exp,
                                               args.augment, args.student, args.student_lr),
                                 run_dir(exp, name, seed), resume=args.resume)
            row = {m: metrics["test"][m] for m in exp.metrics}
            row[f"validation_{main_metric}"] = metrics["validation"][main_metric]
            row["wall_s"] = metrics["train"]["wall_time_s"]
            row["train_precision"] = train_precision(metrics)
            if "distill" in metrics:
                row["distill"] = {k: metrics["distill"].get(k)
                                  for k in ("alpha", "temperature", "transfer", "augment", "train_rows")}
            results = save_row(exp.results, name, seed, row, header)
            print(f"{name} seed {seed}: {main_metric} {100 * row[main_metric]:.1f} (validation "
                  f"{100 * row[f'validation_{main_metric}']:.1f}; {time.perf_counter() - started:.0f} s)", flush=True)
    if not args.no_speed:
        # Every teacher seed's bundle (the export gate keeps int8 for some seeds and not others: the
        # teacher serves at its int8 speed where it passed), the students of the first seed (those
        # whose run directory is here).
        speeds = {}
        bundles = [(f"teacher_s{seed}", run_dir(exp, "teacher", seed)) for seed in args.teacher_seeds]
        bundles += [(name, run_dir(exp, name, args.seeds[0])) for name in
                    (arm_name(arm, args.alpha, args.temperature, args.augment, args.student, args.student_lr)
                     for arm in ("distilled", "transfer", "student"))]
        for name, path in bundles:
            if (path / "onnx" / "domainft.json").is_file():
                speeds[name] = serve_speed(path / "onnx", exp.speed_texts())
        results = save_field(exp.results, "serving", speeds)
    print("\n".join(summary(exp, results)))
    for arm, s in results.get("serving", {}).items():
        print(f"serving {arm}: {s}")


if __name__ == "__main__":
    main()
