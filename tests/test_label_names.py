"""Named labels: raw label values (0 / 1 / 2) named by data.label_names everywhere a label shows;
a list-valued label and column options on the label column are errors, never ignored."""
import json

import pytest

from domainft import load, run
from domainft.errors import DataError, RecipeError
from domainft.export import export_run
from domainft.recipe import Recipe
from domainft.serving import load as load_bundle

from conftest import SAMPLE

NAMES = {"negative": 0, "neutral": 1, "positive": 2}


def integer_labelled(tmp_path):
    """The finance sample as JSONL with integer labels, as many corpora ship them."""
    rows = []
    for line in SAMPLE.read_text(encoding="latin-1").splitlines():
        text, _, label = line.rpartition("@")
        rows.append(json.dumps({"text": text, "label": NAMES[label.strip()]}))
    path = tmp_path / "ints.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def recipe(tiny_base, tmp_path, **data):
    return Recipe.from_dict({"base": str(tiny_base), "data": {"path": str(integer_labelled(tmp_path)),
                                                             "max_length": 64, **data},
                             "train": {"epochs": 1, "batch_size": 16, "lr": 5e-4, "seed": 7},
                             "output": {"dir": str(tmp_path / "run")}})


def test_label_names_name_the_labels_everywhere(tiny_base, tmp_path):
    names = {0: "negative", 1: "neutral", 2: "positive"}
    result = run(recipe(tiny_base, tmp_path, label_names=names), progress=False, echo=lambda *a: None)
    assert result.metrics["data"]["labels"] == ["negative", "neutral", "positive"]  # the mapping's order
    assert set(result.metrics["test"]["per_class"]) == {"negative", "neutral", "positive"}
    config = json.loads((result.run_dir / "model" / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}
    texts = ["Operating profit rose .", "The company cut jobs ."]
    assert {p["label"] for p in load(result.run_dir).predict(texts)} <= {"negative", "neutral", "positive"}
    bundle = export_run(result.run_dir, echo=lambda *a: None).dir
    assert set(load_bundle(bundle).predict(texts)[0]["scores"]) == {"negative", "neutral", "positive"}


def test_without_names_integer_labels_stay_as_written(tiny_base, tmp_path):
    from domainft.data import prepare_examples

    assert prepare_examples(recipe(tiny_base, tmp_path).data).labels == ["0", "1", "2"]


def test_an_unnamed_value_is_an_error_naming_the_line(tiny_base, tmp_path):
    from domainft.data import prepare_examples

    spec = recipe(tiny_base, tmp_path, label_names={0: "negative", 1: "neutral"}).data
    with pytest.raises(DataError, match=r"data.label_names: .*ints.jsonl line \d+: label '2' has no name there"):
        prepare_examples(spec)


@pytest.mark.parametrize("data, message", [
    ({"label_names": {0: "a", 1: "a"}}, r"data.label_names: 'a' names two label values"),
    ({"label_names": {0: "a", 1: "b"}, "labels": ["a", "c"]}, r"data.labels: 'c' is not one of the names"),
    ({"columns": {"label": {"values": {"0": "negative"}}}}, r"data.columns.label: is the label column.*"
                                                             r"data.label_names"),
])
def test_label_name_settings_that_cannot_apply_are_errors(tiny_base, tmp_path, data, message):
    with pytest.raises(RecipeError, match=message):
        recipe(tiny_base, tmp_path, **data)


def test_a_list_valued_label_is_an_error_pointing_to_multi_label(tmp_path):
    from domainft.data.readers import TextFields, read_examples

    path = tmp_path / "multi.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": "b", "label": ["x", "y"]}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"multi.jsonl line 2: label holds a list \(\['x', 'y'\]\); task: "
                                        r"classification takes one label per example.*set task: multilabel"):
        read_examples(path, "jsonl", TextFields())
