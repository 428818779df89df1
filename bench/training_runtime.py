"""Benchmark: where training time goes, on the finance recipe with real data (Financial PhraseBank
50Agree, the split domainft makes, packaged MiniLM).

Experiments, each saved to bench/results/training_runtime.json as it finishes (--resume skips
those there):
- quality: time to quality. The plain Trainer script (bench/peer_trainer_script.py: pad 64,
  3 epochs at 2e-5, best checkpoint on validation macro-F1) and domainft's recipe as shipped, one
  after the other. Reported: the wall time until domainft's validation macro-F1 first reaches the
  script's best, against the script's whole training time (target: at most 0.5x), and both runs'
  whole times.
- overhead: a 2-epoch domainft run's training throughput against the bare training step of the
  same model, batch size, collator and length-grouped order (forward, backward, AdamW step, one
  epoch, no evaluation, checkpoints or callbacks; in its own process, once before the run and
  once after, averaged); and how the run's time splits into evaluation and the rest
  (checkpoints, logging, Python).
- ddp: one epoch of the recipe (no early stopping, fp32) in one process with 2 threads, and under
  `torchrun --nproc_per_node=2` with 1 thread per process, same global batch.

    python bench/training_runtime.py [--experiments quality overhead ddp] [--resume] [--readme]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from runner import (
    FINANCE_RECIPE,
    FPB,
    OUT,
    PEER_TRAINER,
    RESULTS,
    ROOT,
    RunFailed,
    base_path,
    load_results,
    read_metrics,
    run_recipe,
    run_script_json,
    save_results,
    write_readme_section,
    write_split,
)

RESULTS_FILE = RESULTS / "training_runtime.json"
README_SECTION = "training_runtime.py"
WORK = OUT / "training_runtime"
DATA = [f"data.path={FPB}", "base=minilm"]


def quality(results: dict) -> dict:
    from domainft.recipe import Recipe

    split = write_split(Recipe.from_yaml(FINANCE_RECIPE, DATA), WORK / "split")
    peer, _ = run_script_json(PEER_TRAINER, [split, base_path("minilm"), WORK / "peer_checkpoints"])
    m = run_recipe(FINANCE_RECIPE, DATA, WORK / "finance")
    target = peer["best_validation_macro_f1"]
    evals = [e for e in _history(m) if "eval_macro_f1" in e]
    reached = next((e for e in evals if e["eval_macro_f1"] >= target), None)
    return {"peer_best_validation_macro_f1": target, "peer_train_wall_s": peer["train_wall_s"],
            "peer_test_macro_f1": peer["test_macro_f1"], "peer_validation_history": peer["validation_history"],
            "domainft_train_wall_s": m["train"]["wall_time_s"], "domainft_test_macro_f1": m["test"]["macro_f1"],
            "domainft_best_validation_macro_f1": max(e["eval_macro_f1"] for e in evals),
            "domainft_validation_history": [{"epoch": e["epoch"], "elapsed_s": e.get("elapsed_s"),
                                             "macro_f1": e["eval_macro_f1"]} for e in evals],
            "reached_at": None if reached is None else {"epoch": reached["epoch"], "elapsed_s": reached["elapsed_s"]},
            "time_to_quality_ratio": None if reached is None else reached["elapsed_s"] / peer["train_wall_s"],
            "whole_run_ratio": m["train"]["wall_time_s"] / peer["train_wall_s"]}


def _history(m: dict) -> list[dict]:
    return m["train"].get("history") or m["train"].get("log") or []


def overhead(results: dict) -> dict:
    """The bare loop, a 2-epoch domainft run (2 evaluations, 2 checkpoints), the bare loop again,
    back to back, so that the machine's load is alike for all three (the ratio is what counts)."""
    sets = [*DATA, "train.epochs=2", "train.early_stopping.enabled=false"]
    before, _ = run_script_json(Path(__file__), ["--bare-step", *sets])
    m = run_recipe(FINANCE_RECIPE, sets, WORK / "overhead")
    after, _ = run_script_json(Path(__file__), ["--bare-step", *sets])
    bare = (before["examples_per_s"] + after["examples_per_s"]) / 2
    evals = [e for e in _history(m) if "eval_runtime" in e]
    eval_s = sum(e["eval_runtime"] for e in evals)
    wall = m["train"]["wall_time_s"]
    steps_s = m["train"]["epochs_run"] * m["data"]["counts"]["train"] / bare
    return {"run_examples_per_s": m["train"]["examples_per_s"], "bare_examples_per_s": round(bare, 2),
            "throughput_ratio": m["train"]["examples_per_s"] / bare, "train_wall_s": wall,
            "evaluation_s": round(eval_s, 1), "evaluations": len(evals),
            "rest_s": round(wall - eval_s - steps_s, 1), "bare_runs": [before, after]}


