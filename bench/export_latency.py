"""Benchmark: how much faster, smaller and less accurate is the finance model served from ONNX
(fp32 and int8) than from PyTorch, on 2 CPU threads?

Exports the FPB 50Agree finance run (made by bench/finance_phrasebank.py) with `export_run`, int8 on,
into bench/out/export_bundle, then on the same test split as that benchmark measures PyTorch fp32
(the trained model's `predict`), ONNX fp32 and ONNX int8 (domainft.serving's predictor): batch-1
latency (median / p90 over the first --n-latency test sentences, after warmup), batch-32 throughput
over the whole test set, test accuracy / macro-F1 of each, and file sizes. Tokenization and
post-processing are inside every timing. Then domainft's predictor against Optimum's pipeline
(ORTModelForSequenceClassification on the same bundle) at batch 1 and 32. Prints Markdown tables
and the issue's targets (int8 >= 4x faster than PyTorch fp32 at batch 1, <= 1 point of accuracy
lost, <= 1/4 of the size) with pass/fail; writes bench/out/export_latency.json.

    python bench/export_latency.py [--run-dir bench/out/domainft_fpb50] [--threads 2]
        [--n-latency 200] [--repeats 3] [--test-csv FILE] [--out-dir bench/out]

Run it on an otherwise idle machine: the timings are only as good as the CPU is quiet.

--int8-schemes compares the int8 schemes instead (what bench/results/int8_batching.json holds):
the run exported with static int8 (the default: activation ranges calibrated on the validation set)
and with dynamic int8 (the fused graph, scales computed per batch at run time), then for fp32, dynamic
int8 batched as any server batches it, dynamic int8 one text at a time (how domainft.serving runs
it) and static int8: batch-1 latency and batch-32 throughput (wall clock, rounds interleaved so load
shifts hit every runtime alike; also CPU time, steadier on a busy machine), validation and test
accuracy / macro-F1, and how many texts change label (and by how much their scores move) between
batch size 1 and 32.

    python bench/export_latency.py --int8-schemes --run-dir RUN_DIR [--threads 2] [--rounds 5]
"""
from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

from runner import (
    FINANCE_RECIPE,
    FPB,
    FPB_RUN,
    FPB_SPLIT,
    METRICS_FILE,
    OUT,
    RESULTS,
    read_metrics,
    save_results,
    write_split,
)

WEIGHT_SUFFIXES = (".safetensors", ".bin")
TARGET_SPEEDUP = 4.0  # int8 vs PyTorch fp32, batch-1 median latency
TARGET_ACC_DROP = 1.0  # points of test accuracy int8 may lose against PyTorch fp32
TARGET_SIZE_RATIO = 0.25  # int8 file size / PyTorch fp32 weights


def read_test(path: Path) -> tuple[list[str], list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["label"] for r in rows]


def test_split(test_csv: Path | None) -> Path:
    """--test-csv, else the finance benchmark's split (written as that benchmark writes it when absent)."""
    if test_csv is not None:
        if not test_csv.is_file():
            sys.exit(f"--test-csv {test_csv}: no such file")
        return test_csv
    path = FPB_SPLIT / "test.csv"
    if not path.is_file():
        from domainft.recipe import Recipe

        path = write_split(Recipe.from_yaml(FINANCE_RECIPE, [f"data.path={FPB}"])) / "test.csv"
    return path


def mb(n_bytes: int) -> float:
    return round(n_bytes / 2**20, 2)


def pytorch_weights_mb(trained, model_dir: Path) -> float:
    """Weights a PyTorch server loads: the run's files, plus the base's unless fully fine-tuned."""
    files = [p for p in model_dir.iterdir() if p.suffix in WEIGHT_SUFFIXES]
    if trained.manifest["tuning"]["method"] != "full":
        base = Path(trained.manifest["base"]["path"])
        files += [p for p in base.iterdir() if p.suffix in WEIGHT_SUFFIXES] if base.is_dir() else []
    return mb(sum(p.stat().st_size for p in files))


def scores(gold: list[str], predicted: list[str]) -> dict:
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(gold, predicted)),
            "macro_f1": float(f1_score(gold, predicted, average="macro", zero_division=0))}


