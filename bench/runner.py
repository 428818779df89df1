"""What the bench/ scripts share: where things live, one `domainft run` (or peer script) in its own
process and the metrics it leaves, results JSON written atomically, the recipes' real data and
anchors, and the Markdown blocks the scripts keep in bench/README.md.

The scripts run as `python bench/X.py` from anywhere: Python puts bench/ on sys.path, so a plain
`from runner import ...` finds this module. Nothing here imports another bench script.
"""
from __future__ import annotations

import argparse
import csv
import fcntl
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from domainft import atomic

ROOT = Path(__file__).resolve().parent.parent  # the repository
DATASETS = ROOT.parent / "shared" / "datasets"  # real data, beside the checkout
RECIPES_DIR = ROOT / "recipes"
# run directories, splits, checkpoints: large, ignored by git. Resolved: a worktree whose bench/out
# links to another checkout's names the same run directories (`--resume` compares recipes, output.dir
# included)
OUT = (ROOT / "bench" / "out").resolve()
# Results JSON: small and committed, so tables can be re-rendered from a fresh clone and a later
# session resumes or extends them.
RESULTS = ROOT / "bench" / "results"
README = ROOT / "bench" / "README.md"  # its first line when write_readme_section has to make it:
README_TITLE = "# Benchmarks"
# The peers: plain Hugging Face scripts on the same data (bench/recipes.py, finance_phrasebank.py, ner_corpora.py).
PEER_TRAINER = ROOT / "bench" / "peer_trainer_script.py"  # classification, on a split written by write_split
PEER_NER = ROOT / "bench" / "peer_ner_script.py"  # NER, on a corpus's official train/devel/test.tsv
# File names inside a run directory (literal here: domainft moves its own constants around).
METRICS_FILE = "metrics.json"
RECIPE_FILE = "recipe.yaml"
MANIFEST_FILE = "model/domainft.json"

# ----- the recipes' real data, metrics and anchors ------------------------------------------

RECIPES = ["finance_sentiment", "medical_triage", "legal_clause_review", "medical_ner"]
FPB = DATASETS / "financial_phrasebank" / "Sentences_50Agree.txt"  # Financial PhraseBank 50Agree
# The real data, as each recipe's header comment says to point it there.
REAL_DATA = {
    "finance_sentiment": [f"data.path={FPB}"],
    "medical_triage": [f"data.path={DATASETS / 'ktas_triage' / 'data.csv'}"],
    "legal_clause_review": [f"data.path={DATASETS / 'cuad' / 'master_clauses.csv.gz'}"],
    "medical_ner": [f"data.path={DATASETS / 'ncbi_disease'}"],  # official train/devel/test.tsv
}
# Test metrics shown per recipe (metrics.json keys); the first is each recipe's main score.
METRICS = {
    "finance_sentiment": ("macro_f1", "accuracy"),
    "medical_triage": ("macro_f1", "accuracy", "under_triage", "over_triage"),
    "legal_clause_review": ("micro_f1", "macro_f1", "accuracy"),
    "medical_ner": ("f1", "precision", "recall"),
}
# KTAS triage nurses (KTAS_RN) against the expert panel on the whole file, as published (Moon et al.
# 2019, PLOS ONE 14(9): e0216972).
NURSES_PUBLISHED = {"accuracy": 0.853, "under_triage": 0.103}
TRIAGE_ACCURACY_MARGIN = 0.10  # the triage target: accuracy within 10 points of the nurses'
# Entity-level test F1 with 110M bases, from the issue: (BERT-base, BioBERT v1.1).
NER_ANCHORS = {"ncbi_disease": {"Disease": (85.3, 88.3)},
               "bc5cdr": {"Disease": (83.3, 86.4), "Chemical": (91.8, 93.0)}}

# The finance benchmark's run and split (bench/finance_phrasebank.py), served by bench/export_latency.py.
FINANCE_RECIPE = RECIPES_DIR / "finance_sentiment.yaml"
FPB_RUN = OUT / "domainft_fpb50"
FPB_SPLIT = OUT / "fpb50_split"


class RunFailed(RuntimeError):
    """A `domainft run` or peer script exited with an error."""


# ----- running ----------------------------------------------------------------------------------

def recipe_file(recipe: str | Path) -> Path:
    """A recipe by name (`finance_sentiment`: recipes/finance_sentiment.yaml) or by path."""
    path = Path(recipe)
    return path if path.suffix in (".yaml", ".yml") else RECIPES_DIR / f"{recipe}.yaml"


