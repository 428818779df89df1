"""Choose a recipe's hyperparameters on validation: every combination of the --grid values, over
seeds, on the recipe's real data (MiniLM), one `domainft run` after the other. The table shows the
validation score only (mean ± std over seeds): test scores are for bench/recipes.py once the choice
is made and written into the recipe with its reason.

Every finished run is saved to bench/results/sweeps/<recipe>.json (committed) at once (merged into
what is there, so two sweeps of one recipe can run side by side); a combination and seed already
there for the same recipe settings is not run again, so an interrupted sweep resumes. Each run
records a hash of the recipe's resolved settings (`recipe_sha`; comments do not count): a
combination means something else once the recipe changes.

    python bench/validation_sweep.py finance_sentiment --grid train.class_weights=none,balanced \
        --grid train.lr=3e-5,5e-5 [--seeds 13 14] [--set FIELD=VALUE ...]
    python bench/validation_sweep.py finance_sentiment --table      # the saved runs, run nothing
    python bench/validation_sweep.py finance_sentiment --table --readme   # ... into bench/README.md too
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import statistics
import sys
import time

from runner import (
    METRICS,
    OUT,
    REAL_DATA,
    RECIPES,
    RESULTS,
    load_results,
    recipe_file,
    run_recipe,
    save_results,
    write_readme_section,
)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("recipe", choices=RECIPES)
    p.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2",
                   help="values to try for one recipe field (repeat for a grid)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="fixed for every run (besides the real data and base=minilm)")
    p.add_argument("--seeds", nargs="+", type=int, default=[13, 14])
    p.add_argument("--table", action="store_true", help="print the saved runs' table and exit")
    p.add_argument("--readme", action="store_true",
                   help="also write the table into bench/README.md (its bench/validation_sweep.py RECIPE block)")
    return p.parse_args(argv)


def combinations(grid: list[str]) -> list[tuple[str, ...]]:
    axes = []
    for g in grid:
        field, _, values = g.partition("=")
        if not values:
            sys.exit(f"--grid {g}: expected FIELD=V1,V2,...")
        axes.append([f"{field}={v}" for v in values.split(",")])
    return list(itertools.product(*axes)) if axes else [()]


def recipe_sha(recipe: str) -> str:
    """Hash of the recipe's resolved settings, every default filled in."""
    from domainft.recipe import Recipe

    settings = Recipe.from_yaml(recipe_file(recipe)).model_dump(mode="json")
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


def run(recipe: str, combo: tuple[str, ...], fixed: list[str], seed: int, sha: str) -> dict:
    """One `domainft run` of the recipe (settings hash `sha`) with the combination and seed."""
    digest = hashlib.sha1(json.dumps([combo, fixed, sha]).encode()).hexdigest()[:10]
    run_dir = OUT / "sweeps" / recipe / f"{digest}_s{seed}"
    overrides = [*REAL_DATA[recipe], "base=minilm", *fixed, *combo, f"train.seed={seed}"]
    start = time.perf_counter()
    m = run_recipe(recipe, overrides, run_dir)
    return {"combo": list(combo), "fixed": fixed, "seed": seed, "recipe_sha": sha,
            "validation": m["validation"],
            "epochs": m["train"]["epochs_run"], "train_wall_s": m["train"]["wall_time_s"],
            "process_wall_s": round(time.perf_counter() - start, 1)}


def table(recipe: str, rows: list[dict], current: str) -> str:
    """Mean validation score per settings, best first; `current` is the recipe's settings hash."""
    metric = METRICS[recipe][0]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((tuple(r["combo"]), tuple(r["fixed"]), r.get("recipe_sha")), []).append(r)
    lines = [f"| settings | validation {metric} (mean ± std) | per seed | epochs | train time (s) |",
             "|---|---|---|---|---|"]
    ranked = sorted(groups.items(), key=lambda kv: -statistics.fmean(r["validation"][metric] for r in kv[1]))
    for (combo, fixed, sha), rs in ranked:
        scores = [r["validation"][metric] for r in sorted(rs, key=lambda r: r["seed"])]
        sd = f" ± {100 * statistics.stdev(scores):.2f}" if len(scores) > 1 else ""
        settings = " ".join(combo + fixed) or "recipe as is"
        if sha != current:  # run with earlier recipe settings
            settings += f" (recipe {sha})" if sha else f" ({rs[0].get('recipe', 'earlier recipe')})"
        lines.append(f"| {settings} | {100 * statistics.fmean(scores):.2f}{sd} | "
                     f"{' / '.join(f'{100 * s:.1f}' for s in scores)} | "
                     f"{statistics.fmean(r['epochs'] for r in rs):.1f} | "
                     f"{statistics.fmean(r['train_wall_s'] for r in rs):.0f} |")
    return "\n".join(lines)


def sweep(args, path, sha: str) -> None:
    """Every combination and seed not saved yet for these recipe settings, one run after the other."""
    for combo in combinations(args.grid):
        for seed in args.seeds:
            if any(r["combo"] == list(combo) and r["fixed"] == args.overrides and r["seed"] == seed
                   and r.get("recipe_sha") == sha for r in load_results(path, [])):
                continue
            row = run(args.recipe, combo, args.overrides, seed, sha)
            save_results(path, [*load_results(path, []), row])  # re-read: a sweep beside this one may have saved
            print(json.dumps({k: row[k] for k in ("combo", "seed", "epochs", "train_wall_s")}), flush=True)


def main() -> None:
    args = parse_args()
    path = RESULTS / "sweeps" / f"{args.recipe}.json"
    sha = recipe_sha(args.recipe)
    if not args.table:
        sweep(args, path, sha)
    text = table(args.recipe, load_results(path, []), sha)
    print(text)
    if args.readme:
        write_readme_section(f"validation_sweep.py {args.recipe}", text)


if __name__ == "__main__":
    main()
