"""Legal clause review: wide excerpt-list tables (CUAD layout), group splits, micro-F1."""
import csv
import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest

from domainft import run
from domainft.data import prepare_examples
from domainft.data.splits import group_split, shared_groups
from domainft.errors import DataError, RecipeError
from domainft.recipe import DataSpec, Recipe
from domainft.tasks import get_task

from conftest import ROOT

RECIPE = ROOT / "recipes" / "legal_clause_review.yaml"
SAMPLE = ROOT / "data" / "legal_clause_sample.csv.gz"
HEADER = ["Filename", "Parties", "Parties-Answer", "Governing Law", "Governing Law-Answer",
          "License Grant", "License Grant-Answer", "Non-Transferable License"]


def wide_file(path: Path, rows: list[list[str]], header=HEADER, gz: bool = False) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([header, *rows])
    data = buffer.getvalue().encode("utf-8")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def rows() -> list[list[str]]:
    shared = "A grants B a non-transferable license to the Software."
    return [
        ["c1.pdf", "['Acme', 'Beta']", "Acme; Beta", "['Governed by the laws of Delaware.']", "Delaware",
         repr(["A grants B a license, to use the Marks.", shared]), "Yes", repr([shared])],
        ["c2.pdf", "[]", "", "['This Agreement is governed by New York law.', 'Venue: New York courts.']",
         "New York", "", "No", "['B may not sublicense the Software.']"],
    ]


def spec(path: Path, **wide) -> DataSpec:
    return DataSpec(path=path, format="wide_lists", dedup=False,
                    wide={"exclude": ["Parties"], **wide}, split={"group_column": "Filename"})


def read(path: Path, **wide):
    from domainft.data.prepare import read_file
    from domainft.data.readers import TextFields

    report: dict = {}
    s = spec(path, **wide)
    return read_file(path, s, TextFields.of(s), report), report["multi_category"][str(path)]


def test_reader_parses_list_cells_and_skips_answers_and_excluded(tmp_path):
    examples, counts = read(wide_file(tmp_path / "m.csv", rows()))
    got = [(e.group, e.label, e.text, e.line) for e in examples]
    assert got == [
        ("c1.pdf", "Governing Law", "Governed by the laws of Delaware.", 2),
        ("c1.pdf", "License Grant", "A grants B a license, to use the Marks.", 2),
        ("c2.pdf", "Governing Law", "This Agreement is governed by New York law.", 3),
        ("c2.pdf", "Governing Law", "Venue: New York courts.", 3),
        ("c2.pdf", "Non-Transferable License", "B may not sublicense the Software.", 3),
    ]  # no -Answer or Parties text; empty cell and [] hold no excerpts; the shared excerpt dropped
    assert counts["excerpts"] == 1 and counts["rows_removed"] == 2 and counts["rows_read"] == 7
    assert counts["category_pairs"] == {"License Grant + Non-Transferable License": 1}


def test_multi_category_first_keeps_leftmost_column(tmp_path):
    examples, counts = read(wide_file(tmp_path / "m.csv", rows()), multi_category="first")
    shared = [e.label for e in examples if e.text.startswith("A grants B a non-transferable")]
    assert shared == ["License Grant"] and counts == {**counts, "policy": "first", "rows_removed": 1}


def test_gzip_reads_directly_and_auto_detects_csv(tmp_path):
    f = wide_file(tmp_path / "m.csv.gz", rows(), gz=True)
    assert len(read(f)[0]) == 5
    plain = tmp_path / "t.csv.gz"
    plain.write_bytes(gzip.compress(b"text,label\na,x\nb,y\n"))
    assert [e.text for e in prepare_examples(DataSpec(train=plain, validation=plain)).train] in (["a", "b"], ["b", "a"])
    broken = tmp_path / "b.csv.gz"
    broken.write_bytes(gzip.compress(b"text,label\na,x\n")[:20])
    with pytest.raises(DataError, match=r"b.csv.gz: a damaged or truncated gzip file"):
        prepare_examples(DataSpec(train=broken, validation=broken))