def as_sets(overrides: Mapping | Sequence[str]) -> list[str]:
    """FIELD=VALUE strings from a list of them or a {field: value} dict (True -> true, None -> null)."""
    if isinstance(overrides, Mapping):
        text = {True: "true", False: "false", None: "null"}
        return [f"{k}={text[v] if v is None or isinstance(v, bool) else v}" for k, v in overrides.items()]
    return list(overrides)


def sets(overrides: Mapping | Sequence[str]) -> list[str]:
    """The `--set` arguments for `domainft run`."""
    return [a for o in as_sets(overrides) for a in ("--set", o)]


def child_env(offline: bool = False, **extra: str) -> dict:
    """This process's environment for a child, HF_HUB_OFFLINE=1 when `offline`, plus `extra`
    (thread settings such as OMP_NUM_THREADS are inherited as they are)."""
    return {**os.environ, **({"HF_HUB_OFFLINE": "1"} if offline else {}), **extra}


def read_metrics(run_dir: Path) -> dict:
    """The metrics.json a finished run left in `run_dir`."""
    return json.loads((Path(run_dir) / METRICS_FILE).read_text())


def train_precision(metrics: dict) -> str:
    """The precision a run trained in (metrics.json train.precision; fp32 for runs from before it
    was recorded)."""
    return (metrics["train"].get("precision") or {}).get("used", "fp32")


def read_manifest(run_dir: Path) -> dict:
    """The saved model's domainft.json (the base it used, the tuning method, ...)."""
    return json.loads((Path(run_dir) / MANIFEST_FILE).read_text())


def run_recipe(recipe: str | Path, overrides: Mapping | Sequence[str], out_dir: Path, resume: bool = False,
               extra_args: Sequence[str] = ("--quiet",), env: Mapping | None = None) -> dict:
    """`python -m domainft run RECIPE --quiet --set ...` in its own process (cwd the repository,
    output on this terminal), into `out_dir` (replaced: `output.dir` and `output.overwrite=true`
    come after `overrides`); its metrics.json. `resume`: a run already finished in `out_dir` (its
    metrics.json is there) is read instead of trained again, and one that was interrupted continues
    from its last checkpoint (`domainft run --resume`; an hour-long teacher spans sessions).
    RunFailed when the run fails."""
    out_dir = Path(out_dir)
    if resume and (out_dir / METRICS_FILE).is_file():
        return read_metrics(out_dir)
    path = recipe_file(recipe)
    cmd = [sys.executable, "-m", "domainft", "run", str(path), *extra_args,
           *sets([*as_sets(overrides), f"output.dir={out_dir}", "output.overwrite=true"])]
    if resume and _interrupted(out_dir):
        cmd.append("--resume")
    code = _run_child(cmd, env)
    if code:
        raise RunFailed(f"domainft run {path.stem} into {out_dir} failed (exit {code}; its error is printed above)")
    return read_metrics(out_dir)


def _run_child(cmd: list[str], env: Mapping | None) -> int:
    """Run `cmd`; its exit code. A benchmark stopped with kill or Ctrl-C stops its run too (SIGTERM,
    which the run turns into its own cleanup), instead of leaving it training unseen, holding the
    adapted base's lock and writing into a run directory the next attempt will use."""
    child = subprocess.Popen(cmd, cwd=ROOT, env=None if env is None else dict(env))
    try:
        with atomic.signals_raise():
            return child.wait()
    except BaseException:
        child.terminate()
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
        raise


def _interrupted(out_dir: Path) -> bool:
    """A run was started in out_dir (or in the hidden sibling an overwriting run builds in) and did
    not finish."""
    from domainft.rundir import RunDir, staging_path

    return any(RunDir(d).is_started() and not RunDir(d).is_finished() for d in (out_dir, staging_path(out_dir)))