def batch1_latency(predict, texts: list[str], warmup: int) -> dict:
    """Milliseconds per single-sentence call; `predict` takes a list of texts, returns labels."""
    for t in texts[:warmup]:
        predict([t])
    times = []
    gc.collect()
    gc.disable()
    try:
        for t in texts:
            start = time.perf_counter()
            predict([t])
            times.append((time.perf_counter() - start) * 1000)
    finally:
        gc.enable()
    times.sort()
    return {"median_ms": statistics.median(times), "p90_ms": times[min(len(times) - 1, int(0.9 * len(times)))],
            "n": len(times)}


def batch32_throughput(predict_batches, texts: list[str], repeats: int) -> tuple[dict, list[str]]:
    """Sentences/s over the whole test set in batches of 32 (median of `repeats` passes after a
    warmup batch); also the labels predicted, for the accuracy columns."""
    predict_batches(texts[:32])
    rates, labels = [], None
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        out = predict_batches(texts)
        rates.append(len(texts) / (time.perf_counter() - start))
        labels = labels or out
    return {"sent_per_s": statistics.median(rates), "passes": [round(r, 1) for r in rates]}, labels


def labels_of(predictions: list[dict]) -> list[str]:
    return [p["label"] for p in predictions]


def optimum_pipeline(bundle: Path, file_name: str, threads: int, max_length: int):
    import onnxruntime as ort
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoTokenizer, pipeline

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    model = ORTModelForSequenceClassification.from_pretrained(bundle, file_name=file_name,
                                                              session_options=options)
    tokenizer = AutoTokenizer.from_pretrained(bundle)
    pipe = pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu")

    def predict(texts: list[str], batch_size: int) -> list[str]:
        out = pipe(list(texts), batch_size=batch_size, truncation=True, max_length=max_length)
        return [o["label"] for o in out]

    return predict


def check(name: str, value: float, target: str, ok: bool) -> dict:
    return {"target": name, "measured": value, "goal": target, "pass": bool(ok)}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, default=FPB_RUN)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-latency", type=int, default=200, help="test sentences timed one by one")
    parser.add_argument("--warmup", type=int, default=10, help="untimed single-sentence calls first")
    parser.add_argument("--repeats", type=int, default=3, help="batch-32 passes over the test set")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--test-csv", type=Path, default=None,
                        help="text,label CSV (default: bench/out/fpb50_split/test.csv, the finance benchmark's)")
    parser.add_argument("--out-dir", type=Path, default=OUT, help="bundle and JSON go here")
    parser.add_argument("--skip-optimum", action="store_true")
    parser.add_argument("--int8-schemes", action="store_true",
                        help="compare static and dynamic int8 instead (bench/results/int8_batching.json)")
    parser.add_argument("--rounds", type=int, default=5, help="--int8-schemes: interleaved timing rounds")
    parser.add_argument("--results", type=Path, default=RESULTS / "int8_batching.json",
                        help="--int8-schemes: the results JSON")
    return parser.parse_args(argv)


def trained_model_dir(run_dir: Path) -> Path:
    """The run's model directory; exit 2 with how to make it when there is none."""
    from domainft.errors import DomainftError
    from domainft.rundir import model_dir_of

    try:
        return model_dir_of(run_dir)
    except DomainftError:
        print(f"{run_dir}: no trained run there. Make the finance model on FPB 50Agree first:\n"
              "    python bench/finance_phrasebank.py --skip-peer\n"
              "(writes bench/out/domainft_fpb50), or pass --run-dir RUN_DIR.", file=sys.stderr)
        sys.exit(2)


def set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass


def export_bundle(run_dir: Path, out_dir: Path, threads: int):
    """The run exported with int8 on into OUT_DIR/export_bundle; export_run's result."""
    from domainft.export import export_run
    from domainft.rundir import RunDir

    bundle = out_dir / "export_bundle"
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = RunDir(run_dir).read_recipe("export").export.model_copy(update={"int8": True})
    print(f"exporting {run_dir} -> {bundle} (int8 {spec.quantization}, {threads} threads)", flush=True)
    return export_run(run_dir, spec=spec, out=bundle)


