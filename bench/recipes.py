"""Benchmark: does each domain recipe, on its real data over several seeds, meet its targets and
score at least as well as a plain Hugging Face Trainer script on the same split (public anchors beside)?

For each recipe and seed (`--set train.seed=S`; the data split keeps the recipe's own `data.split`
seed, so all seeds share one split) `domainft run` runs in its own process with the real-data
override the recipe's comment gives. Then the peer, on the same split, base and seed:
classification recipes, bench/peer_trainer_script.py on the split as domainft's own loader makes
it (texts rendered by the recipe's template, deduplicated, split; written to CSV by
runner.write_split), its test predictions scored here (triage: under/over-triage too);
NER, bench/peer_ner_script.py on the corpus's official train/devel/test files. One run after the
other. Every finished run is saved to bench/results/recipes.json (committed) at once (a partial
benchmark is kept; `--resume` skips the runs already there). At the end: a Markdown table (test
scores as mean ± std over seeds, in %), the issue's targets met or not, the legal per-category F1;
also written to bench/results/recipes.md (run directories under bench/out/recipes/).

    python bench/recipes.py [--recipes finance_sentiment medical_triage legal_clause_review medical_ner]
                            [--seeds 13 14 15] [--set FIELD=VALUE ...] [--skip-peer] [--offline] [--resume]
    python bench/recipes.py --smoke        # sample data in data/, 1 epoch, seeds 13 14, offline: minutes
    python bench/recipes.py --from-json bench/results/recipes.json [more.json ...] [--readme]
                                           # re-print the table (and write it into bench/README.md), run nothing

The issue's targets are for the packaged MiniLM: where a recipe lists a Hub base first, online runs
use that one unless `--offline` or `--set base=minilm`. The base each run used is in the table.
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
from datetime import datetime, timezone
from pathlib import Path

from runner import (
    METRICS,
    NER_ANCHORS,
    NURSES_PUBLISHED,
    OUT,
    PEER_NER,
    PEER_TRAINER,
    REAL_DATA,
    RECIPES,
    RESULTS,
    ROOT,
    TRIAGE_ACCURACY_MARGIN,
    RunFailed,
    child_env,
    read_csv_column,
    read_manifest,
    readme_markers,
    recipe_file,
    run_recipe,
    run_script_json,
    save_results,
    write_readme_section,
    write_split,
)

# bench/README.md's block for the table and the targets: <!-- bench/recipes.py table: begin --> ... end -->
README_SECTION = "recipes.py table"
# RECIPES, their REAL_DATA and test METRICS (the first is the score compared with the peer) are runner.py's.
METRIC_NAMES = {"macro_f1": "macro-F1", "micro_f1": "micro-F1", "accuracy": "accuracy", "f1": "entity F1",
                "under_triage": "under-triage", "over_triage": "over-triage"}

# Anchors: published results on the same data, for scale.
# FinBERT (BERT-base further pre-trained on financial news; Araci 2019, arXiv:1908.10063) on
# Financial PhraseBank: accuracy 0.86, F1 0.84.
FINBERT = {"accuracy": 0.86, "f1": 0.84}
# KTAS triage nurses: NURSES_PUBLISHED (runner.py) on the whole file; the table also scores them on the
# same test split, from metrics.json. Target: accuracy within TRIAGE_ACCURACY_MARGIN of theirs.
# Clause typing with 110M bases on LEDGAR (LexGLUE; 100 provision types): micro-F1 87.7-88.1.
# A different dataset and label set from CUAD: context, not a like-for-like score.
LEDGAR_MICRO_F1 = (0.877, 0.881)
# NCBI-disease entity F1, BERT-base / BioBERT (110M), shared with bench/ner_corpora.py.
NCBI_F1 = NER_ANCHORS["ncbi_disease"]["Disease"]


# ----- running -------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipes", nargs="+", default=RECIPES, choices=RECIPES)
    p.add_argument("--seeds", nargs="+", type=int, help="train.seed values (default 13 14 15; --smoke: 13 14)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
                   help="FIELD=VALUE for every domainft run (and the split the peer sees)")
    p.add_argument("--skip-peer", action="store_true", help="domainft runs only")
    p.add_argument("--peer-epochs", type=float, help="peer scripts' epochs (default theirs, 3; --smoke: 1)")
    p.add_argument("--peer-max-length", type=int,
                   help="classification peer's padding/truncation length (default the script's tutorial 64)")
    p.add_argument("--offline", action="store_true",
                   help="HF_HUB_OFFLINE=1 for the runs: a recipe's Hub base is skipped at once (MiniLM)")
    p.add_argument("--smoke", action="store_true",
                   help="the recipes' sample data in data/, 1 epoch, offline: checks this script end to end")
    p.add_argument("--resume", action="store_true",
                   help="keep the runs already in the JSON (made with the same options), run the rest")
    p.add_argument("--out", type=Path, help="results JSON (default bench/results/recipes.json, "
                                            "--smoke: bench/out/recipes_smoke.json)")
    p.add_argument("--from-json", type=Path, nargs="+",
                   help="print the table from these JSONs (runs of several --out files, e.g. two streams) "
                        "and exit")
    p.add_argument("--readme", action="store_true",
                   help=f"also write the table and targets into bench/README.md between the "
                        f"{readme_markers(README_SECTION)[0]} and end markers")
    args = p.parse_args(argv)
    args.seeds = args.seeds or ([13, 14] if args.smoke else [13, 14, 15])
    if args.smoke and args.peer_epochs is None:
        args.peer_epochs = 1
    args.out = args.out or (OUT / "recipes_smoke.json" if args.smoke else RESULTS / "recipes.json")
    args.work = OUT / args.out.stem  # run directories, splits, peer checkpoints
    return args


def recipe_overrides(name: str, args) -> list[str]:
    """Real data (or, --smoke, the recipe's sample and 1 epoch), then the command line's --set."""
    data = ["train.epochs=1"] if args.smoke else REAL_DATA[name]
    return [*data, *args.overrides]


def run_env(args) -> dict:
    return child_env(offline=args.offline or args.smoke)


def run_domainft(name: str, seed: int, overrides: list[str], args) -> dict:
    run_dir = args.work / f"{name}_s{seed}"
    start = time.perf_counter()
    m = run_recipe(name, [*overrides, f"train.seed={seed}"], run_dir, env=run_env(args))
    return domainft_row(name, seed, run_dir, m, time.perf_counter() - start)


def domainft_row(name: str, seed: int, run_dir: Path, m: dict, process_wall: float) -> dict:
    base = read_manifest(run_dir)["base"]
    test, train = m["test"], m["train"]
    label = f"domainft recipe ({m['run']['method']}, lr {train['lr']:g})"
    if test.get("decision", {}).get("escalate_threshold") is not None:
        label += f", escalate_threshold {test['decision']['escalate_threshold']:g}"
    row = {"recipe": name, "tool": "domainft", "label": label, "seed": seed, "run_dir": str(run_dir),
           "test": {k: test[k] for k in METRICS[name] if k in test},
           "validation": {k: m["validation"][k] for k in METRICS[name] if k in m["validation"]},
           "test_n": test["n"], "counts": m["data"].get("counts"),
           "per_class": {c: {"f1": v["f1"], "support": v["support"]} for c, v in test["per_class"].items()},
           "train_wall_s": train["wall_time_s"], "process_wall_s": round(process_wall, 1),
           "epochs": train["epochs_run"], "peak_rss_mb": train["peak_rss_mb"],
           "base": base["requested"], "base_path": base["path"], "base_source": base["source"]}
    if "reference" in test:  # the triage nurses on the same test patients, and on the whole file
        row["reference_test"] = test["reference"]
        row["reference_file"] = m["data"].get("reference")
    if "escalation_sweep" in m["validation"]:
        row["validation_escalation_sweep"] = m["validation"]["escalation_sweep"]
    return row


def peer_row(name: str, seed: int, out: dict, wall: float, base: dict) -> dict:
    return {"recipe": name, "tool": "peer", "label": out["tool"], "seed": seed,
            "train_wall_s": out["train_wall_s"], "process_wall_s": round(wall, 1),
            "epochs": out.get("epochs"), "peak_rss_mb": out["peak_rss_mb"],
            "base": base["base"], "base_path": base["base_path"], "reported": out}


def run_peer_classification(name: str, seed: int, split: dict, base: dict, args) -> dict:
    split_dir = split["path"]
    checkpoints, predictions = fresh_dir(args.work / "peer_checkpoints"), split_dir / f"peer_pred_s{seed}.json"
    out, wall = run_script_json(
        PEER_TRAINER,
        [split_dir, base["base_path"], checkpoints, "--seed", seed, "--predictions", predictions, *peer_epochs(args),
         *(["--max-length", args.peer_max_length] if args.peer_max_length else [])], run_env(args))
    row = peer_row(name, seed, out, wall, base)
    gold = read_labels(split_dir / "test.csv")
    labels = json.loads((split_dir / "labels.json").read_text())
    row.update(score_predictions(gold, json.loads(predictions.read_text()), labels, split["ordinal"]))
    row["counts"] = {s: len(read_labels(split_dir / f"{s}.csv")) for s in ("train", "validation", "test")}
    return row


def run_peer_ner(name: str, seed: int, split: dict, base: dict, args) -> dict:
    out, wall = run_script_json(
        PEER_NER,
        [split["path"], base["base_path"], fresh_dir(args.work / "peer_ner_checkpoints"), "--seed", seed,
         *peer_epochs(args)], run_env(args))
    row = peer_row(name, seed, out, wall, base)
    row["test"] = {"f1": out["test_f1"], "precision": out["test_precision"], "recall": out["test_recall"]}
    return row


def peer_epochs(args) -> list[str]:
    return ["--epochs", f"{args.peer_epochs:g}"] if args.peer_epochs else []


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


def read_labels(path: Path) -> list[str]:
    return read_csv_column(path, "label")


def score_predictions(gold: list[str], pred: list[str], labels: list[str], ordinal: bool) -> dict:
    """The peer's test predictions scored as domainft scores its own (labels in the recipe's order;
    ordinal: domainft.ordinal's under/over rates)."""
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    from domainft.ordinal import severity_rates

    index = {label: i for i, label in enumerate(labels)}
    y, p = [index[g] for g in gold], [index[x] for x in pred]
    test = {"accuracy": float(accuracy_score(y, p)),
            "macro_f1": float(f1_score(y, p, average="macro", zero_division=0)),
            "micro_f1": float(f1_score(y, p, average="micro", zero_division=0)),
            **(severity_rates(y, p) if ordinal else {})}
    _, _, f, s = precision_recall_fscore_support(y, p, labels=list(range(len(labels))), zero_division=0)
    per_class = {label: {"f1": float(f[i]), "support": int(s[i])} for i, label in enumerate(labels)}
    return {"test": test, "test_n": len(y), "per_class": per_class}


def peer_split(name: str, overrides: list[str], args) -> dict:
    """Where the peer reads the recipe's data: the split written from domainft's loader
    (classification), or the corpus directory with its official files (ner); ordinal labels?"""
    from domainft.recipe import Recipe

    recipe = Recipe.from_yaml(recipe_file(name), overrides)
    if recipe.task == "classification":
        return {"path": write_split(recipe, args.work / f"{name}_split"), "ordinal": recipe.data.ordinal}
    corpus = Path(str(recipe.data.path)).resolve()
    missing = [f for f in ("train.tsv", "devel.tsv", "test.tsv") if not (corpus / f).is_file()]
    if missing:
        raise RunFailed(f"peer_ner_script.py needs {corpus}/{{train,devel,test}}.tsv; missing {missing}")
    return {"path": corpus, "ordinal": False}


def check_same_split(domainft: dict | None, peer: dict) -> None:
    """The peer's split must be the one domainft trained on (classification: counts per split)."""
    if domainft and peer.get("counts") and domainft.get("counts") and peer["counts"] != domainft["counts"]:
        raise RunFailed(f"{peer['recipe']}: peer split {peer['counts']} differs from domainft's "
                        f"{domainft['counts']}")


def save(rows: list[dict], args, started: str) -> None:
    meta = {"argv": sys.argv[1:], "started": started, "smoke": args.smoke, "cpus": os.cpu_count(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "overrides": args.overrides}
    save_results(args.out, {"meta": meta, "runs": rows}, indent=1)


def find(rows: list[dict], recipe: str, tool: str, seed: int) -> dict | None:
    return next((r for r in rows if (r["recipe"], r["tool"], r["seed"]) == (recipe, tool, seed)), None)


def run_seeds(name: str, rows: list[dict], args, started: str) -> list[str]:
    """All seeds of one recipe, domainft then peer per seed; the failures, as messages."""
    overrides, failures = recipe_overrides(name, args), []
    split = None
    if not args.skip_peer:
        try:
            split = peer_split(name, overrides, args)
        except Exception as e:  # noqa: BLE001 - reported, the domainft runs still go ahead
            failures.append(f"{name} peer split: {e}")
    for seed in args.seeds:
        for tool in ("domainft", "peer"):
            if find(rows, name, tool, seed) or (tool == "peer" and split is None):
                continue
            print(f"\n=== {name} · {tool} · seed {seed} ({datetime.now():%H:%M:%S})", flush=True)
            try:
                row = run_one(name, tool, seed, overrides, split, rows, args)
            except (RunFailed, subprocess.SubprocessError, OSError, KeyError, ValueError) as e:
                failures.append(f"{name} {tool} seed {seed}: {e}")
                print(failures[-1], file=sys.stderr, flush=True)
                continue
            rows.append(row)
            save(rows, args, started)
            print(json.dumps({k: row[k] for k in ("recipe", "tool", "seed", "test", "train_wall_s", "base")}),
                  flush=True)
    return failures


def run_one(name: str, tool: str, seed: int, overrides: list[str], split: dict | None, rows, args) -> dict:
    if tool == "domainft":
        return run_domainft(name, seed, overrides, args)
    own = find(rows, name, "domainft", seed)
    if own is None:
        raise RunFailed("no domainft run for this seed, so no base to give the peer")
    base = {"base": own["base"], "base_path": own["base_path"]}  # the peer trains the same base
    if name == "medical_ner":
        return run_peer_ner(name, seed, split, base, args)
    row = run_peer_classification(name, seed, split, base, args)
    check_same_split(own, row)
    return row


# ----- reporting -----------------------------------------------------------------------------

def values(rows: list[dict], key: str, section: str = "test") -> list[float]:
    return [r[section][key] for r in rows if key in r.get(section, {})]


def mean(xs: list[float]) -> float | None:
    return statistics.fmean(xs) if xs else None


def pct(xs: list[float]) -> str:
    """Mean ± sample std over seeds, in %; one value without the spread."""
    if not xs:
        return "–"
    if len(xs) == 1:
        return f"{100 * xs[0]:.1f}"
    return f"{100 * statistics.fmean(xs):.1f} ± {100 * statistics.stdev(xs):.1f}"


def groups(rows: list[dict]) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = {}
    for r in sorted(rows, key=lambda r: r["seed"]):
        out.setdefault((r["recipe"], r["tool"]), []).append(r)
    return out


def anchor(recipe: str, ref: dict | None) -> str:
    """The anchor column; `ref`: the triage nurses on the test split (from domainft's metrics.json)."""
    if recipe == "finance_sentiment":
        return f"FinBERT acc {100 * FINBERT['accuracy']:.0f} / F1 {100 * FINBERT['f1']:.0f}"
    if recipe == "medical_triage":
        return (f"nurses, same test patients: acc {100 * ref['accuracy']:.1f}, under-triage "
                f"{100 * ref['under_triage']:.1f}") if ref else "nurses: not measured"
    if recipe == "legal_clause_review":
        return (f"LEDGAR micro-F1 {100 * LEDGAR_MICRO_F1[0]:.1f}-{100 * LEDGAR_MICRO_F1[1]:.1f} "
                "(110M bases, 100 types; other data)")
    return f"BERT-base {NCBI_F1[0]} / BioBERT {NCBI_F1[1]} (110M)"


COLUMNS = [("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("micro_f1", "micro-F1"),
           ("under_triage", "under-triage"), ("over_triage", "over-triage"), ("f1", "entity F1 (P / R)")]


def metric_cells(recipe: str, rows: list[dict]) -> list[str]:
    cells = []
    for key, _ in COLUMNS:
        if key not in METRICS[recipe]:
            cells.append("–")
        elif key == "f1":
            p, r = mean(values(rows, "precision")), mean(values(rows, "recall"))
            pr = f" (P {100 * p:.1f} / R {100 * r:.1f})" if p is not None and r is not None else ""
            cells.append(pct(values(rows, "f1")) + pr)
        else:
            cells.append(pct(values(rows, key)))
    return cells


def table_row(recipe: str, rows: list[dict], ref: dict | None) -> str:
    seconds, epochs, rss = (mean([r[k] for r in rows if r.get(k) is not None])
                            for k in ("train_wall_s", "epochs", "peak_rss_mb"))
    bases = ", ".join(sorted({r["base"] for r in rows}))
    cells = [recipe, rows[0]["label"], *metric_cells(recipe, rows), anchor(recipe, ref),
             f"{seconds:.0f}" if seconds is not None else "–", f"{epochs:.1f}" if epochs is not None else "–",
             f"{rss:.0f}" if rss is not None else "–", bases, " ".join(str(r["seed"]) for r in rows)]
    return "| " + " | ".join(cells) + " |"


def nurses(rows: list[dict]) -> dict | None:
    """The reference rater on the test split, as domainft's metrics.json scores it (one split: the
    same for every seed)."""
    return next((r["reference_test"] for r in rows if r.get("tool") == "domainft" and r.get("reference_test")),
                None)


def nurses_row(rows: list[dict]) -> str | None:
    ref = nurses(rows)
    if ref is None:
        return None
    whole = next((r["reference_file"] for r in rows if r.get("reference_file")), None) or {}
    cells = ["medical_triage", f"triage nurses ({ref['column']}), same test patients (n {ref['n']})"]
    for key, _ in COLUMNS:
        cells.append(f"{100 * ref[key]:.1f}" if key in METRICS["medical_triage"] and key in ref else "–")
    whole_text = (f"whole file (n {whole['n']}): acc {100 * whole['accuracy']:.1f}, under-triage "
                  f"{100 * whole['under_triage']:.1f}; " if "under_triage" in whole else "")
    cells.append(whole_text + f"published {100 * NURSES_PUBLISHED['accuracy']:.1f} / "
                              f"{100 * NURSES_PUBLISHED['under_triage']:.1f}")
    cells += ["–"] * 5
    return "| " + " | ".join(cells) + " |"


def results_table(rows: list[dict]) -> list[str]:
    header = ["recipe", "tool", *[f"test {name} (%)" for _, name in COLUMNS], "anchor", "train time (s)",
              "epochs", "peak memory (MB)", "base used", "seeds"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    by = groups(rows)
    for recipe in RECIPES:
        ref = nurses(by.get((recipe, "domainft"), []))
        for tool in ("domainft", "peer"):
            if (recipe, tool) in by:
                lines.append(table_row(recipe, by[(recipe, tool)], ref))
        if recipe == "medical_triage" and (recipe, "domainft") in by:
            line = nurses_row(by[(recipe, "domainft")])
            lines += [line] if line else []
    return lines


def verdict(ok: bool | None) -> str:
    return "not measured" if ok is None else ("**met**" if ok else "**not met**")


def target_lines(rows: list[dict]) -> list[str]:
    by = groups(rows)

    def dom(recipe: str) -> list[dict]:
        return by.get((recipe, "domainft"), [])

    def peer(recipe: str) -> list[dict]:
        return by.get((recipe, "peer"), [])

    lines = []
    fin = values(dom("finance_sentiment"), "macro_f1")
    lines.append(f"- finance macro-F1 ≥ {100 * FINBERT['f1']:.0f} (FinBERT's F1): "
                 f"{verdict(mean(fin) >= FINBERT['f1'] if fin else None)} — domainft {pct(fin)}")
    leg, leg_peer = values(dom("legal_clause_review"), "micro_f1"), values(peer("legal_clause_review"), "micro_f1")
    ok = mean(leg) >= mean(leg_peer) if leg and leg_peer else None
    lines.append(f"- legal micro-F1 ≥ the plain script's: {verdict(ok)} — domainft {pct(leg)} vs peer {pct(leg_peer)}")
    lines.append(triage_target(dom("medical_triage")))
    for recipe in RECIPES:
        key = METRICS[recipe][0]
        d, p = values(dom(recipe), key), values(peer(recipe), key)
        ok = mean(d) >= mean(p) if d and p else None
        lines.append(f"- {recipe}: test {METRIC_NAMES[key]} ≥ the plain script's: {verdict(ok)} — "
                     f"domainft {pct(d)} vs peer {pct(p)}")
    bases = sorted({r["base"] for r in rows if r["tool"] == "domainft"} - {"minilm"})
    if bases:
        lines.append(f"- note: the targets are for the packaged MiniLM; these runs also used {', '.join(bases)}")
    return lines


def triage_target(rows: list[dict]) -> str:
    name = "- triage under-triage below the nurses' at accuracy within 10 points of theirs (same test split)"
    ref = nurses(rows)
    if not ref:
        return f"{name}: {verdict(None)}"
    under, acc = values(rows, "under_triage"), values(rows, "accuracy")
    floor = ref["accuracy"] - TRIAGE_ACCURACY_MARGIN
    ok = mean(under) < ref["under_triage"] and mean(acc) >= floor
    # The issue quotes the nurses' whole-file rate; shown too, since a small test split can differ.
    whole = NURSES_PUBLISHED["under_triage"]
    return (f"{name}: {verdict(ok)} — under-triage {pct(under)} vs nurses' {100 * ref['under_triage']:.1f} "
            f"(below their whole-file {100 * whole:.1f}: {'yes' if mean(under) < whole else 'no'}); "
            f"accuracy {pct(acc)} vs nurses' {100 * ref['accuracy']:.1f} (at least {100 * floor:.1f})")


def per_category_lines(rows: list[dict]) -> list[str]:
    """Legal: test F1 per CUAD category, mean over seeds, domainft beside the peer."""
    by = groups(rows)
    dom, peer = by.get(("legal_clause_review", "domainft"), []), by.get(("legal_clause_review", "peer"), [])
    if not dom:
        return []
    support = {c: v["support"] for c, v in dom[0]["per_class"].items()}

    def f1(rs: list[dict], c: str) -> str:
        return pct([r["per_class"][c]["f1"] for r in rs if c in r.get("per_class", {})])

    lines = ["| category | test clauses | domainft F1 (%) | peer F1 (%) |", "|---|---|---|---|"]
    for c in sorted(support, key=lambda c: (-support[c], c)):
        lines.append(f"| {c} | {support[c]} | {f1(dom, c)} | {f1(peer, c)} |")
    return lines


def summary_lines(rows: list[dict]) -> list[str]:
    """The results table and the targets: what the README shows."""
    return [*results_table(rows), "", "Targets (means over seeds):", *target_lines(rows)]


def report(rows: list[dict], meta: dict | None = None) -> str:
    parts = summary_lines(rows)
    legal = per_category_lines(rows)
    if legal:
        parts += ["", "Legal clause review, test F1 per category:", "", *legal]
    if meta:
        smoke = "smoke: sample data, 1 epoch; " if meta.get("smoke") else ""
        overrides = " ".join(meta.get("overrides") or []) or "none"
        parts += ["", (f"({smoke}started {meta.get('started')}, {meta.get('cpus')} CPUs, "
                       f"OMP_NUM_THREADS={meta.get('omp_num_threads')}, --set {overrides})")]
    return "\n".join(parts)


def merge_saved(paths: list[Path]) -> tuple[list[dict], list[dict]]:
    """(runs, metas) of several results files. A (recipe, tool, seed) run in two files is an error,
    unless the two rows are identical: a stream that ran only the peers was seeded with copies of
    the domainft rows (the peer trains the base each domainft run used)."""
    rows, metas = [], []
    for path in paths:
        saved = json.loads(path.read_text())
        for r in saved["runs"]:
            earlier = find(rows, r["recipe"], r["tool"], r["seed"])
            if earlier == r:
                continue
            if earlier:
                sys.exit(f"{path}: {r['recipe']} {r['tool']} seed {r['seed']} is already in an earlier file, "
                         "with other results")
            rows.append(r)
        metas.append(saved.get("meta") or {})
    return rows, metas


def write_readme(rows: list[dict]) -> None:
    """bench/README.md's block between the markers: the table and the targets."""
    write_readme_section(README_SECTION, "\n".join(summary_lines(rows)))


def main() -> None:
    args = parse_args()
    if args.from_json:
        rows, metas = merge_saved(args.from_json)
        print(report(rows, metas[0] if len(metas) == 1 else None))
        if len(metas) > 1:  # one footnote per file
            for path, meta in zip(args.from_json, metas):
                print(f"{path}: started {meta.get('started')}, OMP_NUM_THREADS={meta.get('omp_num_threads')}, "
                      f"argv {' '.join(meta.get('argv') or [])}")
        if args.readme:
            write_readme(rows)
        return
    os.chdir(ROOT)  # recipes name their sample data relative to the repository
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    rows = json.loads(args.out.read_text())["runs"] if args.resume and args.out.is_file() else []
    failures = []
    for name in args.recipes:
        failures += run_seeds(name, rows, args, started)
    save(rows, args, started)
    text = report(rows, json.loads(args.out.read_text())["meta"])
    args.out.with_suffix(".md").write_text(text + "\n")
    print("\n" + text)
    if args.readme:
        write_readme(rows)
    if failures:
        print("\nFailed:\n" + "\n".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
