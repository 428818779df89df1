"""task: multilabel: label sets from lists / delimited cells / 0-1 columns, dedup and splits, metrics,
thresholds chosen on validation and stored, and predictions that agree across PyTorch, a reload,
the ONNX bundle and the CLI."""
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from domainft import load, run
from domainft.cli import app
from domainft.data.multilabel import NO_LABELS, POOLED, strata
from domainft.data.readers import Example, label_key
from domainft.errors import DataError, RecipeError
from domainft.export import export_run
from domainft.recipe import Recipe
from domainft.serving import load as load_bundle
from domainft.tasks import get_task

from cards import card, report_files, run_snippet, snippets
from conftest import ROOT

SAMPLE = ROOT / "data" / "clause_tags_sample.jsonl"
RECIPE = ROOT / "recipes" / "legal_clause_review_multilabel.yaml"
TEXTS = ["Under section 4.2 , the Supplier shall pay each invoice within 30 days .",
         "Under section 9.1 , the term ends after 12 months and no party may disclose the terms .",
         "Under section 1.1 , headings are for convenience only ."]
TASK = get_task("multilabel")


def load_data(tmp_path: Path, name: str, content: str, **data):
    f = tmp_path / name
    f.write_text(content, encoding="utf-8")
    spec = Recipe.from_dict({"task": "multilabel", "data": {"train": str(f), "validation": str(f), **data}}).data
    return TASK.load_data(spec)


# --- reading label sets ----------------------------------------------------------------------

def test_json_lists_with_the_empty_set(tmp_path):
    data = load_data(tmp_path, "d.jsonl", '{"text": "a", "label": ["x", "y"]}\n{"text": "b", "label": []}\n'
                                          '{"text": "c", "label": ["y", "y"]}\n{"text": "d", "label": null}\n')
    assert [(e.text, e.labels) for e in data.train] == [("a", ("x", "y")), ("b", ()), ("c", ("y",)), ("d", ())]
    assert data.labels == ["x", "y"] and data.report["empty_label_sets"]["train"] == 2
    assert data.report["train_label_counts"] == {"x": 1, "y": 2}


def test_delimited_cells_are_split_and_stripped(tmp_path):
    data = load_data(tmp_path, "d.csv", "text,label\na, x | y \nb,\nc,y||\n", label_delimiter="|")
    assert [e.labels for e in data.train] == [("x", "y"), (), ("y",)]


def test_label_columns_read_0_1_and_true_false(tmp_path):
    data = load_data(tmp_path, "d.csv", "text,x,y,z\na,1,0,true\nb,0,0,FALSE\nc,0,1,0\n",
                     label_columns=["x", "y", "z"])
    assert [e.labels for e in data.train] == [("x", "z"), (), ("y",)] and data.labels == ["x", "y", "z"]


def test_a_label_column_cell_that_is_not_0_1_names_file_line_and_column(tmp_path):
    with pytest.raises(DataError, match=r"d\.csv line 3: column 'y' \(data\.label_columns\) holds 'maybe'; "
                                        r"a label column holds 0/1 or true/false"):
        load_data(tmp_path, "d.csv", "text,x,y\na,1,0\nb,0,maybe\n", label_columns=["x", "y"])
    with pytest.raises(DataError, match=r"d\.csv: no column 'y'; .*Set data\.label_columns"):
        load_data(tmp_path, "d.csv", "text,x\na,1\n", label_columns=["x", "y"])


def test_a_list_label_on_classification_points_to_multilabel(tmp_path):
    f = tmp_path / "d.jsonl"
    f.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": ["x", "y"]}\n')
    spec = Recipe.from_dict({"data": {"train": str(f), "validation": str(f)}}).data
    with pytest.raises(DataError, match=r"d\.jsonl line 2: label holds a list .*task: classification takes one "
                                        r"label per example\. For several labels per example set task: multilabel"):
        get_task("classification").load_data(spec)