def runtimes_of(trained, model_dir: Path, bundle: Path, result, threads: int) -> tuple[list, dict]:
    """(name, predict(texts, batch_size) -> labels, file size in MB) for PyTorch fp32 and each ONNX model
    in the bundle; and domainft.serving's predictors by precision."""
    from domainft import serving

    runtimes = [("PyTorch fp32", lambda t, b: labels_of(trained.predict(t, batch_size=b)),
                 pytorch_weights_mb(trained, model_dir))]
    predictors = {"fp32": serving.load(bundle, precision="fp32", threads=threads)}
    if result.int8:
        predictors["int8"] = serving.load(bundle, precision="int8", threads=threads)
    else:
        print(f"no int8 model: {result.manifest['parity']['int8']['reason']}", flush=True)
    for precision, p in predictors.items():
        runtimes.append((f"ONNX {precision} (domainft.serving)",
                         lambda t, b, p=p: labels_of(p.predict(t, batch_size=b)),
                         mb((bundle / onnx_file(precision)).stat().st_size)))
    return runtimes, predictors


def onnx_file(precision: str) -> str:
    from domainft import serving

    return serving.INT8_FILE if precision == "int8" else serving.FP32_FILE


def timed(predict, lat_texts: list[str], texts: list[str], gold: list[str], args) -> dict:
    """Batch-1 latency, batch-N throughput and test scores of one predict(texts, batch_size)."""
    bs = args.batch_size
    latency = batch1_latency(lambda t: predict(t, 1), lat_texts, args.warmup)
    throughput, predicted = batch32_throughput(lambda t: predict(t, bs), texts, args.repeats)
    return {"batch1": latency, f"batch{bs}": throughput, "test": scores(gold, predicted)}


def optimum_rows(predictors: dict, rows: list[dict], bundle: Path, max_length: int, lat_texts, texts, gold,
                 args) -> list[dict]:
    """Optimum's pipeline on each bundle model beside domainft.serving's predictor."""
    bs, comparison = args.batch_size, []
    for precision in predictors:
        opt = optimum_pipeline(bundle, onnx_file(precision), args.threads, max_length)
        theirs = timed(opt, lat_texts, texts, gold, args)
        ours = next(r for r in rows if r["runtime"].startswith(f"ONNX {precision}"))
        comparison.append({
            "precision": precision, "optimum": theirs,
            "domainft": {"batch1": ours["batch1"], f"batch{bs}": ours[f"batch{bs}"]},
            "ratio_batch1": theirs["batch1"]["median_ms"] / ours["batch1"]["median_ms"],
            f"ratio_batch{bs}": ours[f"batch{bs}"]["sent_per_s"] / theirs[f"batch{bs}"]["sent_per_s"],
        })
        print(json.dumps(comparison[-1]), flush=True)
    return comparison


def targets_of(rows: list[dict]) -> list[dict]:
    """Issue 6's targets for int8 against PyTorch fp32 (the first row)."""
    base = rows[0]
    int8 = next((r for r in rows if r["runtime"].startswith("ONNX int8")), None)
    if not int8:
        return [check("int8 model exported", 0, "written", False)]
    drop = 100 * (base["test"]["accuracy"] - int8["test"]["accuracy"])
    size_ratio = int8["file_mb"] / base["file_mb"]
    return [
        check("int8 batch-1 speed-up vs PyTorch fp32", round(int8["speedup_batch1"], 2),
              f">= {TARGET_SPEEDUP:g}x", int8["speedup_batch1"] >= TARGET_SPEEDUP),
        check("int8 test accuracy lost vs PyTorch fp32 (points)", round(drop, 2),
              f"<= {TARGET_ACC_DROP:g}", drop <= TARGET_ACC_DROP),
        check("int8 size / PyTorch fp32 size", round(size_ratio, 3),
              f"<= {TARGET_SIZE_RATIO:g}", size_ratio <= TARGET_SIZE_RATIO),
    ]


