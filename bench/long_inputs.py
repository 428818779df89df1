"""Benchmark: long inputs for classification. Does reading a long input in windows
(data.long_inputs: windows) beat truncating it, and a plain Hugging Face Trainer script that
truncates, on the same split?

Experiments (one split each, made by domainft's own loader; seeds vary training only):
- contract_nli: ContractNLI (../shared/datasets/contract_nli; dev and test only, as shipped). Each
  (NDA, hypothesis) is a text pair, the hypothesis first; recipes/clause_nli.yaml. The nested JSON
  is flattened at run time into bench/out/contract_nli/{dev,test}.jsonl (never copied into the
  project). Training and validation come from dev (validation: 15% of its NDAs, by NDA), test is
  test.json (123 NDAs, 2091 pairs). The NDAs run to ~1,700 words, so truncation sees the opening
  ~200 only. Arms: windows (the recipe), truncate (the same recipe, data.long_inputs=truncate), and
  the peer (bench/peer_trainer_script.py: the pair through the tokenizer, truncated to the same
  max_length, 3 epochs at 2e-5).
- cuad: recipes/legal_clause_review.yaml on CUAD (single-label clause typing, max_length 256),
  windows against the recipe's truncation (the longest excerpts run to ~700 words), and the peer.

--base picks the base of every arm and the peer (results are keyed by experiment, arm, seed and
base, so a bert-tiny comparison at a CPU budget sits beside MiniLM's).

Every finished run is saved to bench/results/long_inputs.json at once (`--resume` skips the runs
already there); the table goes into bench/README.md (`--readme`).

    python bench/long_inputs.py [--experiments contract_nli cuad] [--arms windows truncate peer]
                                [--seeds 13 14 15] [--set FIELD=VALUE ...] [--resume] [--readme]
                                [--base minilm] [--peer-lr 2e-5] [--peer-epochs 3]
    python bench/long_inputs.py --smoke      # the synthetic sample, 1 epoch, seed 13: a few minutes
    python bench/long_inputs.py --from-json bench/results/long_inputs.json --readme   # table only
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
from datetime import datetime, timezone
from pathlib import Path

from runner import (
    DATASETS,
    OUT,
    PEER_TRAINER,
    RESULTS,
    RunFailed,
    base_path,
    load_results,
    recipe_file,
    run_recipe,
    run_script_json,
    save_results,
    write_readme_section,
    write_split,
)

RESULTS_FILE = RESULTS / "long_inputs.json"
README_SECTION = "long_inputs.py table"
NLI = DATASETS / "contract_nli"
NLI_JSONL = OUT / "contract_nli"
CUAD = DATASETS / "cuad" / "master_clauses.csv.gz"
PEER_EPOCHS = 3
METRICS = ("accuracy", "macro_f1", "micro_f1")


def flatten_contract_nli(out: Path = NLI_JSONL) -> dict[str, Path]:
    """ContractNLI's dev.json / test.json as JSONL, one (NDA, hypothesis) per line: contract_id,
    hypothesis, contract (the whole NDA), label (Entailment / Contradiction / NotMentioned)."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split in ("dev", "test"):
        raw = json.loads((NLI / f"{split}.json").read_text(encoding="utf-8"))
        hypotheses = {key: value["hypothesis"] for key, value in raw["labels"].items()}
        rows = []
        for doc in raw["documents"]:
            for key, annotation in doc["annotation_sets"][0]["annotations"].items():
                rows.append({"contract_id": str(doc["id"]), "hypothesis": hypotheses[key], "contract": doc["text"],
                             "label": annotation["choice"]})
        paths[split] = out / f"{split}.jsonl"
        paths[split].write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return paths


def experiment_settings(name: str, smoke: bool) -> tuple[str, list[str]]:
    """(recipe, overrides) of an experiment on its real data (the recipe's own sample when smoke)."""
    if name == "contract_nli":
        if smoke:
            return "clause_nli", ["train.epochs=1"]
        paths = flatten_contract_nli()
        return "clause_nli", ["data.path=null", f"data.train={paths['dev']}", f"data.test={paths['test']}",
                              "data.labels=[Entailment,Contradiction,NotMentioned]", "data.split.test=0.0",
                              "data.max_length=256", "train.lr=1e-4"]  # the sample's 3e-4 suits 240 pairs
    if name == "cuad":
        # Without the recipe's adaptation: this compares how long inputs are read (and the peer
        # script does not adapt); the adaptation's own effect is bench/adapt.py's.
        data = ["train.epochs=1"] if smoke else [f"data.path={CUAD}"]
        return "legal_clause_review", ["adapt.task_texts=false", *data]
    raise SystemExit(f"unknown experiment {name!r}")


def arm_overrides(arm: str) -> list[str]:
    return {"windows": ["data.long_inputs=windows"], "truncate": ["data.long_inputs=truncate"]}[arm]