def test_labels_absent_from_train_are_errors(tmp_path):
    train, val = tmp_path / "t.jsonl", tmp_path / "v.jsonl"
    train.write_text('{"text": "a", "label": ["x"]}\n{"text": "b", "label": ["y"]}\n')
    val.write_text('{"text": "c", "label": ["x", "z"]}\n')
    spec = Recipe.from_dict({"task": "multilabel", "data": {"train": str(train), "validation": str(val)}}).data
    with pytest.raises(DataError, match=r"v\.jsonl line 1: label 'z' never occurs in the training data"):
        TASK.load_data(spec)
    declared = spec.model_copy(update={"labels": ["x", "y", "w"], "validation": train})
    with pytest.raises(DataError, match=r"data\.labels: 'w' never occur in the training data"):
        TASK.load_data(declared)
    with pytest.raises(DataError, match=r"data\.labels: \S*v\.jsonl line 1: label 'z' is not in data\.labels"):
        TASK.load_data(spec.model_copy(update={"labels": ["x", "y"]}))


def test_duplicates_and_conflicting_label_sets(tmp_path):
    rows = ['{"text": "a", "label": ["x", "y"]}', '{"text": "a", "label": ["y", "x"]}',  # same set: duplicate
            '{"text": "b", "label": ["x"]}', '{"text": "b", "label": ["x", "y"]}',  # different sets: conflict
            *(f'{{"text": "t{i}", "label": ["{"xy"[i % 2]}"]}}' for i in range(30))]
    f = tmp_path / "d.jsonl"
    f.write_text("\n".join(rows) + "\n")
    data = TASK.load_data(Recipe.from_dict({"task": "multilabel", "data": {"path": str(f)}}).data)
    r = data.report
    assert (r["duplicates_removed"], r["conflicting_texts_removed"], r["conflicting_rows_removed"]) == (1, 1, 2)
    texts = [e.text for e in data.train + data.validation + data.test]
    assert texts.count("a") == 1 and "b" not in texts
    assert label_key(("y", "x")) == label_key(("x", "y"))


def test_strata_are_the_rarest_label_with_small_ones_pooled():
    ex = [Example("t", "", "f", i, labels=labels) for i, labels in enumerate(
        [("a", "b")] * 4 + [("a",)] * 6 + [()] * 3 + [("a", "c")] * 2)]
    # counts: a 12, b 4, c 2; the empty set its own stratum; 'c' (2 examples) pooled with nothing -> largest
    assert strata(ex) == ["b"] * 4 + ["a"] * 6 + [NO_LABELS] * 3 + ["a"] * 2
    assert POOLED in strata(ex + [Example("t", "", "f", 99, labels=("d",))] * 2)


def test_rare_combinations_split_and_keep_every_label_in_train(tmp_path):
    data = TASK.load_data(Recipe.from_dict({"task": "multilabel", "data": {"path": str(SAMPLE),
                                                                           "label_column": "labels"}}).data)
    assert sum(len(s) for s in data.splits().values()) == 240 and data.validation and data.test
    combos = {e.labels for e in data.train + data.validation + data.test}
    assert len(combos) > 20  # mostly rare combinations: stratifying on them would fail
    assert all(c in data.report["train_label_counts"] for e in data.validation for c in e.labels)


def test_wide_lists_keep_a_multi_category_excerpt_as_one_example_and_split_by_contract():
    data = TASK.load_data(Recipe.from_yaml(RECIPE).data)
    multi = data.report["multi_category"][str(Path("data/legal_clause_sample.csv.gz"))]
    assert multi["policy"] == "keep" and multi["excerpts"] > 0
    merged = [e for e in data.train + data.validation + data.test if len(e.labels) > 1]
    assert merged and all(len(set(e.labels)) == len(e.labels) for e in merged)
    assert len({e.text for e in merged}) == len(merged)  # one example per excerpt, never one per category
    assert data.report["groups"]["shared_between_splits"] == 0 and len(data.labels) == 15