def print_report(report: dict, args) -> None:
    rows, comparison, bs = report["rows"], report["optimum"], report["batch_size"]
    print(f"\n{report['threads']} CPU threads; batch-1 over {report['n_latency']} test sentences, batch-{bs} over "
          f"{report['test_sentences']}; tokenization included\n")
    print(f"| runtime | file size (MB) | batch-1 latency median / p90 (ms) | batch-{bs} throughput (sent/s) "
          "| test accuracy | test macro-F1 | speed-up vs PyTorch (batch 1) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['runtime']} | {r['file_mb']:.1f} | {r['batch1']['median_ms']:.2f} / {r['batch1']['p90_ms']:.2f} "
              f"| {r[f'batch{bs}']['sent_per_s']:.0f} | {r['test']['accuracy']:.4f} | {r['test']['macro_f1']:.4f} "
              f"| {r['speedup_batch1']:.2f}x |")
    if comparison:
        print(f"\n| bundle model | domainft.serving batch-1 median (ms) | Optimum pipeline batch-1 median (ms) "
              f"| domainft batch-{bs} (sent/s) | Optimum batch-{bs} (sent/s) | domainft / Optimum throughput "
              f"batch 1 | domainft / Optimum throughput batch {bs} |")
        print("|---|---|---|---|---|---|---|")
        for c in comparison:
            print(f"| {c['precision']} | {c['domainft']['batch1']['median_ms']:.2f} "
                  f"| {c['optimum']['batch1']['median_ms']:.2f} | {c['domainft'][f'batch{bs}']['sent_per_s']:.0f} "
                  f"| {c['optimum'][f'batch{bs}']['sent_per_s']:.0f} | {c['ratio_batch1']:.2f}x "
                  f"| {c[f'ratio_batch{bs}']:.2f}x |")
    print("\ntargets:")
    for t in report["targets"]:
        print(f"- {t['target']}: {t['measured']} (goal {t['goal']}): {'PASS' if t['pass'] else 'FAIL'}")
    print(f"\nwrote {args.out_dir / 'export_latency.json'}")


# ----- --int8-schemes: static against dynamic int8 ------------------------------------------------

def split_texts(run_dir: Path) -> dict[str, tuple[list[str], list[str]]]:
    """{split: (texts, labels)} of the run's validation and test splits, read as the run read them."""
    from domainft.model import load
    from domainft.prepare import read_data
    from domainft.rundir import RunDir

    run = RunDir(run_dir)
    data = read_data(load(run.model_dir).task, run.read_recipe("export"))
    return {name: ([e.text for e in split], [e.label for e in split])
            for name, split in (("validation", data.validation), ("test", data.test)) if split}


def scheme_bundles(run_dir: Path, out_dir: Path) -> dict[str, Path]:
    """The run exported twice, int8 static (the default) and dynamic: {mode: bundle}."""
    from domainft.export import export_run
    from domainft.rundir import RunDir

    spec = RunDir(run_dir).read_recipe("export").export
    bundles = {}
    for mode in ("static", "dynamic"):
        bundles[mode] = out_dir / f"int8_{mode}_bundle"
        start = time.perf_counter()
        result = export_run(run_dir, spec.model_copy(update={"int8": True, "int8_mode": mode}), out=bundles[mode])
        if not result.int8:
            sys.exit(f"{mode} int8 was not written: {result.manifest['parity']['int8']['reason']}")
        print(f"{mode}: exported in {time.perf_counter() - start:.0f} s", flush=True)
    return bundles


def scheme_predictors(bundles: dict[str, Path], threads: int) -> dict:
    from domainft import serving

    batched = serving.load(bundles["dynamic"], "int8", threads=threads)
    batched.one_row_at_a_time = False  # as Optimum or any server that batches the file runs it
    return {"fp32": serving.load(bundles["static"], "fp32", threads=threads),
            "int8 dynamic, batched": batched,
            "int8 dynamic, one text at a time (domainft.serving)": serving.load(bundles["dynamic"], "int8",
                                                                                threads=threads),
            "int8 static (calibrated)": serving.load(bundles["static"], "int8", threads=threads)}


def batch_dependence(predictor, texts: list[str], batch_size: int) -> dict:
    """Texts whose label differs between batch size 1 and `batch_size` (length-sorted batches, as
    predict makes them), and the largest score difference."""
    alone = predictor.predict(texts, batch_size=1)
    batched = predictor.predict(texts, batch_size=batch_size)
    flips = sum(a["label"] != b["label"] for a, b in zip(alone, batched))
    diff = max(abs(a["scores"][k] - b["scores"][k]) for a, b in zip(alone, batched) for k in a["scores"])
    return {"texts": len(texts), "label_changes": flips, "max_score_diff": diff, "batched": batched}


