"""Bad inputs, one matrix: every user-facing failure ends in ONE message that names the field, file or
line, exit status 2, no traceback, and the file system as it was.

Each case runs one `domainft` command in-process (typer's CliRunner; one case in a subprocess, for
bytes on the command line that are not UTF-8) from its own temporary directory, which holds the
case's input files and is where a default `runs/<name>` would be written. Before and after, the
paths, sizes and modification times under that directory and under the shared trained run are
compared. A case that is a documented success (`--set x=null`, a BOM) checks exit status 0 instead.

In the cases' text, `<tmp>` is the case's directory, `<run>` the module's one tiny trained run,
`<sample>` the finance sample and `<root>` the checkout.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
from typer.testing import CliRunner

from domainft.cli import app

from conftest import ROOT, SAMPLE

runner = CliRunner()
FINANCE = str(ROOT / "recipes" / "finance_sentiment.yaml")
PHRASEBANK = "name: bad\ndata: {format: phrasebank, path: <sample>}\n"  # a valid recipe to build on
LABELS = "labels: [negative, neutral, positive]"


@pytest.fixture(scope="module")
def trained_run(tiny_base, tmp_path_factory) -> Path:
    """One tiny classification run (1 epoch), shared by the predict and export cases."""
    from domainft import run
    from domainft.recipe import Recipe

    out = tmp_path_factory.mktemp("bad_inputs") / "run"
    recipe = Recipe.from_dict({
        "name": "bad_inputs", "base": str(tiny_base),
        "data": {"format": "phrasebank", "path": str(SAMPLE), "max_length": 32},
        "train": {"epochs": 1, "batch_size": 32, "lr": 5e-4, "seed": 7}, "output": {"dir": str(out)}})
    run(recipe, progress=False, echo=lambda *a: None)
    return out


@dataclass
class Case:
    args: list  # the command line; str items may hold the placeholders
    message: str  # a regex the output must match (re.search)
    files: dict = field(default_factory=dict)  # name -> text (placeholders filled) or bytes, written first
    setup: Callable[[Path, Path], None] | None = None  # (case dir, trained run): more preparation
    code: int = 2
    subprocess: bool = False  # run `python -m domainft` instead (argv bytes that are not UTF-8)


def fill(value, tmp: Path, run: Path):
    if not isinstance(value, str):
        return value
    for key, path in (("<tmp>", tmp), ("<run>", run), ("<sample>", SAMPLE), ("<root>", ROOT)):
        value = value.replace(key, str(path))
    return value


def validate(recipe: str, *extra: str, **kw) -> Case:
    """`validate r.yaml` on a recipe file written from `recipe`; the last keyword is the message."""
    message = kw.pop("message")
    files = {"r.yaml": recipe, **kw.pop("files", {})}
    return Case(["validate", "r.yaml", *extra], message, files, **kw)


def data_case(data_lines: str, file_name: str, content, message: str, task: str = "classification",
              code: int = 2) -> Case:
    """`validate` on a recipe whose data section is `data_lines` (indented YAML) reading `file_name`."""
    recipe = f"name: bad\ntask: {task}\ndata:\n{data_lines}\n"
    return validate(recipe, files={file_name: content} if content is not None else {}, message=message, code=code)


def copy_model(name: str, edit: Callable[[Path], None]) -> Callable[[Path, Path], None]:
    """Setup: a copy of the trained run as <tmp>/<name>, then `edit(its model dir)`."""
    def setup(tmp: Path, run: Path) -> None:
        shutil.copytree(run, tmp / name)
        edit(tmp / name / "model")
    return setup


def set_manifest(**changes) -> Callable[[Path], None]:
    def edit(model_dir: Path) -> None:
        manifest = json.loads((model_dir / "domainft.json").read_text())
        (model_dir / "domainft.json").write_text(json.dumps({**manifest, **changes}))
    return edit


SENTENCES = "Profit rose .@positive\nShares fell .@negative\nThe meeting is in May .@neutral\n" * 3
CSV_OK = "text,label\nProfit rose,positive\nShares fell,negative\nMeeting in May,neutral\n"
NER_OK = "Patients\tO\nwith\tO\ncystic\tB-Disease\nfibrosis\tI-Disease\n\nNo\tO\nataxia\tB-Disease\n\n"
NER = "  format: conll\n  path: d.tsv"
TRAIN = "  train: d.csv\n  validation: d.csv"  # no split: the file is read twice as it is

CASES = {
    # --- recipe: YAML, unknown fields, types, ranges -------------------------------------------
    "yaml_syntax": validate("data: [unclosed", message=r"recipe r\.yaml is invalid:\s+not valid YAML"),
    "yaml_tab_indent": validate("data:\n\tpath: x.txt\n",
                                message=r"not valid YAML at line 2, column 1: .*indent with spaces, not tabs"),
    "yaml_top_level_list": validate("- a\n- b\n", message=r"the top level must be a mapping of sections"),
    "yaml_empty_file": validate("", message=r"data: required field is missing"),
    "yaml_not_utf8": validate(b"name: caf\xe9\ndata: {path: x.txt}\n",
                              message=r"r\.yaml is invalid:\s+line 1: bytes b'\\xe9' are not valid UTF-8"),
    "duplicate_key": validate(PHRASEBANK + "train: {epochs: 1}\ntrain: {lr: 0.1}\n",
                              message=r"train: written twice, on lines 3 and 4; YAML would keep only the second"),
    "duplicate_nested_key": validate("name: bad\ndata:\n  path: <sample>\n  split:\n    seed: 1\n    seed: 2\n",
                                     message=r"data\.split\.seed: written twice, on lines 5 and 6"),
    "unknown_section": validate(PHRASEBANK + "trian: {epochs: 1}\n", message=r"trian: unknown field; did you "
                                                                            r"mean 'train'\?"),
    "unknown_field": validate(PHRASEBANK + "train: {epoch: 1}\n",
                              message=r"train\.epoch: unknown field; did you mean 'epochs'\?"),
    "hugging_face_name": validate(PHRASEBANK + "train: {learning_rate: 0.001}\n",
                                  message=r"train\.learning_rate: unknown field; did you mean 'lr'\?"),
    "wrong_type": validate(PHRASEBANK + "train: {batch_size: big}\n",
                           message=r"train\.batch_size: Input should be a valid integer.*'big'"),
    "lr_negative": validate(PHRASEBANK + "train: {lr: -1}\n", message=r"train\.lr: Input should be greater than 0"),
    "lr_too_high": validate(PHRASEBANK + "train: {lr: 5}\n", message=r"train\.lr: Input should be less than 1"),
    "epochs_zero": validate(PHRASEBANK + "train: {epochs: 0}\n", message=r"train\.epochs: Input should be greater "
                                                                         r"than 0"),
    "eval_every_zero": validate(PHRASEBANK + "train: {eval_every: 0}\n",
                                message=r"train\.eval_every: a number of steps must be at least 1"),
    "max_length_small": validate("data: {path: <sample>, max_length: 4}\n",
                                 message=r"data\.max_length: Input should be greater than or equal to 8"),
    "split_sums_to_one": validate("data: {path: <sample>, split: {validation: 0.6, test: 0.5}}\n",
                                  message=r"data\.split: validation \+ test must leave some data"),
    "delimiter_two_chars": validate("data: {path: d.csv, delimiter: ';;'}\n",
                                    message=r"data\.delimiter: .*a delimiter is one character"),
    "data_two_sources": validate("data: {path: a.txt, train: b.csv}\n", message=r"data: give either `path`"),
    "data_no_source": validate("data: {}\n", message=r"data: give either `path`"),
    "labels_twice": validate("data: {path: <sample>, labels: [a, a]}\n", message=r"data: `labels` lists a label "
                                                                                 r"twice"),
    "base_empty_list": validate(PHRASEBANK + "base: []\n", message=r"base\.name: List should have at least 1 item"),
    "threshold_zero": validate(PHRASEBANK + "decision: {escalate_threshold: 0}\n",
                               message=r"decision\.escalate_threshold: Input should be greater than 0"),
    # --- recipe: cross-field conflicts, task / method mismatches --------------------------------
    "unknown_task": validate(PHRASEBANK + "task: summarize\n", message=r"task: 'summarize' is not a task; "
                                                                       r"choose one of"),
    "unknown_method": validate(PHRASEBANK + "tuning: {method: prefix}\n",
                               message=r"tuning\.method: 'prefix' is not a tuning method"),
    "foreign_option": validate(PHRASEBANK + "tuning: {method: full, r: 8}\n",
                               message=r"tuning\.r: not an option of tuning\.method=full .*tuning\.method=lora"),
    "metric_of_other_task": validate(PHRASEBANK + "train: {early_stopping: {metric: f1}}\n",
                                     message=r"train\.early_stopping\.metric: 'f1' is not a metric this task"),
    "format_of_other_task": Case(["validate", FINANCE, "--set", "data.format=conll"],
                                 r"data\.format: 'conll' is not a format for task classification.*"
                                 r"conll applies to task: ner"),
    "ner_field_on_classification": validate(PHRASEBANK.replace("}", ", scheme: bioes}"),
                                            message=r"data\.scheme: applies to task: ner only"),
    "generation_field_on_classification": validate(PHRASEBANK.replace("}", ", prompt_column: q}"),
                                                   message=r"data\.prompt_column: applies to task: generation"),
    "method_of_other_task": validate(PHRASEBANK + "tuning: {method: qlora}\n",
                                     message=r"tuning\.method: qlora applies to task: generation only"),
    "ordinal_without_labels": validate("data: {path: <sample>, ordinal: true}\n",
                                       message=r"data\.ordinal: needs data\.labels"),
    "template_uses_label": validate("data: {path: d.csv, text_template: '{label}: {text}'}\n",
                                    message=r"data\.text_template: uses column 'label'"),
    "template_unbalanced": validate("data: {path: d.csv, text_template: '{text'}\n",
                                    message=r"data\.text_template: not a valid template"),
    "flags_without_number": validate("data: {path: d.csv, columns: {hr: {flags: [{max: 50, text: low}]}}}\n",
                                     message=r"data\.columns\.hr: .*`flags` apply to numbers"),
    "wide_options_elsewhere": validate("data: {path: d.csv, wide: {exclude: [id]}}\n",
                                       message=r"`wide` options apply to format: wide_lists only"),
    "name_with_path": Case(["run", "r.yaml"], r"name: not a plain name: .*no path separators.*'\.\./\.\./x'",
                           {"r.yaml": "name: ../../x\ndata: {format: phrasebank, path: <sample>}\n"}),
    "name_dot": validate("name: '.'\ndata: {path: <sample>}\n", message=r"name: not a plain name"),
    "output_dir_is_file": Case(["run", FINANCE, "--set", "output.dir=<tmp>/afile", "--set", "data.path=<sample>"],
                               r"output\.dir: \S*afile is a file; a run directory is a folder", {"afile": "x"}),
    "output_dir_inside_file": Case(["run", FINANCE, "--set", "output.dir=<tmp>/afile/run"],
                                   r"output\.dir: \S*afile/run is inside \S*afile, which is a file", {"afile": "x"}),
    "default_run_dir_is_file": Case(["run", "r.yaml"], r"output\.dir: runs/bad \(the default, runs/<name>\) is a "
                                                       r"file", {"r.yaml": PHRASEBANK, "runs/bad": "x"}),
    # --- command line ---------------------------------------------------------------------------
    "set_without_equals": Case(["validate", FINANCE, "--set", "train.lr"], r"--set 'train\.lr': expected "
                                                                           r"FIELD\.PATH=VALUE"),
    "set_empty_value": Case(["validate", FINANCE, "--set", "train.lr="],
                            r"--set train\.lr=: empty value; to reset a field to its default remove the --set, "
                            r"or write null explicitly"),
    "set_into_a_value": Case(["validate", FINANCE, "--set", "train.lr.x=1"],
                             r"--set train\.lr\.x: train\.lr is a value, not a section"),
    "set_unknown_field": Case(["validate", FINANCE, "--set", "tuning.rank=8"], r"tuning\.rank: unknown field"),
    "set_not_utf8": Case(["validate", FINANCE, "--set", "data.text_column=caf\udce9"],
                         r"--set 'data\.text_column=caf\\udce9': not valid UTF-8 text"),
    "set_null_is_allowed": Case(["validate", FINANCE, "--set", "train.lr=null", "--set", "data.path=<sample>"],
                                r"lr: null(.|\n)*ok: base", code=0),
    "missing_recipe": Case(["validate", "missing.yaml"], r"file not found: missing\.yaml"),
    "recipe_is_directory": Case(["run", "adir"], r"adir is a directory; a recipe is a YAML file",
                                {"adir/keep.txt": "x"}),
    "resume_nothing": Case(["run", "r.yaml", "--resume"], r"--resume: runs/bad holds no run to resume",
                           {"r.yaml": PHRASEBANK}),
    "run_over_a_run": Case(["run", "r.yaml", "--set", "output.dir=<run>"], r"output\.dir: \S+ already holds a run",
                           {"r.yaml": PHRASEBANK}),
    "run_into_a_folder_of_other_files": Case(["run", "r.yaml", "--set", "output.dir=mine"],
                                             r"output\.dir: \S*mine holds notes\.txt, which domainft did not "
                                             r"write; it is not a run directory\. Choose a new or empty output\.dir",
                                             {"r.yaml": PHRASEBANK, "mine/notes.txt": "x"}),
    "run_data_error_writes_nothing": Case(["run", "r.yaml"], r"d\.txt line 2: expected 'sentence@label'",
                                          {"r.yaml": "name: bad\ndata: {format: phrasebank, path: d.txt}\n",
                                           "d.txt": "Profit rose .@positive\nno label here\n"}),
    "code_not_python": Case(["validate", FINANCE, "--code", "plugin.txt"], r"--code: plugin\.txt is not a Python "
                                                                           r"file", {"plugin.txt": "x"}),
    "code_that_fails": Case(["validate", FINANCE, "--code", "plugin.py"],
                            r"--code: importing plugin\.py failed at \S*plugin\.py:2: RuntimeError: boom",
                            {"plugin.py": "x = 1\nraise RuntimeError('boom')\n"}),
    "predict_batch_size_zero": Case(["predict", "<run>", "x", "--batch-size", "0"],
                                    r"Invalid value for '--batch-size'.*greater than or equal to 1"),
    "predict_batch_size_negative": Case(["predict", "<run>", "x", "--batch-size", "-3"],
                                        r"Invalid value for '--batch-size'"),
    "generate_batch_size_zero": Case(["generate", "<run>", "x", "--batch-size", "0"],
                                     r"Invalid value for '--batch-size'"),
    "generate_max_new_tokens_zero": Case(["generate", "<run>", "x", "--max-new-tokens", "0"],
                                         r"Invalid value for '--max-new-tokens'"),
    "generate_temperature_zero": Case(["generate", "<run>", "x", "--sample", "--temperature", "0"],
                                      r"generate: --temperature must be above 0"),
    "generate_top_p_above_one": Case(["generate", "<run>", "x", "--sample", "--top-p", "1.5"],
                                     r"generate: --top-p must be above 0 and at most 1"),
    "predict_not_utf8_argument": Case(["predict", "<run>", "ok", "caf\udce9"],
                                      r"predict: text argument 2 \('caf\\udce9'\) is not valid UTF-8 text"),
    "predict_not_utf8_argv_bytes": Case(["predict", "<run>", b"caf\xe9"],
                                        r"predict: text argument 1 \('caf\\udce9'\) is not valid UTF-8 text",
                                        subprocess=True),
    "generate_not_utf8_argument": Case(["generate", "<run>", "caf\udce9"],
                                       r"generate: prompt argument 1 .* is not valid UTF-8 text"),
    "validate_not_utf8_recipe_path": Case(["validate", "caf\udce9.yaml"], r"file not found: caf\\udce9\.yaml"),
    # --- data -----------------------------------------------------------------------------------
    "recipe_name_nearly_right": Case(["validate", "finance.yml"], r"file not found: finance\.yml \(relative "
                                                                 r"paths start at .*; did you mean finance\.yaml\?\)",
                                     {"finance.yaml": "name: x\n"}),
    "data_name_nearly_right": data_case("  path: train.csv", "train.csv.gz", "x",
                                        r"train\.csv: file not found .*did you mean train\.csv\.gz\?"),
    "data_spreadsheet": data_case("  path: d.xlsx", "d.xlsx", b"PK\x03\x04",
                                  r"d\.xlsx: an Excel workbook is not read; save the sheet as CSV \(UTF-8\)"),
    "data_missing_file": data_case("  path: nope.txt", "other.txt", "x", r"nope\.txt: file not found"),
    "data_path_is_directory": data_case("  path: adir\n  format: csv", "adir/d.csv", CSV_OK,
                                        r"adir: a directory, not a data file; give the file itself"),
    "data_empty_file": data_case("  path: d.txt", "d.txt", "",
                                 r"d\.txt: the file is empty \(read as data\.format phrasebank\)"),
    "data_blank_csv": data_case("  path: d.csv", "d.csv", "\n\n", r"d\.csv: the file is empty \(read as data\.format "
                                                                  r"csv\)"),
    "data_header_only": data_case("  path: d.csv", "d.csv", "text,label\n",
                                  r"d\.csv: holds no examples \(read as data\.format csv: a header row"),
    "data_bad_encoding": data_case("  path: d.csv", "d.csv", b"text,label\nok,a\ncaf\xff,b\n",
                                   r"d\.csv line 3: bytes b'\\xff' are not valid utf-8-sig; set data\.encoding"),
    "data_unknown_encoding": data_case("  path: d.csv\n  encoding: klingon", "d.csv", CSV_OK,
                                       r"data\.encoding: unknown encoding 'klingon'"),
    "data_missing_column": data_case("  path: d.csv", "d.csv", "sentence,label\na,b\n",
                                     r"d\.csv: no column 'text'; columns are: sentence, label\. Set data\.text_column"),
    "data_wrong_delimiter": data_case("  path: d.csv", "d.csv", "text;label\na;x\n",
                                      r"d\.csv: no column 'text'.*The header looks ';'-separated: set data\.delimiter"),
    "data_duplicate_header": data_case("  path: d.csv", "d.csv", "text,text,label\na,b,x\n",
                                       r"d\.csv: the header names column 'text' 2 times \(columns 1, 2\), and "
                                       r"data\.text_column reads it; rename all but one"),
    "data_every_text_conflicts": data_case("  path: d.csv", "d.csv", "text,label\n" + "same,x\nsame,y\n" * 20,
                                           r"cannot split the data .* Only 0 of 40 rows are left after deduplication "
                                           r"removed 0 repeats and 40 rows whose text also has another label: check"),
    "data_ragged_row": data_case("  path: d.csv", "d.csv", "text,label\na,b,c\n",
                                 r"d\.csv line 2: 3 cells but the header has 2"),
    "data_empty_text": data_case(TRAIN, "d.csv", "text,label\na,x\n,y\n", r"d\.csv line 3: empty text"),
    "data_empty_label": data_case(TRAIN, "d.csv", "text,label\na,x\nb,\n", r"d\.csv line 3: empty label"),
    "data_one_label": data_case(TRAIN, "d.csv", "text,label\na,x\nb,x\n", r"the training data has only one label"),
    "data_unknown_label": data_case(f"  path: d.txt\n  {LABELS}", "d.txt", SENTENCES + "Odd .@bogus\n",
                                    r"data\.labels: d\.txt line 10: label 'bogus' is not in data\.labels "
                                    r"\(negative, neutral, positive\); add it there or fix the row"),
    "data_label_case_differs": data_case(f"  path: d.csv\n  {LABELS}", "d.csv", "text,label\nProfit rose,Positive\n",
                                         r"label 'Positive' is not in data\.labels .*; it differs from 'positive' "
                                         r"only in letter case"),
    "data_label_ids_unnamed": data_case(f"  path: d.csv\n  {LABELS}", "d.csv", "text,label\nProfit rose,2\n",
                                        r"d\.csv line 2: label '2' is not in data\.labels .*name them with "
                                        r"data\.label_names, e\.g\. \{0: negative, 1: neutral, 2: positive\}"),
    "data_rare_label": data_case("  path: d.txt", "d.txt", SAMPLE.read_bytes() + b"Odd .@bogus\n",
                                 r"label 'bogus' has only 1 example\(s\) \(first at d\.txt line 303\); a "
                                 r"stratified split needs at least 3"),
    "data_phrasebank_no_at": data_case("  path: d.txt", "d.txt", "Profit rose .@positive\nno label here\n",
                                       r"d\.txt line 2: expected 'sentence@label', found no '@'"),
    "data_unknown_suffix": data_case("  path: d.dat", "d.dat", "x", r"d\.dat: cannot tell the format from the "
                                                                    r"suffix '\.dat'; set data\.format"),
    "data_damaged_gzip": data_case("  path: d.csv.gz", "d.csv.gz", b"\x1f\x8b\x08\x00broken",
                                   r"d\.csv\.gz: a damaged or truncated gzip file"),
    "data_jsonl_malformed_line": data_case("  path: d.jsonl", "d.jsonl", '{"text": "a", "label": "x"}\n{"text": \n',
                                           r"d\.jsonl line 2: not valid JSON"),
    "data_jsonl_not_object": data_case("  path: d.jsonl", "d.jsonl", '["a", "x"]\n',
                                       r"d\.jsonl line 1: expected a JSON object, got list"),
    "data_jsonl_missing_key": data_case("  path: d.jsonl", "d.jsonl", '{"txt": "a", "label": "x"}\n',
                                        r"d\.jsonl line 1: no column 'text'"),
    "data_jsonl_lone_surrogate": data_case("  path: d.jsonl", "d.jsonl", '{"text": "caf\\udce9", "label": "x"}\n',
                                           r"d\.jsonl line 1: 'caf\\udce9' is not valid UTF-8 text"),
    "data_unknown_code": data_case("  path: d.csv\n  text_template: '{text} ({sex})'\n  columns: {sex: {values: "
                                   "{1: female, 2: male}}}", "d.csv", "text,sex,label\na,3,x\n",
                                   r"d\.csv line 2: column 'sex': code '3' is not in data\.columns\.sex\.values"),
    "data_not_a_number": data_case("  path: d.csv\n  text_template: '{text} {hr}'\n  columns: {hr: {number: true}}",
                                   "d.csv", "text,hr,label\na,fast,x\n",
                                   r"d\.csv line 2: column 'hr': 'fast' is not a number"),
    "data_missing_leak_column": data_case("  path: d.csv\n  leak_columns: [nurse]", "d.csv", CSV_OK,
                                          r"d\.csv: no column 'nurse'.*Set data\.leak_columns"),
    "data_bom_phrasebank": data_case("  path: d.txt", "d.txt", b"\xef\xbb\xbf" + SAMPLE.read_bytes(),
                                     r"ok: base .*labels negative, neutral, positive", code=0),
    "data_bom_csv_utf8": data_case(TRAIN + "\n  encoding: utf-8", "d.csv", b"\xef\xbb\xbf" + CSV_OK.encode(),
                                   r"ok: base .*labels negative, neutral, positive", code=0),
    # --- data: multilabel -----------------------------------------------------------------------
    "classification_list_label": data_case(TRAIN.replace("csv", "jsonl"), "d.jsonl",
                                           '{"text": "a", "label": "x"}\n{"text": "b", "label": ["x", "y"]}\n',
                                           r"d\.jsonl line 2: label holds a list .*set task: multilabel"),
    "label_delimiter_on_classification": data_case(TRAIN + "\n  label_delimiter: '|'", "d.csv", CSV_OK,
                                                   r"data\.label_delimiter: applies to task: multilabel only"),
    "multilabel_bad_label_cell": data_case(TRAIN + "\n  label_columns: [x, y]", "d.csv", "text,x,y\na,1,0\nb,0,2\n",
                                           r"d\.csv line 3: column 'y' \(data\.label_columns\) holds '2'",
                                           task="multilabel"),
    "multilabel_label_not_in_train": validate("name: bad\ntask: multilabel\ndata: {train: t.jsonl, validation: "
                                              "d.jsonl}\n", files={"t.jsonl": '{"text": "a", "label": ["x", "y"]}\n',
                                                                   "d.jsonl": '{"text": "c", "label": ["z"]}\n'},
                                              message=r"d\.jsonl line 1: label 'z' never occurs in the training data"),
    "multilabel_both_threshold_rules": validate("name: bad\ntask: multilabel\ndata: {path: d.csv}\n"
                                                "decision: {threshold: 0.5, thresholds: per_label}\n",
                                                message=r"decision\.thresholds: set either it"),
    "multilabel_phrasebank": data_case("  path: d.txt", "d.txt", SENTENCES,
                                       r"d\.txt: read as data\.format phrasebank .*task: multilabel reads csv",
                                       task="multilabel"),
    "keep_on_classification": validate("data: {path: d.csv, format: wide_lists, wide: {multi_category: keep}}\n",
                                       message=r"data\.wide\.multi_category: keep .*applies to task: multilabel"),
    # --- data: NER and generation -------------------------------------------------------------
    "ner_missing_tag": data_case(NER, "d.tsv", "Patients\tO\nwith\n", r"d\.tsv line 2: expected a token and a tag",
                                 task="ner"),
    "ner_inside_opens_entity": data_case(NER, "d.tsv", "Patients\tO\nfibrosis\tI-Disease\n",
                                         r"d\.tsv line 2: 'I-Disease' follows 'O'.*data\.scheme: iob1.*"
                                         r"data\.repair_tags: true", task="ner"),
    "ner_bad_tag": data_case(NER, "d.tsv", "Patients\tO\nfibrosis\tX-Disease\n",
                             r"d\.tsv line 2: tag 'X-Disease' is not O or PREFIX-TYPE", task="ner"),
    "ner_bioes_tag_as_iob2": data_case(NER, "d.tsv", "Patients\tO\nfibrosis\tS-Disease\n",
                                       r"d\.tsv line 2: tag 'S-Disease' belongs to BIOES/BILOU", task="ner"),
    "ner_ragged_columns": data_case(NER, "d.tsv", "Patients\tNN\tO\nwith\tO\n",
                                    r"d\.tsv line 2: 2 columns, but the file's first token line has 3", task="ner"),
    "ner_empty_file": data_case(NER, "d.tsv", "\n", r"d\.tsv: no sentences found", task="ner"),
    "ner_tag_not_declared": data_case(NER + "\n  labels: [B-Gene, I-Gene]", "d.tsv", NER_OK * 10,
                                      r"d\.tsv line 3: tag 'B-Disease' is not in data\.labels", task="ner"),
    "ner_directory_without_train": data_case("  path: corpus", "corpus/devel.tsv", NER_OK,
                                             r"data\.path: corpus holds no train file", task="ner"),
    "ner_jsonl_lengths": data_case("  path: d.jsonl", "d.jsonl", '{"tokens": ["a", "b"], "tags": ["O"]}\n',
                                   r"d\.jsonl line 1: 'tokens' and 'tags' must be lists of the same length",
                                   task="ner"),
    "ner_jsonl_integer_tags": data_case("  path: d.jsonl", "d.jsonl", '{"tokens": ["a"], "tags": [0]}\n',
                                        r"d\.jsonl line 1: tags must be strings", task="ner"),
    "ner_jsonl_not_object": data_case("  path: d.jsonl", "d.jsonl", '["a", "O"]\n',
                                      r"d\.jsonl line 1: expected a JSON object .*got list", task="ner"),
    "generation_missing_response": data_case("  path: d.jsonl", "d.jsonl", '{"prompt": "Explain ."}\n',
                                             r"d\.jsonl line 1: no 'response' field \(data\.response_column\)",
                                             task="generation"),
    "generation_empty_file": data_case("  path: d.jsonl", "d.jsonl", "\n",
                                       r"d\.jsonl: holds no examples \(read as data\.format jsonl", task="generation"),
    "generation_path_is_directory": data_case("  path: adir", "adir/d.jsonl", '{"prompt": "a", "response": "b"}\n',
                                              r"adir: a directory, not a data file", task="generation"),
    "generation_csv": data_case("  path: d.csv", "d.csv", CSV_OK, r"d\.csv: task: generation reads JSONL",
                                task="generation"),
    # --- data: regression -----------------------------------------------------------------------
    "regression_target_not_a_number": data_case("  path: d.csv", "d.csv", "text,label\na,1\nb,high\n",
                                                r"d\.csv line 3: column 'label': 'high' is not a number; if it "
                                                r"marks a missing value, list it in data\.missing_values",
                                                task="regression"),
    "regression_empty_target": data_case("  path: d.csv", "d.csv", "text,label\na,1\nb,\n",
                                         r"d\.csv line 3: column 'label': empty target; fill it in, remove the "
                                         r"row, or list '' in data\.missing_values", task="regression"),
    "regression_missing_target_column": data_case("  path: d.jsonl\n  target_columns: [valence, arousal]", "d.jsonl",
                                                  '{"text": "a", "valence": 1}\n',
                                                  r"d\.jsonl line 1: no column 'arousal'.*Set data\.target_columns",
                                                  task="regression"),
    "regression_constant_target": data_case(TRAIN, "d.csv", "text,label\na,1\nb,1\nc,1\n",
                                            r"target 'label' has the same value \(1\) in every training example",
                                            task="regression"),
    "regression_phrasebank": data_case("  path: <sample>", None, None,
                                       r"task: regression reads csv, tsv, jsonl, parquet, hf_dataset .*not "
                                       r"phrasebank", task="regression"),
    "regression_class_weights": validate("name: bad\ntask: regression\ndata: {path: d.csv}\ntrain: {class_weights: "
                                         "balanced}\n", message=r"train\.class_weights: does not apply to task: "
                                                                r"regression \(class weights weigh classes"),
    "regression_decision": validate("name: bad\ntask: regression\ndata: {path: d.csv}\ndecision: "
                                    "{max_under_rate: 0.1}\n", message=r"decision: does not apply to task: regression"),
    "regression_huber_delta_with_mse": validate("name: bad\ntask: regression\ndata: {path: d.csv}\ntrain: "
                                                "{huber_delta: 2}\n",
                                                message=r"train\.huber_delta: applies to train\.loss: huber only"),
    "regression_field_on_classification": validate(PHRASEBANK.replace("}", ", target_columns: [a]}"),
                                                   message=r"data\.target_columns: applies to task: regression only"),
    "regression_run_bad_target_writes_nothing": Case(["run", "r.yaml"], r"d\.jsonl line 2: column 'label': "
                                                                        r"'n/a' is not a number",
                                                     {"r.yaml": "name: bad\ntask: regression\ndata: {path: d.jsonl}\n",
                                                      "d.jsonl": '{"text": "a", "label": 0.5}\n'
                                                                 '{"text": "b", "label": "n/a"}\n'}),
    "data_json_array_malformed": data_case("  path: d.json", "d.json",
                                           '[\n {"text": "a", "label": "x"},\n {"text": }\n]',
                                           r"d\.json line 3: not valid JSON"),
    "data_json_single_object": data_case("  path: d.json", "d.json", '{\n "1": {"text": "a", "label": "x"}\n}\n',
                                         r"d\.json: one JSON object holding the whole file, not JSON Lines .*flatten"),
    # --- predict --------------------------------------------------------------------------------
    "predict_not_a_run": Case(["predict", "<tmp>", "x"], r"not a domainft run or model directory"),
    "predict_nothing": Case(["predict", "<run>"], r"predict: give texts as arguments or --input"),
    "predict_weights_deleted": Case(["predict", "copy", "x"], r"copy/model: the run's model is incomplete: "
                                                              r"model\.safetensors is missing; re-run",
                                    setup=copy_model("copy", lambda m: (m / "model.safetensors").unlink())),
    "predict_config_deleted": Case(["predict", "copy", "x"], r"the run's model is incomplete: config\.json is missing",
                                   setup=copy_model("copy", lambda m: (m / "config.json").unlink())),
    "predict_weights_damaged": Case(["predict", "copy", "x"], r"copy/model: the run's model could not be loaded, a "
                                                              r"file is damaged \(SafetensorError",
                                    setup=copy_model("copy", lambda m: (m / "model.safetensors").write_bytes(b"x"))),
    "predict_manifest_not_json": Case(["predict", "copy", "x"], r"copy/model/domainft\.json: unreadable",
                                      setup=copy_model("copy", lambda m: (m / "domainft.json").write_text("{"))),
    "predict_plugin_task_not_loaded": Case(["predict", "copy", "x"],
                                           r"domainft\.json: unknown task 'mine'.*needs --code",
                                           setup=copy_model("copy", set_manifest(task="mine"))),
    "predict_damaged_bundle": Case(["predict", "bundle", "x"], r"predict: the bundle in bundle could not be loaded",
                                   {"bundle/model.onnx": b"not onnx", "bundle/domainft.json": '{"task": "x"}'}),
    "predict_input_missing": Case(["predict", "<run>", "--input", "nope.jsonl"],
                                  r"--input: nope\.jsonl does not exist"),
    "predict_input_directory": Case(["predict", "<run>", "--input", "adir"], r"--input: adir is a directory",
                                    {"adir/x.jsonl": '"a"\n'}),
    "predict_input_malformed": Case(["predict", "<run>", "--input", "in.jsonl"], r"in\.jsonl line 2: not valid JSON",
                                    {"in.jsonl": '"fine"\n{"text": oops}\n'}),
    "predict_input_plain_text_as_jsonl": Case(["predict", "<run>", "--input", "in.jsonl"],
                                              r"in\.jsonl line 1: not valid JSON .*name ends in \.txt",
                                              {"in.jsonl": "Profit rose\n"}),
    "predict_input_gzip_damaged": Case(["predict", "<run>", "--input", "in.txt.gz"],
                                       r"--input: in\.txt\.gz is not a complete gzip file",
                                       {"in.txt.gz": b"\x1f\x8b\x08\x00 cut short"}),
    "predict_input_wrong_key": Case(["predict", "<run>", "--input", "in.jsonl"],
                                    r'in\.jsonl line 1: expected a JSON string, \{"text": \.\.\.\} or a list of words',
                                    {"in.jsonl": '{"sentence": "a"}\n'}),
    "predict_input_list_of_numbers": Case(["predict", "<run>", "--input", "in.jsonl"], r"in\.jsonl line 1: expected",
                                          {"in.jsonl": "[1, 2]\n"}),
    "predict_input_not_utf8": Case(["predict", "<run>", "--input", "in.jsonl"],
                                   r"in\.jsonl line 2: bytes b'\\xe9' are not valid UTF-8",
                                   {"in.jsonl": b'"ok"\n"caf\xe9"\n'}),
    "predict_input_lone_surrogate": Case(["predict", "<run>", "--input", "in.jsonl"],
                                         r"in\.jsonl line 1: 'caf\\udce9' is not valid UTF-8 text",
                                         {"in.jsonl": '"caf\\udce9"\n'}),
    "predict_input_empty": Case(["predict", "<run>", "--input", "in.jsonl"], r"--input: in\.jsonl holds no lines",
                                {"in.jsonl": "\n"}),
    "predict_surrogate_pair_is_fine": Case(["predict", "<run>", "--input", "in.jsonl"], r'"label": ',
                                           {"in.jsonl": '"Profit rose \\ud83d\\ude00"\n'}, code=0),
    "generate_on_a_classifier": Case(["generate", "<run>", "x"], r"generate: this is a classification model; use "
                                                                 r"predict"),
    # --- export ---------------------------------------------------------------------------------
    "export_not_a_run": Case(["export", "<tmp>"], r"not a domainft run or model directory"),
    "export_generation_run": Case(["export", "gen"], r"export: gen is a generation run; .*domainft merge gen",
                                  {"gen/model/domainft.json": '{"task": "generation"}',
                                   "gen/recipe.yaml": "name: gen\ntask: generation\ndata: {path: x.jsonl}\n"}),
    "export_without_recipe": Case(["export", "copy"], r"export: copy has no recipe\.yaml",
                                  setup=copy_model("copy", lambda m: (m.parent / "recipe.yaml").unlink())),
    "export_bad_quantization": Case(["export", "<run>", "--quantization", "nonsense"], r"export\.quantization: "
                                                                                       r".*'nonsense'"),
    "export_negative_int8_drop": Case(["export", "<run>", "--max-int8-drop", "-1"],
                                      r"export\.max_int8_drop: Input should be greater than or equal to 0"),
    "export_opset_out_of_range": Case(["export", "<run>", "--opset", "99"],
                                      r"export\.opset: Input should be less than or equal to 20"),
    "export_bad_int8_mode": Case(["export", "<run>", "--int8-mode", "fast"], r"export\.int8_mode: .*'fast'"),
    "export_no_calibration": Case(["export", "<run>", "--calibration-examples", "0"],
                                  r"export\.calibration_examples: Input should be greater than or equal to"),
    "export_out_is_a_file": Case(["export", "<run>", "--out", "<tmp>/taken"], r"export --out: .*taken is a file",
                                 {"taken": "mine"}),
    "export_out_below_a_file": Case(["export", "<run>", "--out", "<tmp>/taken/sub"],
                                    r"export --out: .*taken is a file", {"taken": "mine"}),
    "export_out_holds_other_files": Case(["export", "<run>", "--out", "<tmp>/keep"],
                                         r"export --out: .*keep holds files that are not an earlier bundle",
                                         {"keep/data.csv": "a,b\n"}),
    "export_out_is_the_run": Case(["export", "<run>", "--out", "<run>"], r"export --out: .* is \(or holds\) the run"),
}


def snapshot(*roots: Path) -> dict:
    """Path -> (size, mtime) of everything under `roots` (Python's own __pycache__ of a --code file
    left out: the interpreter writes it for any import)."""
    return {p: (p.is_dir(), 0 if p.is_dir() else p.stat().st_size, p.stat().st_mtime_ns)
            for root in roots for p in [root, *root.rglob("*")] if "__pycache__" not in p.parts}


def invoke(case: Case, args: list, cwd: Path) -> tuple[int, str]:
    if case.subprocess:
        done = subprocess.run([sys.executable, "-m", "domainft", *args], cwd=cwd, capture_output=True, timeout=120)
        return done.returncode, (done.stdout + done.stderr).decode("utf-8", "backslashreplace")
    result = runner.invoke(app, args)
    # An exception that escaped the command is a traceback for a user, whatever the runner prints.
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, result.output


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, trained_run, tmp_path, monkeypatch):
    case = CASES[name]
    for rel, content in case.files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(fill(content, tmp_path, trained_run), encoding="utf-8")
    if case.setup:
        case.setup(tmp_path, trained_run)
    monkeypatch.chdir(tmp_path)  # a default runs/<name> would land here, inside the snapshot
    before = snapshot(tmp_path, trained_run)

    code, output = invoke(case, [fill(a, tmp_path, trained_run) for a in case.args], tmp_path)

    assert code == case.code, output
    assert re.search(case.message, output), f"{case.message!r} not in:\n{output}"
    assert "Traceback" not in output
    assert snapshot(tmp_path, trained_run) == before, "the command changed the file system"


def test_matrix_is_large_enough():
    assert len(CASES) >= 60


def test_a_bom_never_reaches_the_text(tmp_path):
    """The phrasebank reader's latin-1 default and an explicit utf-8 both drop a UTF-8 BOM (and the
    rest of a BOM-marked file reads as UTF-8)."""
    from domainft.data.readers import TextFields, read_examples

    f = tmp_path / "d.txt"
    f.write_bytes(b"\xef\xbb\xbfCaf\xc3\xa9 profit rose .@positive\n")
    for encoding in (None, "latin-1", "utf-8", "cp1252"):
        assert read_examples(f, "phrasebank", TextFields(), encoding)[0].text == "Café profit rose ."
    g = tmp_path / "d.csv"
    g.write_bytes(b"\xef\xbb\xbftext,label\na,x\n")
    assert read_examples(g, "csv", TextFields(), "utf-8")[0].text == "a"


def test_null_override_resets_while_empty_is_refused():
    from domainft.errors import RecipeError
    from domainft.recipe import parse_overrides

    assert parse_overrides(["train.lr=null", "train.lr=~"]) == {"train.lr": None}
    for empty in ("train.lr=", "train.lr=  "):
        with pytest.raises(RecipeError, match="empty value"):
            parse_overrides([empty])
