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
        [--resume]

Results: bench/results/distill_finance.json (rewritten after every run); a Markdown table on stdout.
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

WORK = OUT / "distill"
RESULTS = ROOT / "bench" / "results" / "distill_finance.json"
TEACHER = ["base=mpnet", "train.lr=3e-5", "train.epochs=4"]
COMMON = [f"data.path={FPB}", "export.enabled=true"]
METRICS = ("macro_f1", "accuracy")


def transfer_file() -> Path:
    return finance_domain_texts(WORK / "finance_transfer.txt")


def arm_overrides(arm: str, seed: int, teacher_seed: int) -> list[str]:
    sets = [*COMMON, f"train.seed={seed}"]
    if arm == "teacher":
        return [*sets, *TEACHER]
    if arm == "student":
        return [*sets, "base=minilm"]
    sets += ["base=minilm", f"distill.teacher={run_dir('teacher', teacher_seed)}"]
    if arm == "transfer":
        sets.append(f"distill.transfer=[{transfer_file()}]")
    return sets


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
    lines = ["| arm | seeds | test macro-F1 | test accuracy | train wall s (mean) |", "|---|---|---|---|---|"]
    for arm, runs in results["runs"].items():
        if not runs:
            continue
        f1 = [100 * r["macro_f1"] for r in runs.values()]
        acc = [100 * r["accuracy"] for r in runs.values()]
        wall = statistics.mean(r["wall_s"] for r in runs.values())
        lines.append(f"| {arm} | {', '.join(runs)} | {statistics.mean(f1):.1f}{sd(f1)} | "
                     f"{statistics.mean(acc):.1f}{sd(acc)} | {wall:.0f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[13, 14, 15])
    parser.add_argument("--teacher-seeds", type=int, nargs="+", default=[13])
    parser.add_argument("--teacher-seed", type=int, default=13, help="the teacher run the students distil from")
    parser.add_argument("--arms", nargs="+", default=["teacher", "student", "distilled", "transfer"])
    parser.add_argument("--resume", action="store_true", help="read finished runs instead of training them again")
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args()
    results = json.loads(RESULTS.read_text()) if args.resume and RESULTS.is_file() else {}
    results.setdefault("runs", {})
    results.update({"dataset": "Financial PhraseBank 50Agree", "teacher_seed": args.teacher_seed,
                    "teacher": " ".join(TEACHER)})
    for arm in args.arms:
        seeds = args.teacher_seeds if arm == "teacher" else args.seeds
        for seed in seeds:
            started = time.perf_counter()
            metrics = run_recipe("finance_sentiment", arm_overrides(arm, seed, args.teacher_seed), run_dir(arm, seed),
                                 resume=args.resume)
            test = metrics["test"]
            row = {m: test[m] for m in METRICS}
            row["wall_s"] = metrics["train"]["wall_time_s"]
            if "distill" in metrics:
                row["distill"] = {k: metrics["distill"][k] for k in ("alpha", "temperature", "transfer", "train_rows")}
            results["runs"].setdefault(arm, {})[str(seed)] = row
            print(f"{arm} seed {seed}: macro-F1 {100 * row['macro_f1']:.1f}, accuracy {100 * row['accuracy']:.1f} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    if not args.no_speed:
        texts = [line.rsplit("@", 1)[0] for line in FPB.read_text(encoding="latin-1").splitlines()][-400:]
        speeds = {}
        for arm in ("teacher", "distilled", "student"):
            bundle = run_dir(arm, args.teacher_seed if arm == "teacher" else args.seeds[0]) / "onnx"
            if (bundle / "domainft.json").is_file():
                speeds[arm] = serve_speed(bundle, texts)
        results["serving"] = speeds
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print("\n".join(summary(results)))
    for arm, s in results.get("serving", {}).items():
        print(f"serving {arm}: {s}")


if __name__ == "__main__":
    main()