def run_script_json(script: Path, args: Sequence, env: Mapping | None = None) -> tuple[dict, float]:
    """Run a Python script (a peer, or this script's own child) in its own process; the JSON object
    on its last stdout line, and the process's wall time in seconds. RunFailed, with the end of its
    stderr, when it fails."""
    cmd = [sys.executable, str(script), *map(str, args)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=ROOT,
                          env=None if env is None else dict(env))
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RunFailed(f"{Path(script).name} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def base_path(name: str = "minilm") -> str:
    """Where a base's weights are (the packaged MiniLM by default), for the peer scripts."""
    from domainft.bases import resolve_base

    return str(resolve_base([name]).path)


def write_split(recipe, split_dir: Path = FPB_SPLIT) -> Path:
    """The recipe's train/validation/test as domainft loads them (texts rendered by the recipe's
    template, deduplicated, split) to SPLIT_DIR/{name}.csv (text,label; text,text_pair,label for
    text pairs) for a peer script, and the
    recipe's label order to SPLIT_DIR/labels.json. Classification recipes."""
    from domainft.tasks import get_task

    data = get_task(recipe.task).load_data(recipe.data)
    split_dir.mkdir(parents=True, exist_ok=True)
    for name, examples in data.splits().items():
        pairs = recipe.data.has_pairs  # a text pair: its second text in a column of its own
        with open(split_dir / f"{name}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "text_pair", "label"] if pairs else ["text", "label"])
            w.writerows((e.text, e.pair, e.label) if pairs else (e.text, e.label) for e in examples)
    (split_dir / "labels.json").write_text(json.dumps(data.labels))
    print(f"split: {data.report}", flush=True)
    return split_dir


def read_csv_column(path: Path, column: str) -> list[str]:
    """One column of a CSV with a header row (a split written by write_split)."""
    with open(path, newline="", encoding="utf-8") as f:
        return [r[column] for r in csv.DictReader(f)]


# ----- the finance benchmark's domainft run (bench/finance_phrasebank.py, bench/tuning_methods.py) --

def run_finance(overrides: Sequence[str], run_name: str = FPB_RUN.name,
                tool: str = "domainft run (recipe defaults)") -> dict:
    """One `domainft run` of the finance recipe on FPB 50Agree (packaged MiniLM) into bench/out/RUN_NAME;
    its row: test scores, training time and memory, parameter counts."""
    m = run_recipe(FINANCE_RECIPE, [f"data.path={FPB}", "base=minilm", *overrides], OUT / run_name)
    return {"tool": tool, "test_accuracy": m["test"]["accuracy"],
            "test_macro_f1": m["test"]["macro_f1"], "train_wall_s": m["train"]["wall_time_s"],
            "peak_rss_mb": m["train"]["peak_rss_mb"], "epochs": m["train"]["epochs_run"],
            "lr": m["train"]["lr"], "trainable_params": m["run"]["trainable_params"],
            "total_params": m["run"]["total_params"], "saved_mb": m["run"]["saved_mb"]}


# ----- results ----------------------------------------------------------------------------------

def load_results(path: Path, default=None):
    """A results JSON, or `default` when the file is not there yet."""
    return json.loads(Path(path).read_text()) if Path(path).is_file() else default


def save_results(path: Path, data, indent: int = 1) -> None:
    """Write results JSON atomically (an interrupted write never leaves half a file), folders made."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, json.dumps(data, indent=indent))


def save_row(path: Path, arm: str, seed: int, row: dict, header: Mapping | None = None) -> dict:
    """Merge one run's row into results file `path` under runs[arm][seed] and write it atomically; the
    merged results. The file is re-read under a lock first: another copy of the same script (a second
    lane of seeds or arms) may have written rows since this one started."""
    def merge(results: dict) -> None:
        results.update(header or {})
        results.setdefault("runs", {}).setdefault(arm, {})[str(seed)] = row
    return update_results(path, merge)


def save_field(path: Path, key: str, value) -> dict:
    """Set one top-level field of results file `path` (e.g. the serving table), under the same lock as
    save_row, so a lane that finishes its rows meanwhile keeps them; the merged results."""
    return update_results(path, lambda results: results.__setitem__(key, value))


def update_results(path: Path, change) -> dict:
    """Re-read results file `path` under a lock, apply `change(results)` and write it atomically; the
    results. The lock file lives in the ignored bench/out, not beside the committed results."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / f"{path.stem}_results.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = load_results(path, {})
        change(results)
        atomic.write_text(path, json.dumps(results, indent=2) + "\n")
    return results


def readme_markers(name: str) -> tuple[str, str]:
    return f"<!-- bench/{name}: begin -->", f"<!-- bench/{name}: end -->"


def write_readme_section(name: str, markdown: str, readme: Path = README) -> Path:
    """Put `markdown` between the `<!-- bench/NAME: begin -->` and `<!-- bench/NAME: end -->` markers
    of bench/README.md, replacing what was there; the block is added at the end when the markers are
    missing, the file made (with a title line) when it is. Written atomically."""
    begin, end = readme_markers(name)
    text = readme.read_text(encoding="utf-8") if readme.is_file() else f"{README_TITLE}\n"
    head, found, rest = text.partition(begin)
    _, found_end, tail = rest.partition(end)
    if found and not found_end:
        sys.exit(f"{readme}: {begin} has no {end} after it")
    if not found:
        head, tail = text.rstrip("\n") + "\n\n", "\n"
    block = markdown.strip("\n")
    atomic.write_text(readme, f"{head}{begin}\n{block}\n{end}{tail}")
    return readme


def table_command(script: str, description: str, results_file: Path, measure, table, argv=None,
                  cannot: str | None = None) -> None:
    """The command line of a benchmark that measures once and prints a table: `--table` prints the
    saved results' table and measures nothing, `--readme` also writes it into bench/README.md.
    `cannot`: why this machine cannot measure (said, and nothing measured)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--readme", action="store_true", help="write the table into bench/README.md")
    parser.add_argument("--table", action="store_true", help="print the table of the saved results; run nothing")
    args = parser.parse_args(argv)
    if args.table:
        results = json.loads(results_file.read_text())
    elif cannot:
        print(f"{script}: {cannot} (nothing measured)")
        return
    else:
        results = measure()
        save_results(results_file, results)
    print(table(results))
    if args.readme:
        write_readme_section(script, table(results))


def finance_domain_texts(out: Path) -> Path:
    """Unlabelled finance text, one a line, written once to `out` from ../shared/datasets at run time:
    FiQA 2018 task 1 posts and headlines (train and test files) and SemEval-2017 task 5 headlines (the
    distillation transfer set and the DAPT corpus; domainft drops any that is one of a run's own texts)."""
    if out.is_file():
        return out
    texts = []
    for name in sorted((DATASETS / "fiqa_2018_task1").glob("task1_*_ABSA_*.json")):
        texts += [v["sentence"] for v in json.loads(name.read_text(encoding="utf-8")).values()]
    semeval = DATASETS / "semeval2017_task5_headlines" / "Headline_Trainingdata.json"
    texts += [row["title"] for row in json.loads(semeval.read_text(encoding="utf-8"))]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(" ".join(t.split()) for t in texts) + "\n", encoding="utf-8")
    return out


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\[])|\s+-\s+(?=[A-Z])")


def _write_sentences(out: Path, documents) -> Path:
    """The documents' sentences of 5 to 80 words, repeats (ignoring case) removed, one a line."""
    seen, lines = set(), []
    for document in documents:
        for sentence in _SENTENCE_END.split(" ".join(document.split())):
            sentence = sentence.strip(" -")
            if 5 <= len(sentence.split()) <= 80 and sentence.lower() not in seen:
                seen.add(sentence.lower())
                lines.append(sentence)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out, "\n".join(lines) + "\n")
    return out