def time_rounds(predictors: dict, lat_texts: list[str], texts: list[str], args) -> dict:
    """Batch-1 ms per text and batch-N texts/s per runtime: wall and CPU time, medians over
    args.rounds rounds, each round timing every runtime in turn."""
    bs, times = args.batch_size, {name: {"b1_ms": [], "b1_cpu_ms": [], "bN": [], "bN_cpu": []} for name in predictors}
    for p in predictors.values():  # warm up
        p.predict(texts[:bs], batch_size=bs)
        for t in lat_texts[:args.warmup]:
            p.predict([t])
    for r in range(args.rounds):
        for name, p in predictors.items():
            gc.collect()
            gc.disable()
            try:
                wall, cpu = time.perf_counter(), time.process_time()
                for t in lat_texts:
                    p.predict([t])
                times[name]["b1_ms"].append((time.perf_counter() - wall) * 1000 / len(lat_texts))
                times[name]["b1_cpu_ms"].append((time.process_time() - cpu) * 1000 / len(lat_texts))
                wall, cpu = time.perf_counter(), time.process_time()
                p.predict(texts, batch_size=bs)
                times[name]["bN"].append(len(texts) / (time.perf_counter() - wall))
                times[name]["bN_cpu"].append(len(texts) / (time.process_time() - cpu))
            finally:
                gc.enable()
        print(f"round {r + 1}/{args.rounds} done; load average {os.getloadavg()[0]:.2f}", flush=True)
    return {name: {"batch1_median_ms": statistics.median(t["b1_ms"]), "batch1_best_ms": min(t["b1_ms"]),
                   "batch1_cpu_ms": statistics.median(t["b1_cpu_ms"]),
                   f"batch{bs}_sent_per_s": statistics.median(t["bN"]), f"batch{bs}_best_sent_per_s": max(t["bN"]),
                   f"batch{bs}_sent_per_cpu_s": statistics.median(t["bN_cpu"])}
            for name, t in times.items()}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def int8_schemes(args) -> None:
    from domainft.rundir import RunDir

    model_dir = trained_model_dir(args.run_dir)
    run_dir = model_dir.parent
    set_threads(args.threads)
    bundles = scheme_bundles(run_dir, args.out_dir)
    splits = split_texts(run_dir)
    predictors = scheme_predictors(bundles, args.threads)
    bs = args.batch_size
    val_texts = splits["validation"][0]
    rows = []
    for name, p in predictors.items():
        row = {"runtime": name, "quality": {}, "batch_dependence": {}}
        for split, (texts, gold) in splits.items():
            dep = batch_dependence(p, texts, bs)
            row["quality"][split] = scores(gold, labels_of(dep.pop("batched")))
            row["batch_dependence"][split] = dep
        rows.append(row)
        print(json.dumps(row), flush=True)
    load_before = os.getloadavg()[0]
    timing = time_rounds(predictors, val_texts[:args.n_latency], val_texts, args)
    for row in rows:
        row["timing"] = timing[row["runtime"]]
    manifests = {mode: json.loads((b / "domainft.json").read_text()) for mode, b in bundles.items()}
    m, recipe = manifests["static"], RunDir(run_dir).read_recipe("export")
    trained = {"base": m["base"], "tuning": m["tuning"]["method"], "epochs": recipe.train.epochs,
               "data": str(recipe.data.path), "max_length": m["max_length"],
               "run_validation": m["metrics"].get("validation"), "run_test": m["metrics"].get("test")}
    report = {"command": " ".join(["python", *sys.argv]), "cpu": cpu_model(), "cpus": os.cpu_count(),
              "threads": args.threads, "run_dir": str(run_dir), "run": trained, "batch_size": bs,
              "rounds": args.rounds,
              "latency_texts": len(val_texts[:args.n_latency]), "throughput_texts": len(val_texts),
              "load_average_1m": {"before_timing": load_before, "after": os.getloadavg()[0]},
              "export": {mode: {"files": m["files"], "int8": m["parity"]["int8"]} for mode, m in manifests.items()},
              "pytorch_validation": manifests["static"]["parity"]["pytorch"], "rows": rows}
    save_results(args.results, report, indent=2)
    print_int8_schemes(report, args)