def bare_step(sets: list[str]) -> None:
    """One epoch of plain training steps on the recipe's data, model and batches; one JSON line."""
    import torch
    from torch.utils.data import DataLoader
    from transformers import AutoModelForSequenceClassification, get_linear_schedule_with_warmup
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from domainft.prepare import prepare
    from domainft.recipe import Recipe

    recipe = Recipe.from_yaml(FINANCE_RECIPE, sets)
    p = prepare(recipe, echo=lambda *a: None)
    train = p.encoded["train"]
    keep = [c for c in train.column_names if c in ("input_ids", "attention_mask", "token_type_ids", "labels", "label")]
    train = train.select_columns(keep)
    torch.manual_seed(recipe.train.seed)
    model = AutoModelForSequenceClassification.from_pretrained(p.base.path, num_labels=len(p.data.labels))
    model.train()
    batch = recipe.train.batch_size
    sampler = LengthGroupedSampler(batch, dataset=train, lengths=[len(x) for x in train["input_ids"]])
    loader = DataLoader(train, batch_size=batch, sampler=sampler, collate_fn=p.task.collator(p.tokenizer))
    # The optimizer the Trainer uses by default (transformers 4.57: adamw_torch_fused).
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.train.lr or p.method.default_lr,
                                  weight_decay=recipe.train.weight_decay, fused=True)
    schedule = get_linear_schedule_with_warmup(optimizer, 0, len(loader))
    start, seen = time.perf_counter(), 0
    for inputs in loader:
        loss = model(**inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.train.max_grad_norm)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        seen += len(inputs["input_ids"])
    wall = time.perf_counter() - start
    print(json.dumps({"examples": seen, "wall_s": round(wall, 2), "examples_per_s": round(seen / wall, 2),
                      "steps": len(loader), "threads": torch.get_num_threads()}))


def ddp(results: dict) -> dict:
    sets = [*DATA, "train.epochs=1", "train.early_stopping.enabled=false", "train.precision=fp32"]
    one = run_recipe(FINANCE_RECIPE, sets, WORK / "ddp_one", env={**os.environ, "OMP_NUM_THREADS": "2"})
    out = WORK / "ddp_two"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "domainft",
           "run", str(FINANCE_RECIPE), "--quiet", *[x for s in [*sets, f"output.dir={out}", "output.overwrite=true"]
                                                     for x in ("--set", s)]]
    if subprocess.run(cmd, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}).returncode:
        raise RunFailed("torchrun run failed (its error is printed above)")
    two = read_metrics(out)
    return {"one_process_train_s": one["train"]["wall_time_s"], "two_processes_train_s": two["train"]["wall_time_s"],
            "speedup": one["train"]["wall_time_s"] / two["train"]["wall_time_s"],
            "one_test_macro_f1": one["test"]["macro_f1"], "two_test_macro_f1": two["test"]["macro_f1"],
            "two_distributed": two["train"]["distributed"]}


EXPERIMENTS = {"quality": quality, "overhead": overhead, "ddp": ddp}


def render(results: dict) -> str:
    rows = results.get("experiments", {})
    lines = []
    q = rows.get("quality")
    if q:
        reached = q["reached_at"]
        when = (f"{reached['elapsed_s']:.0f} s (epoch {reached['epoch']:.0f})" if reached else "never")
        ratio = f"{q['time_to_quality_ratio']:.2f}x" if q["time_to_quality_ratio"] is not None else "–"
        lines += ["| time to quality | value |", "|---|---|",
                  "| plain script: best validation macro-F1 / whole training | "
                  f"{q['peer_best_validation_macro_f1']:.4f} / {q['peer_train_wall_s']:.0f} s |",
                  f"| domainft: first reaches it after | {when} |",
                  f"| ratio (target at most 0.5x) | {ratio} |",
                  f"| domainft whole run / the script's | {q['domainft_train_wall_s']:.0f} s / "
                  f"{q['peer_train_wall_s']:.0f} s = {q['whole_run_ratio']:.2f}x |",
                  f"| test macro-F1: domainft / script | {q['domainft_test_macro_f1']:.4f} / "
                  f"{q['peer_test_macro_f1']:.4f} |", ""]
    o = rows.get("overhead")
    if o:
        lines += ["| overhead | value |", "|---|---|",
                  f"| run throughput / bare step throughput | {o['run_examples_per_s']:.1f} / "
                  f"{o['bare_examples_per_s']:.1f} examples/s = {o['throughput_ratio']:.2f}x |",
                  f"| of the run's {o['train_wall_s']:.0f} s: evaluation ({o['evaluations']} times) | "
                  f"{o['evaluation_s']:.0f} s |",
                  f"| the rest beyond bare steps (checkpoints, collation, Python) | {o['rest_s']:.0f} s |", ""]
    d = rows.get("ddp")
    if d:
        lines += ["| one epoch, same global batch | train s | test macro-F1 |", "|---|---|---|",
                  f"| 1 process, 2 threads | {d['one_process_train_s']:.0f} | {d['one_test_macro_f1']:.4f} |",
                  f"| torchrun, 2 processes x 1 thread | {d['two_processes_train_s']:.0f} | "
                  f"{d['two_test_macro_f1']:.4f} |",
                  f"| speedup | {d['speedup']:.2f}x | |", ""]
    return "\n".join(lines).rstrip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS), choices=list(EXPERIMENTS))
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--readme", action="store_true")
    ap.add_argument("--bare-step", nargs="*", help=argparse.SUPPRESS)  # the child of `overhead`: its --set's
    args = ap.parse_args()
    if args.bare_step is not None:
        return bare_step(args.bare_step)
    results = load_results(RESULTS_FILE, {"experiments": {}}) if args.resume else {"experiments": {}}
    for name in args.experiments:
        if name in results["experiments"]:
            continue
        try:
            row = EXPERIMENTS[name](results)
        except RunFailed as e:
            print(e, flush=True)
            continue
        results["experiments"][name] = {**row, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                        "machine": platform.processor() or platform.machine(),
                                        "cpus": os.cpu_count()}
        save_results(RESULTS_FILE, results)
        print(json.dumps({name: row}, default=str)[:2000], flush=True)
    table = render(results)
    print(table)
    if args.readme:
        write_readme_section(README_SECTION, table)


if __name__ == "__main__":
    main()
