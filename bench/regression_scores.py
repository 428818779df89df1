"""Benchmark: how does `domainft run` (task: regression) compare with a plain Hugging Face Trainer
regression script on financial sentiment scores?

Two datasets, each with ONE fixed split made by domainft's loader (seed 13, 80/10/10, stratified on
quantile bins of the score; exact duplicates removed, a text scored twice differently averaged) and
exported to bench/out/regression/<dataset>_split/{train,validation,test}.jsonl ({"text", "target"}),
which both tools then read, so every run of either tool sees the same texts:

- semeval2017_headlines: SemEval-2017 task 5 headlines (1142 scored (company, headline) pairs,
  `Headline_Trainingdata.json`, a JSON array), text "{company}: {title}".
- fiqa2018_task1: FiQA 2018 task 1 headlines + microblog posts (1111 labelled sentences; the
  official test files carry no scores). The files are JSON objects keyed by id with the scores
  nested in info[].sentiment_score: they are flattened here, at run time, into one JSONL row per
  (sentence, target) under bench/out/regression/ (ignored by git), text "{target}: {sentence}".

domainft runs recipes/finance_sentiment_scores.yaml on the split (packaged MiniLM, its settings);
the peer is bench/peer_regression_script.py (num_labels=1, problem_type="regression", the tutorial
defaults) on the same split and base. Seeds 13, 14, 15. Test Pearson, Spearman and MSE. Each
result is appended to bench/results/regression_scores.json as it finishes (--resume skips the
(dataset, tool, seed) rows already there); --readme writes the table into bench/README.md.

    python bench/regression_scores.py [--datasets semeval2017_headlines fiqa2018_task1]
        [--seeds 13 14 15] [--resume] [--readme] [--skip-peer] [--set FIELD=VALUE ...]
        [--peer-epochs 3] [--limit N] [--results FILE]

--limit N keeps the first N training rows of each split (a smoke test: with --set train.epochs=0.2
--peer-epochs 0.2 --results bench/out/regression_smoke.json it checks the whole path in minutes).
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from runner import (
    DATASETS,
    OUT,
    RESULTS,
    ROOT,
    base_path,
    load_results,
    run_recipe,
    run_script_json,
    save_results,
    write_readme_section,
)

README_SECTION = "regression_scores.py"
RECIPE = ROOT / "recipes" / "finance_sentiment_scores.yaml"
PEER = ROOT / "bench" / "peer_regression_script.py"
WORK = OUT / "regression"
RESULTS_FILE = RESULTS / "regression_scores.json"
SEMEVAL = DATASETS / "semeval2017_task5_headlines" / "Headline_Trainingdata.json"
FIQA = [DATASETS / "fiqa_2018_task1" / f"task1_{kind}_ABSA_train.json" for kind in ("headline", "post")]
DOMAINFT = "domainft run (recipe)"
PEER_TOOL = "peer Trainer script"


def fiqa_jsonl(out: Path = WORK / "fiqa_task1_train.jsonl") -> Path:
    """FiQA task 1's two labelled files as one JSONL row per (sentence, target, score)."""
    rows = []
    for path in FIQA:
        kind = "headline" if "headline" in path.name else "post"
        for key, item in json.loads(path.read_text(encoding="utf-8")).items():
            for info in item["info"]:
                if "sentiment_score" in info:
                    rows.append({"id": key, "source": kind, "target": info["target"], "sentence": item["sentence"],
                                 "sentiment": float(info["sentiment_score"])})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return out


def dataset_overrides(name: str) -> dict:
    """The recipe overrides that read the dataset's file as one data.path to split."""
    if name == "semeval2017_headlines":
        return {"data.path": str(SEMEVAL)}  # the recipe's own template and label column fit it
    if name == "fiqa2018_task1":
        return {"data.path": str(fiqa_jsonl()), "data.text_template": "{target}: {sentence}",
                "data.label_column": "sentiment", "data.leak_columns": ["id", "source"]}
    raise SystemExit(f"unknown dataset {name!r}; choose from semeval2017_headlines, fiqa2018_task1")