@pytest.mark.parametrize("raw, message", [
    ({"data": {"path": "x.csv", "label_delimiter": "|"}}, r"data\.label_delimiter: applies to task: multilabel only"),
    ({"data": {"path": "x.csv", "label_columns": ["a", "b"]}}, r"data\.label_columns: applies to task: multilabel"),
    ({"data": {"path": "x.csv"}, "decision": {"threshold": 0.4}}, r"decision\.threshold: applies to task: multilabel"),
    ({"task": "multilabel", "data": {"path": "x.csv"}, "decision": {"escalate_threshold": 0.4}},
     r"decision\.escalate_threshold: applies to task: classification only"),
    ({"task": "multilabel", "data": {"path": "x.csv"}, "train": {"label_smoothing": 0.1}},
     r"train\.label_smoothing: applies to tasks classification / ner only"),
    ({"task": "multilabel", "data": {"path": "x.csv"}, "decision": {"threshold": 0.4, "thresholds": "global"}},
     r"decision\.thresholds: set either it .* or decision\.threshold \(fixed\), not both"),
    ({"task": "multilabel", "data": {"path": "x.csv"}, "decision": {"threshold": 1.5}},
     r"decision\.threshold: .*between 0 and 1"),
    ({"task": "multilabel", "data": {"path": "x.csv", "label_columns": ["a", "b"], "labels": ["a", "b"]}},
     r"data\.labels: with data\.label_columns the columns are the labels"),
    ({"task": "multilabel", "data": {"path": "x.csv", "label_columns": ["a", "b"], "label_delimiter": ","}},
     r"data\.label_delimiter: labels come from data\.label_columns .* not both"),
    ({"task": "multilabel", "data": {"path": "x.csv", "label_columns": ["a", "b"]},
      "decision": {"threshold": {"c": .3}}},
     r"decision\.threshold: 'c' not in data\.label_columns"),
    ({"task": "multilabel", "data": {"path": "x.csv", "format": "wide_lists", "wide": {"multi_category": "drop"}}},
     r"data\.wide\.multi_category: drop would give each excerpt one category"),
    ({"data": {"path": "x.csv", "format": "wide_lists", "wide": {"multi_category": "keep"}}},
     r"data\.wide\.multi_category: keep .* applies to task: multilabel"),
    ({"task": "multilabel", "data": {"path": "x.txt", "format": "phrasebank"}},
     r"data\.format: 'phrasebank' is not a format for task multilabel"),
    ({"task": "multilabel", "data": {"path": "x.csv", "text_template": "{text} {a}", "label_columns": ["a", "b"]}},
     r"data\.text_template: uses column 'a'"),
])
def test_recipe_checks(raw, message):
    with pytest.raises(RecipeError, match=message):
        Recipe.from_dict(raw)


# --- metrics and thresholds -------------------------------------------------------------------

def logit(p):
    p = np.asarray(p, dtype=np.float64)
    return np.log(p / (1 - p)).astype(np.float32)