def print_int8_schemes(report: dict, args) -> None:
    bs, splits, load = report["batch_size"], list(report["rows"][0]["quality"]), report["load_average_1m"]
    print(f"\n{report['cpu']}, {report['threads']} threads; batch 1 over {report['latency_texts']} validation "
          f"texts, batch {bs} over {report['throughput_texts']}; medians of {report['rounds']} interleaved rounds; "
          f"load average {load['before_timing']:.2f} -> {load['after']:.2f}\n")
    print(f"| runtime | batch-1 ms (wall / CPU) | batch-{bs} sent/s (wall / per CPU-s) | "
          + " | ".join(f"{s} acc / macro-F1" for s in splits)
          + f" | label changes batch 1 vs {bs} ({' + '.join(splits)}) | max score diff |")
    print("|---|---|---|" + "---|" * len(splits) + "---|---|")
    for r in report["rows"]:
        t, dep = r["timing"], r["batch_dependence"]
        changes = sum(d["label_changes"] for d in dep.values())
        total = sum(d["texts"] for d in dep.values())
        print(f"| {r['runtime']} | {t['batch1_median_ms']:.2f} / {t['batch1_cpu_ms']:.2f} "
              f"| {t[f'batch{bs}_sent_per_s']:.0f} / {t[f'batch{bs}_sent_per_cpu_s']:.0f} | "
              + " | ".join(f"{r['quality'][s]['accuracy']:.4f} / {r['quality'][s]['macro_f1']:.4f}" for s in splits)
              + f" | {changes} of {total} | {max(d['max_score_diff'] for d in dep.values()):.2e} |")
    for mode, e in report["export"].items():
        q = e["int8"]["quantization"]
        int8 = e["files"]["int8"]
        print(f"- {mode}: {int8['file']} {int8['mb']} MB, gate drop {e['int8']['drop_points']:.2f} "
              f"points" + (f", {q['calibration_examples']} calibration examples" if mode == "static" else ""))
    print(f"\nwrote {args.results}")


def main() -> None:
    args = parse_args()
    if args.int8_schemes:
        int8_schemes(args)
        return
    model_dir = trained_model_dir(args.run_dir)
    run_dir = model_dir.parent
    set_threads(args.threads)
    from domainft.model import load

    result = export_bundle(run_dir, args.out_dir, args.threads)
    bundle = args.out_dir / "export_bundle"
    test_csv = test_split(args.test_csv)
    texts, gold = read_test(test_csv)
    trained = load(model_dir)
    unknown = sorted(set(gold) - set(trained.labels))
    if unknown:
        sys.exit(f"{test_csv}: labels {unknown} are not the model's {trained.labels}")
    lat_texts = texts[:args.n_latency]
    print(f"test set: {test_csv} ({len(texts)} sentences); batch-1 latency over {len(lat_texts)}, "
          f"batch-{args.batch_size} throughput x{args.repeats}; load average {os.getloadavg()[0]:.2f}", flush=True)

    runtimes, predictors = runtimes_of(trained, model_dir, bundle, result, args.threads)
    rows = []
    for name, predict, size in runtimes:
        rows.append({"runtime": name, "file_mb": size, **timed(predict, lat_texts, texts, gold, args)})
        print(json.dumps(rows[-1]), flush=True)
    for r in rows:
        r["speedup_batch1"] = rows[0]["batch1"]["median_ms"] / r["batch1"]["median_ms"]
    comparison = [] if args.skip_optimum else optimum_rows(
        predictors, rows, bundle, trained.manifest["max_length"], lat_texts, texts, gold, args)

    run_metrics = read_metrics(run_dir) if (run_dir / METRICS_FILE).is_file() else {}
    report = {"run_dir": str(run_dir), "bundle": str(bundle), "test_csv": str(test_csv),
              "test_sentences": len(texts), "threads": args.threads, "batch_size": args.batch_size,
              "n_latency": len(lat_texts), "repeats": args.repeats, "load_average_1m": os.getloadavg()[0],
              "run_test_metrics": {k: run_metrics.get("test", {}).get(k) for k in ("accuracy", "macro_f1")},
              "export": {"files": result.manifest["files"], "parity": result.manifest["parity"],
                         "versions": result.manifest["versions"]},
              "rows": rows, "optimum": comparison, "targets": targets_of(rows)}
    save_results(args.out_dir / "export_latency.json", report, indent=2)
    print_report(report, args)


if __name__ == "__main__":
    main()