def write_split(name: str, limit: int | None = None) -> tuple[Path, dict]:
    """domainft's split of the dataset (the recipe's data settings, split seed 13) as JSONL files."""
    from domainft.recipe import Recipe
    from domainft.tasks import get_task

    recipe = Recipe.from_yaml(RECIPE, dataset_overrides(name))
    data = get_task("regression").load_data(recipe.data)
    split_dir = WORK / f"{name}_split"
    split_dir.mkdir(parents=True, exist_ok=True)
    for split, examples in data.splits().items():
        if split == "train" and limit:
            examples = examples[:limit]
        rows = [{"text": e.text, "target": e.values[0]} for e in examples]
        (split_dir / f"{split}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                                  encoding="utf-8")
    print(f"{name} split: {json.dumps(data.report['counts'])}", flush=True)
    return split_dir, data.report


def run_domainft(name: str, split_dir: Path, seed: int, overrides: list[str]) -> dict:
    sets = ["data.path=null", f"data.train={split_dir / 'train.jsonl'}",
            f"data.validation={split_dir / 'validation.jsonl'}", f"data.test={split_dir / 'test.jsonl'}",
            "data.text_template=null", "data.text_column=text", "data.label_column=target", "data.leak_columns=[]",
            "base=minilm", f"train.seed={seed}", *overrides]
    m = run_recipe(RECIPE, sets, OUT / f"regression_{name}_s{seed}")
    return {"tool": DOMAINFT, "test_pearson": m["test"]["pearson"], "test_spearman": m["test"]["spearman"],
            "test_mse": m["test"]["mse"], "train_wall_s": m["train"]["wall_time_s"],
            "epochs": m["train"]["epochs_run"], "peak_rss_mb": m["train"]["peak_rss_mb"]}


def run_peer(name: str, split_dir: Path, seed: int, epochs: float) -> dict:
    row, _ = run_script_json(PEER, [split_dir, base_path("minilm"), OUT / f"regression_peer_{name}",
                                    "--seed", seed, "--epochs", epochs])
    return {**row, "tool": PEER_TOOL}


def table(results: list[dict]) -> str:
    """Mean ± standard deviation over seeds per dataset and tool."""
    lines = ["| dataset | tool | seeds | test Pearson | test Spearman | test MSE | train wall time (s) |",
             "|---|---|---|---|---|---|---|"]
    keys = list(dict.fromkeys((r["dataset"], r["tool"]) for r in results))
    for dataset, tool in keys:
        rows = [r for r in results if (r["dataset"], r["tool"]) == (dataset, tool)]

        def cell(k, digits=4):
            values = [r[k] for r in rows]
            sd = f" ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else ""
            return f"{statistics.mean(values):.{digits}f}{sd}"

        seeds = "/".join(str(r["seed"]) for r in rows)
        lines.append(f"| {dataset} | {tool} | {seeds} | {cell('test_pearson')} | {cell('test_spearman')} | "
                     f"{cell('test_mse')} | {cell('train_wall_s', 0)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", nargs="+", default=["semeval2017_headlines", "fiqa2018_task1"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[13, 14, 15])
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="domainft run overrides")
    parser.add_argument("--peer-epochs", type=float, default=3)
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--limit", type=int, help="keep the first N training rows (smoke test)")
    parser.add_argument("--resume", action="store_true", help="skip (dataset, tool, seed) rows already in --results")
    parser.add_argument("--results", type=Path, default=RESULTS_FILE)
    parser.add_argument("--readme", action="store_true", help=f"write the table into bench/README.md "
                                                               f"(its bench/{README_SECTION} block)")
    args = parser.parse_args()
    results = load_results(args.results, []) if args.resume else []
    done = {(r["dataset"], r["tool"], r["seed"]) for r in results}
    for name in args.datasets:
        split_dir, report = write_split(name, args.limit)
        for seed in args.seeds:
            jobs = [(DOMAINFT, lambda s=seed: run_domainft(name, split_dir, s, args.overrides))]
            if not args.skip_peer:
                jobs.append((PEER_TOOL, lambda s=seed: run_peer(name, split_dir, s, args.peer_epochs)))
            for tool, job in jobs:
                if (name, tool, seed) in done:
                    print(f"skip {name} {tool} seed {seed}: in {args.results}", flush=True)
                    continue
                row = {"dataset": name, "seed": seed, "split_counts": report["counts"],
                       **({"train_rows_kept": args.limit} if args.limit else {}), **job()}
                results.append(row)
                save_results(args.results, results)  # each result as it finishes
                print(json.dumps(row), flush=True)
    print("\n" + table(results))
    if args.readme:
        write_readme_section(README_SECTION, table(results))


if __name__ == "__main__":
    main()