def legal_domain_texts(out: Path) -> Path:
    """Unlabelled legal text, one sentence a line, written once to `out`: the ContractNLI contract
    documents (NDAs, its dev and test files; no CUAD text), as sentences (the DAPT corpus for CUAD)."""
    if out.is_file():
        return out
    documents = []
    for name in ("dev.json", "test.json"):
        data = json.loads((DATASETS / "contract_nli" / name).read_text(encoding="utf-8"))
        documents += [d["text"] for d in data["documents"]]
    return _write_sentences(out, documents)


def medical_domain_texts(out: Path) -> Path:
    """Unlabelled medical text, one sentence a line, written once to `out` from ../shared/datasets at
    run time: Medical Abstracts (PubMed abstracts) and MedQuAD questions and answers, split into
    sentences (an NCBI-disease sentence, also from PubMed, is then one line that domainft's own check
    drops when it is a text of the run), 5 to 80 words, repeats removed (the distillation transfer
    set and the DAPT corpus for medical tasks)."""
    if out.is_file():
        return out
    import gzip
    import tarfile
    import xml.etree.ElementTree as ET

    documents = []
    with gzip.open(DATASETS / "medical_abstracts" / "medical_tc_test.csv.gz", "rt", encoding="utf-8") as f:
        documents += [row["medical_abstract"] for row in csv.DictReader(f)]
    with tarfile.open(DATASETS / "medquad" / "medquad_xml.tar.gz") as tar:
        for member in sorted((m for m in tar.getmembers() if m.name.endswith(".xml")), key=lambda m: m.name):
            root = ET.fromstring(tar.extractfile(member).read())
            documents += [node.text for node in root.iter() if node.tag in ("Question", "Answer") and node.text]
    return _write_sentences(out, documents)
