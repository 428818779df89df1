"""Benchmark: does the domain lexicon help? Each shipped recipe on its real dataset, with and without
its lexicon, over 3 training seeds (the data split stays fixed), packaged MiniLM base.

Reports the test score (mean and spread over seeds), tokens per word on the training data before and
after the lexicon, and the change in training time. Each run is `domainft run` in its own process,
one after the other; every finished run is saved to bench/out/lexicon_effect.json at once, and a
run already there (same recipe, lexicon and seed) is not run again, so an interrupted benchmark
resumes where it stopped.

The run without the lexicon is the recipe as shipped: `--baseline-from bench/out/recipes.json` takes
those runs from bench/recipes.py's results (same recipe, real data, MiniLM and seed) instead of
training them twice; `--arms on` runs only the lexicon side.

    python bench/lexicon_effect.py [--recipes finance_sentiment medical_ner ...] [--seeds 13 14 15]
                                   [--arms on off] [--baseline-from bench/out/recipes.json] [--out F]
    python bench/lexicon_effect.py --table        # print the table from the saved runs, run nothing
    python bench/lexicon_effect.py --table --readme   # ... and write it into bench/README.md
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from runner import METRICS, OUT, REAL_DATA, load_results, run_recipe, save_results, write_readme_section

# recipe -> its domain's lexicon; the real data and the main test metric are runner.py's.
LEXICONS = {"finance_sentiment": "lexicons/finance.txt", "medical_triage": "lexicons/medical.txt",
            "legal_clause_review": "lexicons/legal.txt", "medical_ner": "lexicons/medical.txt"}
README_SECTION = "lexicon_effect.py"


def metric_of(recipe: str) -> str:
    return METRICS[recipe][0]


def run_one(recipe: str, lexicon: str | None, seed: int, work: Path) -> dict:
    metric = metric_of(recipe)
    run_dir = work / f"lexicon_{recipe}_{'on' if lexicon else 'off'}_{seed}"
    overrides = [*REAL_DATA[recipe], "base=minilm", f"train.seed={seed}"]
    if lexicon:
        overrides.append(f"lexicon=[{lexicon}]")
    m = run_recipe(recipe, overrides, run_dir)
    lex = m.get("lexicon", {})
    return {"recipe": recipe, "lexicon": lexicon, "seed": seed, "test": m["test"][metric], "metric": metric,
            "train_wall_s": m["train"]["wall_time_s"], "epochs": m["train"]["epochs_run"],
            "terms_added": lex.get("terms_added", 0),
            "tokens_per_word": lex.get("tokens_per_word", {}), "source": str(run_dir)}


def baseline_rows(path: Path, recipes: list[str], seeds: list[int]) -> list[dict]:
    """The recipe-as-shipped runs of bench/recipes.py, as rows without a lexicon. Only runs that are
    the same run this script would make: real data, no extra --set, the packaged MiniLM."""
    saved = json.loads(path.read_text())
    if saved["meta"].get("overrides") or saved["meta"].get("smoke"):
        sys.exit(f"{path}: made with --set/--smoke; not the recipes as shipped, so not a baseline")
    rows = []
    for r in saved["runs"]:
        if r["tool"] == "domainft" and r["recipe"] in recipes and r["seed"] in seeds and r["base"] == "minilm":
            metric = metric_of(r["recipe"])
            rows.append({"recipe": r["recipe"], "lexicon": None, "seed": r["seed"], "test": r["test"][metric],
                         "metric": metric, "train_wall_s": r["train_wall_s"], "epochs": r["epochs"],
                         "terms_added": 0, "tokens_per_word": {}, "source": f"{path}: {r['run_dir']}"})
    return rows


def key(row: dict) -> tuple:
    return row["recipe"], row["lexicon"], row["seed"]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipes", nargs="+", default=list(LEXICONS), choices=list(LEXICONS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[13, 14, 15])
    parser.add_argument("--arms", nargs="+", choices=["off", "on"], default=["off", "on"])
    parser.add_argument("--baseline-from", type=Path, help="bench/recipes.py's JSON: its runs are the 'off' arm")
    parser.add_argument("--out", type=Path, default=OUT / "lexicon_effect.json")
    parser.add_argument("--table", action="store_true",
                        help="print the table from --out (and --baseline-from) and exit")
    parser.add_argument("--readme", action="store_true", help=f"also write the table into bench/README.md "
                                                               f"(its bench/{README_SECTION} block)")
    return parser.parse_args(argv)


def run_missing(rows: list[dict], args) -> None:
    """Every (recipe, seed, arm) not in `rows` yet, one after the other; `rows` saved after each."""
    work = args.out.with_suffix("")
    for recipe in args.recipes:
        for seed in args.seeds:
            for lexicon in [{"off": None, "on": LEXICONS[recipe]}[arm] for arm in args.arms]:
                if any(key(r) == (recipe, lexicon, seed) for r in rows):
                    continue
                rows.append(run_one(recipe, lexicon, seed, work))
                print(json.dumps(rows[-1]), flush=True)
                save_results(args.out, rows, indent=2)
    save_results(args.out, rows, indent=2)


def main() -> None:
    args = parse_args()
    rows = load_results(args.out, [])
    if args.baseline_from:
        done = {key(r) for r in rows}
        rows += [r for r in baseline_rows(args.baseline_from, args.recipes, args.seeds) if key(r) not in done]
    if not args.table:
        run_missing(rows, args)
    print("\n" + table(rows))
    if args.readme:
        write_readme_section(README_SECTION, table(rows))


def table(rows: list[dict]) -> str:
    lines = ["| recipe | lexicon | terms added | test score (mean ± sd, n) | Δ vs none | Δ per seed "
             "| tokens/word before → after | train time (s, mean) | Δ time |", "|---|---|---|---|---|---|---|---|---|"]
    for recipe in dict.fromkeys(r["recipe"] for r in rows):
        lines += recipe_lines([r for r in sorted(rows, key=lambda r: r["seed"]) if r["recipe"] == recipe])
    return "\n".join(lines)


def recipe_lines(rows: list[dict]) -> list[str]:
    """One recipe's rows (sorted by seed): one line per lexicon, none first, compared with none."""
    groups = {}
    for r in rows:
        groups.setdefault(r["lexicon"], []).append(r)
    base = groups.get(None)
    lines = []
    for lexicon, rs in sorted(groups.items(), key=lambda kv: kv[0] is not None):  # none first
        scores = [r["test"] for r in rs]
        mean = statistics.mean(scores)
        sd = statistics.stdev(scores) if len(scores) > 1 else 0.0
        time_mean = statistics.mean(r["train_wall_s"] for r in rs)
        delta = f"{100 * (mean - statistics.mean(r['test'] for r in base)):+.2f}" if base and lexicon else "–"
        dtime = (f"{100 * (time_mean / statistics.mean(r['train_wall_s'] for r in base) - 1):+.0f}%"
                 if base and lexicon else "–")
        off = {r["seed"]: r["test"] for r in base or []}
        per_seed = (" / ".join(f"{100 * (r['test'] - off[r['seed']]):+.2f}" for r in rs if r["seed"] in off)
                    if base and lexicon else "–")
        tpw = rs[0]["tokens_per_word"]
        tpw_s = f"{tpw['before']:.3f} → {tpw['after']:.3f}" if tpw else "–"
        lines.append(f"| {rs[0]['recipe']} | {lexicon or 'none'} | {rs[0]['terms_added']} | {100 * mean:.2f} ± "
                     f"{100 * sd:.2f} ({rs[0]['metric']}, {len(rs)}) | {delta} | {per_seed} | {tpw_s} "
                     f"| {time_mean:.0f} | {dtime} |")
    return lines


if __name__ == "__main__":
    main()