def run_domainft(name: str, arm: str, seed: int, recipe: str, overrides: list[str], base: str) -> dict:
    run_dir = OUT / "long_inputs" / f"{name}_{arm}_{base}_s{seed}"
    m = run_recipe(recipe, [*overrides, *arm_overrides(arm), f"base={base}", f"train.seed={seed}"], run_dir)
    return {**{f"test_{k}": m["test"][k] for k in METRICS}, "train_wall_s": m["train"]["wall_time_s"],
            "epochs": m["train"]["epochs_run"], "truncated": m["data"]["truncated"], "counts": m["data"]["counts"],
            "tool": f"domainft ({arm})"}


def run_peer(name: str, seed: int, recipe: str, overrides: list[str], epochs: float, base: str,
             lr: float | None) -> dict:
    """The plain script on domainft's split, padded to the recipe's max_length (the tokens domainft's
    truncate arm sees)."""
    from domainft.recipe import Recipe

    r = Recipe.from_yaml(recipe_file(recipe)).override([*overrides, *arm_overrides("truncate")])
    split = write_split(r, OUT / "long_inputs" / f"{name}_split")
    row, wall = run_script_json(PEER_TRAINER, [split, base_path(base), OUT / "long_inputs" / f"{name}_peer_s{seed}",
                                               "--seed", seed, "--max-length", r.data.max_length, "--epochs", epochs,
                                               *(["--lr", lr] if lr else [])])
    return {**row, "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiments", nargs="+", default=["contract_nli", "cuad"])
    ap.add_argument("--arms", nargs="+", default=["windows", "truncate", "peer"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[13, 14, 15])
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="FIELD=VALUE")
    ap.add_argument("--base", default="minilm", help="the base of every arm, the peer's too (bert-tiny: the "
                                                     "comparison at a CPU budget)")
    ap.add_argument("--peer-lr", type=float, help="the peer's learning rate (default its 2e-5)")
    ap.add_argument("--peer-epochs", type=float, default=PEER_EPOCHS, help=f"the peer's epochs (default {PEER_EPOCHS})")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--readme", action="store_true")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--from-json")
    args = ap.parse_args()
    results_file = RESULTS_FILE if not args.smoke else OUT / "long_inputs" / "smoke.json"
    if args.from_json:
        table = render(load_results(Path(args.from_json)))
        print(table)
        if args.readme:
            write_readme_section(README_SECTION, table)
        return
    results = load_results(results_file, {"runs": []})
    if args.smoke:
        args.seeds, args.experiments = args.seeds[:1], args.experiments
    for name in args.experiments:
        recipe, overrides = experiment_settings(name, args.smoke)
        overrides += args.sets
        for arm in args.arms:
            for seed in args.seeds:
                key = {"experiment": name, "arm": arm, "seed": seed, "base": args.base}
                if args.resume and any(all(r.get(k, "minilm") == v for k, v in key.items()) for r in results["runs"]):
                    continue
                try:
                    if arm == "peer":
                        row = run_peer(name, seed, recipe, overrides, 1 if args.smoke else args.peer_epochs, args.base,
                                       args.peer_lr)
                    else:
                        row = run_domainft(name, arm, seed, recipe, overrides, args.base)
                except RunFailed as e:
                    print(e, flush=True)
                    continue
                results["runs"] = [r for r in results["runs"]
                                   if not all(r.get(k, "minilm") == v for k, v in key.items())]
                results["runs"].append({**key, **row, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                        "machine": platform.processor() or platform.machine()})
                save_results(results_file, results)
                print(f"{name} {arm} seed {seed}: " + ", ".join(f"{k} {row[f'test_{k}']:.4f}" for k in METRICS
                                                                if f"test_{k}" in row), flush=True)
    table = render(results)
    print(table)
    if args.readme and not args.smoke:
        write_readme_section(README_SECTION, table)


def render(results: dict) -> str:
    """Test scores, mean ± sd over seeds (%), one row per experiment and arm."""
    groups: dict[tuple, list[dict]] = {}
    for r in results["runs"]:
        groups.setdefault((r["experiment"], r.get("base", "minilm"), r["arm"]), []).append(r)
    lines = ["| experiment | base | arm | tool | test accuracy | test macro-F1 | test micro-F1 | seeds "
             "| train s (mean) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (name, base, arm), rows in sorted(groups.items()):
        cells = []
        for k in METRICS:
            values = [100 * r[f"test_{k}"] for r in rows if f"test_{k}" in r]
            cells.append(_mean_sd(values))
        wall = statistics.mean(r.get("train_wall_s", r.get("wall_s", 0)) for r in rows)
        seeds = " ".join(str(r["seed"]) for r in sorted(rows, key=lambda r: r["seed"]))
        lines.append(f"| {name} | {base} | {arm} | {rows[0]['tool']} | {' | '.join(cells)} | {seeds} | {wall:.0f} |")
    return "\n".join(lines)


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


if __name__ == "__main__":
    main()