def test_bad_layout_names_file_line_and_column(tmp_path):
    bad = rows()
    bad[1][3] = "Delaware"  # a plain value where a list of excerpts belongs
    with pytest.raises(DataError, match=r"m.csv line 3: column 'Governing Law' holds 'Delaware', not a list "
                                        r"of excerpts.*data.wide.exclude"):
        read(wide_file(tmp_path / "m.csv", bad))
    f = wide_file(tmp_path / "n.csv", rows())
    with pytest.raises(DataError, match=r"n.csv: no column 'Partys' \(named in data.wide.exclude\)"):
        read(f, exclude=["Partys"])
    with pytest.raises(DataError, match=r"n.csv: no column 'Contract' \(named in data.split.group_column\)"):
        prepare_examples(DataSpec(path=f, format="wide_lists", split={"group_column": "Contract"}))
    with pytest.raises(DataError, match=r"n.csv line 2: column 'Filename' holds 'c1.pdf'.*group_column"):
        prepare_examples(DataSpec(path=f, format="wide_lists"))  # the id column read as a category
    flat = wide_file(tmp_path / "flat.csv", [["c1", "x"]], header=["Filename", "text"])
    with pytest.raises(DataError, match=r"flat.csv: 0 category column\(s\) left"):
        read(flat, exclude=["text"])


def test_recipe_checks_wide_options():
    with pytest.raises(RecipeError, match=r"data: .*`wide` options apply to format: wide_lists only"):
        Recipe.from_dict({"data": {"path": "x.csv", "wide": {"exclude": ["a"]}}})
    with pytest.raises(RecipeError, match=r"data.wide.multi_category"):
        Recipe.from_dict({"data": {"path": "x.csv", "format": "wide_lists", "wide": {"multi_category": "all"}}})
    with pytest.raises(RecipeError, match=r"data.split.group_column: applies to tasks classification / multilabel"):
        Recipe.from_dict({"task": "ner", "data": {"path": "x", "split": {"group_column": "doc"}}})
    ok = Recipe.from_yaml(RECIPE)
    assert Recipe.from_dict(ok.to_dict()).data.wide == ok.data.wide  # resolved recipe.yaml reloads


@pytest.mark.parametrize("seed,stratify", [(13, True), (1, True), (13, False)])
def test_group_split_never_shares_a_contract(seed, stratify):
    s = Recipe.from_yaml(RECIPE).data
    examples = prepare_examples(s).train  # any grouped examples will do; re-split them
    train, val, test = group_split(examples, 0.2, 0.2, seed, stratify)
    assert not shared_groups(train, val, test)
    assert len(train) + len(val) + len(test) == len(examples) and val and test
    assert {e.group for e in train}.isdisjoint({e.group for e in test} | {e.group for e in val})


def test_sample_recipe_data_report():
    bundle = get_task("classification").load_data(Recipe.from_yaml(RECIPE).data)
    report = bundle.report
    assert report["groups"]["shared_between_splits"] == 0 and report["groups"]["column"] == "Filename"
    multi = report["multi_category"][str(Path("data/legal_clause_sample.csv.gz"))]
    assert multi["policy"] == "drop" and multi["excerpts"] > 0
    assert "Parties" not in bundle.labels and len(bundle.labels) == 15


def test_group_split_needs_groups(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("text,label,doc\na,x,1\nb,y,1\nc,x,\n")
    with pytest.raises(DataError, match=r"d.csv line 4: empty data.split.group_column cell"):
        prepare_examples(DataSpec(path=f, split={"group_column": "doc", "stratify": False}))


def test_micro_f1_reported():
    task = get_task("classification")
    logits = np.array([[2.0, 0, 0], [0, 2.0, 0], [0, 2.0, 0], [0, 0, 2.0]])
    out = task.report(logits, np.array([0, 1, 2, 2]), ["a", "b", "c"])
    assert out["micro_f1"] == pytest.approx(0.75) == out["accuracy"]
    assert out["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)


def test_legal_recipe_runs_and_stops_on_micro_f1(tiny_base, tmp_path, monkeypatch):
    """The recipe as shipped: task-adaptive pretraining on its training clauses, then fine-tuning."""
    monkeypatch.chdir(ROOT)  # the recipe's data path is relative to the repository
    monkeypatch.setenv("DOMAINFT_CACHE", str(tmp_path / "cache"))  # the adapted base, not the user's cache
    recipe = Recipe.from_yaml(RECIPE, {"base": str(tiny_base), "data.max_length": 64, "train.epochs": 1,
                                       "train.early_stopping.metric": "micro_f1",
                                       "output.dir": str(tmp_path / "run")})
    run(recipe, progress=False, echo=lambda *a: None)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["train"]["best_metric_name"] == "micro_f1"
    assert {"accuracy", "macro_f1", "micro_f1", "weighted_f1", "per_class"} <= set(metrics["test"])
    assert metrics["data"]["groups"]["shared_between_splits"] == 0
    assert metrics["data"]["truncated"]["train"] > 0  # the long clauses, cut at 64 tokens
    adapt = metrics["adapt"]
    assert adapt["texts"]["task_texts"] > 0 and adapt["texts"]["corpus_texts"] == 0
    assert adapt["perplexity"]["after"] < adapt["perplexity"]["before"]
