"""Benchmark: does distilling a large teacher into the packaged MiniLM carry the teacher's quality into
a model that serves at MiniLM's speed? Finance sentiment on Financial PhraseBank 50Agree.

Arms (the finance recipe on FPB 50Agree, its split; test macro-F1 and accuracy; seeds are train.seed):
  teacher      base mpnet (all-mpnet-base-v2, 110M; scripts/setup.sh --teacher), lr 3e-5, 4 epochs
  student      the recipe as it is (MiniLM, 22M)
  distilled    the recipe + distill.teacher (the teacher run of --teacher-seed), alpha / temperature defaults
  transfer     distilled + distill.transfer: FiQA 2018 task 1 posts and headlines and SemEval-2017 task 5
               headlines (../shared/datasets, written once to bench/out/distill/finance_transfer.txt;
               a text that is one of the run's own texts is dropped by domainft itself)
Then the teacher's and the students' bundles (int8 where the export gate kept it, else fp32): batch-1
latency and batch-32 throughput on 400 FPB sentences, in the same process.

    python bench/distill.py [--seeds 13 14 15] [--teacher-seeds 13] [--arms teacher student distilled transfer]
        [--alpha A] [--temperature T] [--resume]

--alpha / --temperature set distill.alpha / distill.temperature for the distilled and transfer arms; a
setting other than the defaults is its own arm (e.g. transfer_a0.8_t4), so a sweep resumes and its
validation scores sit beside the defaults' (choose on validation; the test column is reported).
Several copies may run at once (each on its own arms or seeds): a row is merged into the file as it
is written, not the whole file.

Results: bench/results/distill_finance.json (rewritten after every run); a Markdown table on stdout.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from domainft.atomic import write_text  # noqa: E402

from runner import FPB, OUT, ROOT, finance_domain_texts, run_recipe  # noqa: E402

WORK = OUT / "distill"
RESULTS = ROOT / "bench" / "results" / "distill_finance.json"
TEACHER = ["base=mpnet", "train.lr=3e-5", "train.epochs=4"]
COMMON = [f"data.path={FPB}", "export.enabled=true"]
METRICS = ("macro_f1", "accuracy")


def transfer_file() -> Path:
    return finance_domain_texts(WORK / "finance_transfer.txt")


DEFAULT_ALPHA, DEFAULT_TEMPERATURE = 0.5, 2.0


def arm_name(arm: str, alpha: float, temperature: float) -> str:
    """The arm's name in the results and its run directory: a distillation setting other than the
    defaults is named in it."""
    if arm in ("teacher", "student") or (alpha, temperature) == (DEFAULT_ALPHA, DEFAULT_TEMPERATURE):
        return arm
    return f"{arm}_a{alpha:g}_t{temperature:g}"


def arm_overrides(arm: str, seed: int, teacher_seed: int, alpha: float = DEFAULT_ALPHA,
                  temperature: float = DEFAULT_TEMPERATURE) -> list[str]:
    sets = [*COMMON, f"train.seed={seed}"]
    if arm == "teacher":
        return [*sets, *TEACHER]
    if arm == "student":
        return [*sets, "base=minilm"]
    sets += ["base=minilm", f"distill.teacher={run_dir('teacher', teacher_seed)}",
             f"distill.alpha={alpha}", f"distill.temperature={temperature}"]
    if arm == "transfer":
        sets.append(f"distill.transfer=[{transfer_file()}]")
    return sets


def save_row(arm: str, seed: int, row: dict, header: dict) -> dict:
    """Merge one run's row into the results file (re-read first: another copy of this script may have
    written rows since this one started) and write it atomically; the merged results."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(OUT / "distill_results.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
        results.update(header)
        results.setdefault("runs", {}).setdefault(arm, {})[str(seed)] = row
        write_text(RESULTS, json.dumps(results, indent=2) + "\n")
    return results


def run_dir(arm: str, seed: int) -> Path:
    return WORK / f"finance_{arm}_s{seed}"


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


def summary(results: dict) -> list[str]:
    lines = ["| arm | seeds | validation macro-F1 | test macro-F1 | test accuracy | train wall s (mean) |",
             "|---|---|---|---|---|---|"]
    for arm, runs in results["runs"].items():
        if not runs:
            continue
        f1 = [100 * r["macro_f1"] for r in runs.values()]
        acc = [100 * r["accuracy"] for r in runs.values()]
        val = [100 * r["validation_macro_f1"] for r in runs.values() if "validation_macro_f1" in r]
        wall = statistics.mean(r["wall_s"] for r in runs.values())
        val_text = f"{statistics.mean(val):.1f}{sd(val)}" if val else "-"
        lines.append(f"| {arm} | {', '.join(runs)} | {val_text} | {statistics.mean(f1):.1f}{sd(f1)} | "
                     f"{statistics.mean(acc):.1f}{sd(acc)} | {wall:.0f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[13, 14, 15])
    parser.add_argument("--teacher-seeds", type=int, nargs="+", default=[13])
    parser.add_argument("--teacher-seed", type=int, default=13, help="the teacher run the students distil from")
    parser.add_argument("--arms", nargs="+", default=["teacher", "student", "distilled", "transfer"])
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    parser.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE)
    parser.add_argument("--resume", action="store_true", help="read finished runs instead of training them again")
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args()
    if not args.resume and RESULTS.is_file():
        RESULTS.unlink()  # a fresh measurement: no rows of an earlier one
    header = {"dataset": "Financial PhraseBank 50Agree", "teacher_seed": args.teacher_seed,
              "teacher": " ".join(TEACHER)}
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"runs": {}}
    for arm in args.arms:
        seeds = args.teacher_seeds if arm == "teacher" else args.seeds
        name = arm_name(arm, args.alpha, args.temperature)
        for seed in seeds:
            started = time.perf_counter()
            metrics = run_recipe("finance_sentiment",
                                 arm_overrides(arm, seed, args.teacher_seed, args.alpha, args.temperature),
                                 run_dir(name, seed), resume=args.resume)
            row = {m: metrics["test"][m] for m in METRICS}
            row["validation_macro_f1"] = metrics["validation"]["macro_f1"]
            row["wall_s"] = metrics["train"]["wall_time_s"]
            if "distill" in metrics:
                row["distill"] = {k: metrics["distill"][k] for k in ("alpha", "temperature", "transfer", "train_rows")}
            results = save_row(name, seed, row, header)
            print(f"{name} seed {seed}: macro-F1 {100 * row['macro_f1']:.1f}, accuracy {100 * row['accuracy']:.1f} "
                  f"(validation {100 * row['validation_macro_f1']:.1f}; {time.perf_counter() - started:.0f} s)",
                  flush=True)
    if not args.no_speed:
        texts = [line.rsplit("@", 1)[0] for line in FPB.read_text(encoding="latin-1").splitlines()][-400:]
        speeds = {}
        for arm in ("teacher", "distilled", "student"):
            bundle = run_dir(arm, args.teacher_seed if arm == "teacher" else args.seeds[0]) / "onnx"
            if (bundle / "domainft.json").is_file():
                speeds[arm] = serve_speed(bundle, texts)
        results = json.loads(RESULTS.read_text())
        results["serving"] = speeds
        write_text(RESULTS, json.dumps(results, indent=2) + "\n")
    print("\n".join(summary(results)))
    for arm, s in results.get("serving", {}).items():
        print(f"serving {arm}: {s}")


if __name__ == "__main__":
    main()
