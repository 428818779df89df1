"""Benchmark: serving the finance model exported to ONNX, on 2 CPU threads.

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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from finance_phrasebank import FPB, OUT

DEFAULT_RUN = OUT / "domainft_fpb50"
WEIGHT_SUFFIXES = (".safetensors", ".bin")
TARGET_SPEEDUP = 4.0  # int8 vs PyTorch fp32, batch-1 median latency
TARGET_ACC_DROP = 1.0  # points of test accuracy int8 may lose against PyTorch fp32
TARGET_SIZE_RATIO = 0.25  # int8 file size / PyTorch fp32 weights


def read_test(path: Path) -> tuple[list[str], list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["label"] for r in rows]


def test_split(test_csv: Path | None) -> Path:
    """--test-csv, else the finance benchmark's split (written by its own write_split when absent)."""
    if test_csv is not None:
        if not test_csv.is_file():
            sys.exit(f"--test-csv {test_csv}: no such file")
        return test_csv
    path = OUT / "fpb50_split" / "test.csv"
    if not path.is_file():
        from finance_phrasebank import write_split

        from domainft.recipe import Recipe

        recipe = Recipe.from_yaml(ROOT / "recipes" / "finance_sentiment.yaml", [f"data.path={FPB}"])
        path = write_split(recipe) / "test.csv"
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-latency", type=int, default=200, help="test sentences timed one by one")
    parser.add_argument("--warmup", type=int, default=10, help="untimed single-sentence calls first")
    parser.add_argument("--repeats", type=int, default=3, help="batch-32 passes over the test set")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--test-csv", type=Path, default=None,
                        help="text,label CSV (default: bench/out/fpb50_split/test.csv, the finance benchmark's)")
    parser.add_argument("--out-dir", type=Path, default=OUT, help="bundle and JSON go here")
    parser.add_argument("--skip-optimum", action="store_true")
    args = parser.parse_args()

    from domainft.errors import DomainftError
    from domainft.model import model_dir_of

    try:
        model_dir = model_dir_of(args.run_dir)
    except DomainftError:
        print(f"{args.run_dir}: no trained run there. Make the finance model on FPB 50Agree first:\n"
              "    python bench/finance_phrasebank.py --skip-peer\n"
              "(writes bench/out/domainft_fpb50), or pass --run-dir RUN_DIR.", file=sys.stderr)
        sys.exit(2)

    import torch

    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    from domainft import serving
    from domainft.export import export_run, saved_recipe
    from domainft.model import load

    bundle = args.out_dir / "export_bundle"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    spec = saved_recipe(model_dir.parent).export.model_copy(update={"int8": True})
    print(f"exporting {model_dir.parent} -> {bundle} (int8 {spec.quantization}, {args.threads} threads)", flush=True)
    result = export_run(model_dir.parent, spec=spec, out=bundle)

    test_csv = test_split(args.test_csv)
    texts, gold = read_test(test_csv)
    trained = load(model_dir)
    unknown = sorted(set(gold) - set(trained.labels))
    if unknown:
        sys.exit(f"{test_csv}: labels {unknown} are not the model's {trained.labels}")
    lat_texts = texts[:args.n_latency]
    bs = args.batch_size
    max_length = trained.manifest["max_length"]
    print(f"test set: {test_csv} ({len(texts)} sentences); batch-1 latency over {len(lat_texts)}, "
          f"batch-{bs} throughput x{args.repeats}; load average {os.getloadavg()[0]:.2f}", flush=True)

    runtimes = [("PyTorch fp32", lambda t, b: labels_of(trained.predict(t, batch_size=b)),
                 pytorch_weights_mb(trained, model_dir))]
    predictors = {"fp32": serving.load(bundle, precision="fp32", threads=args.threads)}
    if result.int8:
        predictors["int8"] = serving.load(bundle, precision="int8", threads=args.threads)
    else:
        print(f"no int8 model: {result.manifest['parity']['int8']['reason']}", flush=True)
    for precision, p in predictors.items():
        runtimes.append((f"ONNX {precision} (domainft.serving)",
                         lambda t, b, p=p: labels_of(p.predict(t, batch_size=b)),
                         mb((bundle / (serving.INT8_FILE if precision == "int8" else serving.FP32_FILE)).stat().st_size)))

    rows = []
    for name, predict, size in runtimes:
        latency = batch1_latency(lambda t, f=predict: f(t, 1), lat_texts, args.warmup)
        throughput, predicted = batch32_throughput(lambda t, f=predict: f(t, bs), texts, args.repeats)
        rows.append({"runtime": name, "file_mb": size, "batch1": latency, f"batch{bs}": throughput,
                     "test": scores(gold, predicted)})
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]
    for r in rows:
        r["speedup_batch1"] = base["batch1"]["median_ms"] / r["batch1"]["median_ms"]

    comparison = []
    if not args.skip_optimum:
        for precision, p in predictors.items():
            file_name = serving.INT8_FILE if precision == "int8" else serving.FP32_FILE
            opt = optimum_pipeline(bundle, file_name, args.threads, max_length)
            latency = batch1_latency(lambda t, f=opt: f(t, 1), lat_texts, args.warmup)
            throughput, predicted = batch32_throughput(lambda t, f=opt: f(t, bs), texts, args.repeats)
            ours = next(r for r in rows if r["runtime"].startswith(f"ONNX {precision}"))
            comparison.append({
                "precision": precision, "optimum": {"batch1": latency, f"batch{bs}": throughput,
                                                    "test": scores(gold, predicted)},
                "domainft": {"batch1": ours["batch1"], f"batch{bs}": ours[f"batch{bs}"]},
                "ratio_batch1": latency["median_ms"] / ours["batch1"]["median_ms"],
                f"ratio_batch{bs}": ours[f"batch{bs}"]["sent_per_s"] / throughput["sent_per_s"],
            })
            print(json.dumps(comparison[-1]), flush=True)

    int8 = next((r for r in rows if r["runtime"].startswith("ONNX int8")), None)
    if int8:
        drop = 100 * (base["test"]["accuracy"] - int8["test"]["accuracy"])
        size_ratio = int8["file_mb"] / base["file_mb"]
        targets = [
            check("int8 batch-1 speed-up vs PyTorch fp32", round(int8["speedup_batch1"], 2),
                  f">= {TARGET_SPEEDUP:g}x", int8["speedup_batch1"] >= TARGET_SPEEDUP),
            check("int8 test accuracy lost vs PyTorch fp32 (points)", round(drop, 2),
                  f"<= {TARGET_ACC_DROP:g}", drop <= TARGET_ACC_DROP),
            check("int8 size / PyTorch fp32 size", round(size_ratio, 3),
                  f"<= {TARGET_SIZE_RATIO:g}", size_ratio <= TARGET_SIZE_RATIO),
        ]
    else:
        targets = [check("int8 model exported", 0, "written", False)]

    run_metrics = json.loads((model_dir.parent / "metrics.json").read_text()) \
        if (model_dir.parent / "metrics.json").is_file() else {}
    report = {"run_dir": str(model_dir.parent), "bundle": str(bundle), "test_csv": str(test_csv),
              "test_sentences": len(texts), "threads": args.threads, "batch_size": bs,
              "n_latency": len(lat_texts), "repeats": args.repeats, "load_average_1m": os.getloadavg()[0],
              "run_test_metrics": {k: run_metrics.get("test", {}).get(k) for k in ("accuracy", "macro_f1")},
              "export": {"files": result.manifest["files"], "parity": result.manifest["parity"],
                         "versions": result.manifest["versions"]},
              "rows": rows, "optimum": comparison, "targets": targets}
    (args.out_dir / "export_latency.json").write_text(json.dumps(report, indent=2))

    print(f"\n{args.threads} CPU threads; batch-1 over {len(lat_texts)} test sentences, batch-{bs} over "
          f"{len(texts)}; tokenization included\n")
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
    print("\ntargets (issue 6):")
    for t in targets:
        print(f"- {t['target']}: {t['measured']} (goal {t['goal']}): {'PASS' if t['pass'] else 'FAIL'}")
    print(f"\nwrote {args.out_dir / 'export_latency.json'}")


if __name__ == "__main__":
    main()
