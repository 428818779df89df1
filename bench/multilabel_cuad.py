"""Multi-label clause typing on real CUAD: domainft's multilabel legal recipe against a plain Hugging
Face Trainer script (bench/peer_multilabel_script.py: sigmoid + BCE, threshold 0.5) on the SAME
split, written from domainft's own data bundle; the single-label legal recipe beside them.

Per seed (train.seed; the split's seed stays the recipe's 13, so every run sees one split):
domainft's recipe, then the peer on the base domainft used, then (unless --skip-single-label) the
single-label recipe. Each finished run is saved to the results JSON at once; --resume skips the runs
already there. The single-label recipe drops CUAD's multi-category excerpts, so its test set is
smaller: its scores are beside the others, not comparable number for number.

    python bench/multilabel_cuad.py [--seeds 13 14 15] [--resume] [--readme]
    python bench/multilabel_cuad.py --smoke      # the synthetic sample, 1 epoch, offline: end to end in minutes

Reads ../shared/datasets/cuad/master_clauses.csv.gz at run time (--data another path). Results:
bench/results/multilabel_cuad.json (--smoke: bench/out/multilabel_cuad_smoke.json); --readme puts
the table into bench/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from runner import (
    DATASETS,
    OUT,
    RESULTS,
    ROOT,
    RunFailed,
    child_env,
    read_manifest,
    readme_markers,
    recipe_file,
    run_recipe,
    run_script_json,
    save_results,
    write_readme_section,
)

RECIPE = "legal_clause_review_multilabel"
SINGLE = "legal_clause_review"
PEER = ROOT / "bench" / "peer_multilabel_script.py"
CUAD = DATASETS / "cuad" / "master_clauses.csv.gz"
SAMPLE = ROOT / "data" / "legal_clause_sample.csv.gz"
SECTION = "multilabel_cuad"  # results file names
README_SECTION = "multilabel_cuad.py"  # bench/README.md markers
METRICS = ("micro_f1", "macro_f1", "samples_f1", "subset_accuracy")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", nargs="+", type=int, help="train.seed values (default 13 14 15; --smoke: 13)")
    p.add_argument("--data", type=Path, help=f"the CUAD master clauses table (default {CUAD}; --smoke: the sample)")
    p.add_argument("--epochs", type=float, help="train.epochs of the domainft runs (default the recipes'; "
                                                "--smoke: 1)")
    p.add_argument("--peer-epochs", type=float, help="the peer's epochs (default its 3; --smoke: 1)")
    p.add_argument("--peer-lr", type=float, help="the peer's learning rate (default its 2e-5; a small base such "
                                                 "as bert-tiny wants domainft's 1e-4)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="FIELD=VALUE for every domainft run (and the split the peer sees)")
    p.add_argument("--skip-peer", action="store_true")
    p.add_argument("--skip-single-label", action="store_true", help="leave out the single-label recipe")
    p.add_argument("--offline", action="store_true", help="HF_HUB_OFFLINE=1: the recipes' Hub base is "
                                                          "skipped at once (packaged MiniLM)")
    p.add_argument("--smoke", action="store_true", help="the sample data, 1 epoch, offline, one seed")
    p.add_argument("--resume", action="store_true", help="keep the runs already in the results JSON")
    p.add_argument("--out", type=Path, help="results JSON")
    p.add_argument("--readme", action="store_true", help="also write the table into bench/README.md "
                                                         f"between the {readme_markers(README_SECTION)[0]} markers")
    args = p.parse_args(argv)
    args.seeds = args.seeds or ([13] if args.smoke else [13, 14, 15])
    args.data = args.data or (SAMPLE if args.smoke else CUAD)
    if args.smoke:
        args.epochs = args.epochs or 1
        args.peer_epochs = args.peer_epochs or 1
    args.out = args.out or (OUT / f"{SECTION}_smoke.json" if args.smoke else RESULTS / f"{SECTION}.json")
    args.work = OUT / args.out.stem  # run directories, the split, peer checkpoints
    return args


def overrides(args) -> list[str]:
    return [f"data.path={args.data}", *([f"train.epochs={args.epochs:g}"] if args.epochs else []), *args.overrides]


def env(args) -> dict:
    return child_env(offline=args.offline or args.smoke)


def write_split(args) -> Path:
    """domainft's train/validation/test of the multilabel recipe as {"text", "labels"} JSONL, and the
    label order, for the peer."""
    from domainft.recipe import Recipe
    from domainft.tasks import get_task

    recipe = Recipe.from_yaml(recipe_file(RECIPE), overrides(args))
    data = get_task(recipe.task).load_data(recipe.data)
    split_dir = args.work / "split"
    split_dir.mkdir(parents=True, exist_ok=True)
    for name, examples in data.splits().items():
        (split_dir / f"{name}.jsonl").write_text(
            "".join(json.dumps({"text": e.text, "labels": list(e.labels)}, ensure_ascii=False) + "\n"
                    for e in examples), encoding="utf-8")
    (split_dir / "labels.json").write_text(json.dumps(data.labels))
    print(f"split: {data.report['counts']}, {len(data.labels)} labels", flush=True)
    return split_dir


def domainft_row(recipe: str, seed: int, args) -> dict:
    run_dir = args.work / f"{recipe}_s{seed}"
    start = time.perf_counter()
    m = run_recipe(recipe, [*overrides(args), f"train.seed={seed}"], run_dir, env=env(args))
    manifest = read_manifest(run_dir)
    base = manifest["base"]
    keys = METRICS if recipe == RECIPE else ("micro_f1", "macro_f1", "accuracy")
    return {"recipe": recipe, "tool": "domainft", "seed": seed, "test": {k: m["test"][k] for k in keys},
            "test_n": m["test"]["n"], "counts": m["data"]["counts"],
            "thresholds": m["test"].get("thresholds", {}).get("rule"),
            "threshold": next(iter(m["test"].get("thresholds", {}).get("values", {}).values()), None),
            "train_wall_s": m["train"]["wall_time_s"], "process_wall_s": round(time.perf_counter() - start, 1),
            "epochs": m["train"]["epochs_run"], "base": base["requested"], "base_path": base["path"],
            "max_length": manifest["max_length"]}


def peer_row(seed: int, split_dir: Path, own: dict, args) -> dict:
    checkpoints = args.work / "peer_checkpoints"
    shutil.rmtree(checkpoints, ignore_errors=True)
    # The peer pads to the max_length domainft truncates at, so both see the same tokens.
    out, wall = run_script_json(PEER, [split_dir, own["base_path"], checkpoints, "--seed", seed,
                                       "--max-length", own["max_length"],
                                       *(["--epochs", f"{args.peer_epochs:g}"] if args.peer_epochs else []),
                                       *(["--lr", f"{args.peer_lr:g}"] if args.peer_lr else [])], env(args))
    if out["counts"] != own["counts"]:
        raise RunFailed(f"peer split {out['counts']} differs from domainft's {own['counts']}")
    return {"recipe": RECIPE, "tool": "peer", "label": out["tool"], "seed": seed,
            "test": {k: out[k] for k in METRICS}, "test_n": out["counts"]["test"], "counts": out["counts"],
            "train_wall_s": out["train_wall_s"], "process_wall_s": round(wall, 1), "epochs": out["epochs"],
            "base": own["base"], "base_path": own["base_path"]}


def find(rows: list[dict], recipe: str, tool: str, seed: int) -> dict | None:
    return next((r for r in rows if (r["recipe"], r["tool"], r["seed"]) == (recipe, tool, seed)), None)


def save(rows: list[dict], args, started: str) -> None:
    meta = {"argv": sys.argv[1:], "started": started, "smoke": args.smoke, "data": str(args.data),
            "cpus": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    save_results(args.out, {"meta": meta, "runs": rows})


def pct(xs: list[float]) -> str:
    if not xs:
        return "–"
    sd = f" ± {100 * statistics.stdev(xs):.1f}" if len(xs) > 1 else ""
    return f"{100 * statistics.fmean(xs):.1f}{sd}"


def table(rows: list[dict], meta: dict) -> str:
    lines = [f"`python bench/multilabel_cuad.py` on {meta.get('data')}: test scores in %, mean ± std over "
             "seeds (train.seed; one split, by contract). The peer is a plain Trainer script with "
             "problem_type multi_label_classification and threshold 0.5 on domainft's split. The single-label "
             "recipe drops the multi-category excerpts (a smaller test set): shown beside, not comparable "
             "number for number." + (" **Smoke run (sample data, 1 epoch): checks the script, says nothing "
                                     "about quality.**" if meta.get("smoke") else ""), "",
             "| recipe | base | tool | seeds | micro-F1 | macro-F1 | samples-F1 | exact match | test n | train s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for recipe, tool in ((RECIPE, "domainft"), (RECIPE, "peer"), (SINGLE, "domainft")):
        rs = [r for r in rows if (r["recipe"], r["tool"]) == (recipe, tool)]
        if not rs:
            continue
        cell = lambda k: pct([r["test"][k] for r in rs if k in r["test"]])  # noqa: E731
        name = f"{tool} ({rs[0].get('thresholds')} threshold)" if recipe == RECIPE and tool == "domainft" else tool
        lines.append(f"| {recipe} | {rs[0]['base']} | {name} | {len(rs)} | {cell('micro_f1')} | {cell('macro_f1')} | "
                     f"{cell('samples_f1')} | {cell('subset_accuracy')} | {rs[0]['test_n']} | "
                     f"{statistics.fmean(r['train_wall_s'] for r in rs):.0f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    started = f"{datetime.now():%Y-%m-%d %H:%M:%S}"
    saved = json.loads(args.out.read_text()) if args.resume and args.out.is_file() else {"runs": []}
    rows, failures = saved["runs"], []
    split_dir = None
    if not args.skip_peer:
        split_dir = write_split(args)
    plan = [(RECIPE, "domainft"), *([] if args.skip_peer else [(RECIPE, "peer")]),
            *([] if args.skip_single_label else [(SINGLE, "domainft")])]
    for seed in args.seeds:
        for recipe, tool in plan:
            if find(rows, recipe, tool, seed):
                continue
            print(f"\n=== {recipe} · {tool} · seed {seed} ({datetime.now():%H:%M:%S})", flush=True)
            try:
                if tool == "domainft":
                    row = domainft_row(recipe, seed, args)
                else:
                    own = find(rows, RECIPE, "domainft", seed)
                    if own is None:
                        raise RunFailed("no domainft run for this seed, so no base and split to give the peer")
                    row = peer_row(seed, split_dir, own, args)
            except (RunFailed, subprocess.SubprocessError, OSError, KeyError, ValueError) as e:
                failures.append(f"{recipe} {tool} seed {seed}: {e}")
                print(failures[-1], file=sys.stderr, flush=True)
                continue
            rows.append(row)
            save(rows, args, started)
            print(json.dumps({k: row[k] for k in ("recipe", "tool", "seed", "test", "train_wall_s")}), flush=True)
    meta = {"data": str(args.data), "smoke": args.smoke}
    markdown = table(rows, meta)
    print("\n" + markdown)
    if args.readme:
        print(f"wrote {write_readme_section(README_SECTION, markdown)}")
    if failures:
        sys.exit("failed:\n" + "\n".join(failures))


if __name__ == "__main__":
    main()