def test_report_by_hand():
    probs = [[0.9, 0.2, 0.1], [0.7, 0.6, 0.1], [0.1, 0.1, 0.1], [0.2, 0.8, 0.6]]
    gold = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 0], [0, 1, 0]], dtype=np.float32)
    out = TASK.report(logit(probs), gold, ["a", "b", "c"])
    # predicted at 0.5: {a}, {a, b}, {}, {b, c}; tp 3, fp 2, fn 0
    assert out["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 2))
    assert out["macro_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    assert out["samples_f1"] == pytest.approx((1 + 2 / 3 + 1 + 2 / 3) / 4)  # empty vs empty counts 1
    assert out["subset_accuracy"] == pytest.approx(0.5)
    assert (out["empty_gold"], out["empty_predicted"], out["n"]) == (1, 1, 4)
    assert out["per_class"]["b"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1}
    high = TASK.report(logit(probs), gold, ["a", "b", "c"], thresholds=np.array([0.5, 0.7, 0.7]))
    assert high["subset_accuracy"] == 1.0


def recipe_with(**decision):
    return Recipe.from_dict({"task": "multilabel", "data": {"path": "x.csv"}, "decision": decision})


def test_thresholds_chosen_on_validation_global_and_per_label():
    probs = np.array([[0.35, 0.9], [0.3, 0.8], [0.1, 0.7], [0.05, 0.2]])
    gold = np.array([[1, 1], [1, 1], [0, 0], [0, 0]], dtype=np.float32)
    chosen, note = TASK.fit_decision(recipe_with(), logit(probs), gold, labels=["a", "b"])
    t = chosen.decision.threshold
    assert 0.1 < t <= 0.3 and "chosen on validation" in note  # a's positives sit below 0.5
    assert TASK.manifest_extras(chosen)["thresholds"] == {"rule": "global", "default": t, "values": {}}
    per, _ = TASK.fit_decision(recipe_with(thresholds="per_label"), logit(probs), gold, labels=["a", "b"])
    values = per.decision.threshold
    assert set(values) == {"a", "b"} and 0.1 < values["a"] <= 0.3 and 0.7 < values["b"] <= 0.8
    assert TASK.manifest_extras(per)["thresholds"]["rule"] == "per_label"
    fixed = recipe_with(threshold=0.6)
    assert TASK.fit_decision(fixed, logit(probs), gold, labels=["a", "b"]) == (fixed, None)
    assert TASK.manifest_extras(fixed)["thresholds"] == {"rule": "fixed", "default": 0.6, "values": {}}


def test_label_names_in_weights_and_thresholds_are_checked_against_the_data(tiny_base, tmp_path):
    recipe = Recipe.from_dict({"task": "multilabel", "base": str(tiny_base), "output": {"dir": str(tmp_path / "r")},
                               "data": {"path": str(SAMPLE), "label_column": "labels"},
                               "decision": {"threshold": {"paymnet": 0.3}}})
    with pytest.raises(RecipeError, match=r"decision\.threshold: 'paymnet' not among the labels of the data "
                                          r"\(confidentiality, liability, payment, termination\)"):
        run(recipe, progress=False, echo=lambda *a: None)
    assert not (tmp_path / "r").exists()


def test_balanced_class_weights_are_bce_pos_weights():
    import torch

    train = [Example("t", "", "f", i, labels=labels) for i, labels in enumerate([("a",), ("a", "b"), (), ()])]
    weights = TASK.class_weights(train, ["a", "b"], "balanced")
    assert weights == [1.0, 3.0]  # negatives / positives
    assert TASK.class_weights(train[:2], ["a", "b"], "balanced")[0] == 0.5  # on every text: not 0
    assert TASK.class_weights(train, ["a", "b"], {"b": 2}) == [1.0, 2.0] and TASK.loss_function(None) is None
    loss = TASK.loss_function(weights)({"logits": torch.zeros(1, 2)}, torch.tensor([[1.0, 1.0]]))
    expected = torch.nn.functional.binary_cross_entropy_with_logits(torch.zeros(1, 2), torch.ones(1, 2),
                                                                    pos_weight=torch.tensor(weights))
    assert float(loss) == pytest.approx(float(expected))


# --- a trained run ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tiny_base, tmp_path_factory):
    out = tmp_path_factory.mktemp("multilabel")
    recipe = Recipe.from_dict({
        "name": "ml", "task": "multilabel", "base": str(tiny_base),
        "data": {"path": str(SAMPLE), "label_column": "labels", "max_length": 48},
        "train": {"epochs": 3, "batch_size": 16, "lr": 2e-3, "seed": 7, "class_weights": "balanced"},
        "decision": {"thresholds": "per_label"}, "export": {"enabled": True, "int8": False},
        "output": {"dir": str(out / "run")}})
    result = run(recipe, progress=False, echo=lambda *a: None)
    return result


def test_run_reports_metrics_and_stores_per_label_thresholds(trained):
    m = trained.metrics
    assert {"micro_f1", "macro_f1", "samples_f1", "subset_accuracy", "empty_gold", "empty_predicted", "loss",
            "per_class"} <= set(m["test"])
    assert m["train"]["best_metric_name"] == "micro_f1" and len(m["validation"]["threshold_sweep"]) == 19
    assert m["data"]["empty_label_sets"]["train"] > 0
    saved = json.loads((trained.model_dir / "domainft.json").read_text())["thresholds"]
    assert saved["rule"] == "per_label" and set(saved["values"]) == set(trained.model.labels)
    assert m["test"]["thresholds"]["values"] == pytest.approx(saved["values"])
    assert json.loads((trained.model_dir / "config.json").read_text())["problem_type"] == "multi_label_classification"


def test_predict_applies_the_stored_thresholds(trained):
    model = trained.model
    thresholds = json.loads((trained.model_dir / "domainft.json").read_text())["thresholds"]["values"]
    for pred in model.predict(TEXTS):
        assert set(pred["scores"]) == set(model.labels)
        assert set(pred["labels"]) == {k for k, p in pred["scores"].items() if p >= thresholds[k]}
        assert [pred["scores"][k] for k in pred["labels"]] == sorted((pred["scores"][k] for k in pred["labels"]),
                                                                      reverse=True)


def test_reload_onnx_and_cli_agree_with_pytorch(trained, tmp_path):
    expected = trained.model.predict(TEXTS)
    reloaded = load(trained.run_dir)
    assert reloaded.predict(TEXTS) == expected  # exactly: same probabilities, same labels
    bundle_dir = trained.bundle_dir
    manifest = json.loads((bundle_dir / "domainft.json").read_text())
    assert manifest["thresholds"] == json.loads((trained.model_dir / "domainft.json").read_text())["thresholds"]
    assert manifest["parity"]["max_abs_diff"] <= 1e-4
    assert "one sigmoid probability per label" in (bundle_dir / "README.md").read_text()
    served = load_bundle(bundle_dir, "fp32").predict(TEXTS)
    for got, want in zip(served, expected):
        assert got["labels"] == want["labels"]
        assert got["scores"] == pytest.approx(want["scores"], abs=1e-5)
    result = CliRunner().invoke(app, ["predict", str(bundle_dir), TEXTS[0]])
    assert result.exit_code == 0, result.output
    line = json.loads(result.output.strip().splitlines()[-1])
    assert line["text"] == TEXTS[0] and line["labels"] == expected[0]["labels"]
    again = export_run(trained.run_dir, out=tmp_path / "b", echo=lambda *a: None)  # `domainft export` later
    assert again.manifest["thresholds"] == manifest["thresholds"]


def test_report_and_model_cards(trained):
    assert report_files(trained.run_dir) == ["learning_curves.png", "per_class_f1.png"]
    data, _ = card(trained.model_dir / "README.md")
    assert data["pipeline_tag"] == "text-classification" and "multilabel" in data["tags"]
    assert {m["name"] for m in data["model-index"][0]["results"][0]["metrics"]} >= {"Micro F1 (test)",
                                                                                   "Samples F1 (test)"}
    expected = [set(p["labels"]) for p in trained.model.predict(TEXTS)]
    ns = run_snippet(snippets(trained.model_dir / "README.md")[-1].replace('["Your text here."]', repr(TEXTS)),
                     trained.model_dir)
    assert [set(p) for p in ns["predicted"]] == expected
    bundle_card = trained.bundle_dir / "README.md"
    assert "onnx" in card(bundle_card)[0]["tags"]
    for code in snippets(bundle_card)[1:]:  # Optimum, then onnxruntime
        ns = run_snippet(code.replace('["Your text here."]', repr(TEXTS)), trained.bundle_dir)
        assert [set(p) for p in ns["predicted"]] == expected


def test_run_summary_shows_the_multilabel_columns(trained):
    import io

    from rich.console import Console

    from domainft.report import print_summary

    buffer = io.StringIO()
    print_summary(trained.metrics, trained.run_dir, console=Console(file=buffer, width=200))
    assert "micro-F1" in buffer.getvalue() and "exact match" in buffer.getvalue()


def test_legal_multilabel_recipe_runs_on_the_sample(tiny_base, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the recipe's data path is relative to the repository
    recipe = Recipe.from_yaml(RECIPE, {"base": str(tiny_base), "data.max_length": 32, "train.epochs": 1,
                                       "output.dir": str(tmp_path / "run")})
    m = run(recipe, progress=False, echo=lambda *a: None).metrics
    assert m["data"]["groups"]["shared_between_splits"] == 0 and m["data"]["multi_category"]
    assert m["train"]["best_metric_name"] == "macro_f1" and m["test"]["thresholds"]["rule"] == "global"
    assert len(m["test"]["per_class"]) == 15


def test_evaluations_during_training_score_at_their_best_threshold():
    """Early in training every probability can sit below 0.5: scored at 0.5, micro-F1 would be 0 for
    every checkpoint and early stopping would compare zeros."""
    from types import SimpleNamespace

    import numpy as np

    from domainft.tasks import get_task

    logits = np.array([[-1.0, -3.0], [-3.0, -1.2], [-1.1, -3.0]], dtype=np.float32)  # all below 0.5
    gold = np.array([[1, 0], [0, 1], [1, 0]], dtype=np.float32)
    scores = get_task("multilabel").metrics_for(None, ["a", "b"])(SimpleNamespace(predictions=logits, label_ids=gold))
    assert scores["micro_f1"] == 1.0 and scores["threshold"] < 0.5
