"""task: regression: numeric targets read, standardized, trained, reloaded, exported and served."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from domainft import load, run
from domainft.errors import DataError, RecipeError
from domainft.recipe import Recipe
from domainft.tasks import get_task

from cards import card, index_scores, report_files, run_snippet, snippets
from compare import assert_reloaded_same
from conftest import ROOT

SAMPLE = ROOT / "data" / "finance_sentiment_scores_sample.jsonl"
TEXTS = ["Kallio Group: Kallio Group posts record quarterly profit",
         "Tundra Mining: Tundra Mining shares fall after profit warning",
         "Norvale Bank: Norvale Bank confirms annual general meeting date"]
TASK = get_task("regression")


def recipe(base: Path, out: Path, data: dict | None = None, **sections) -> Recipe:
    raw = {"name": "reg", "task": "regression", "base": str(base), "output": {"dir": str(out)},
           "data": {"path": str(SAMPLE), "text_template": "{company}: {title}", "label_column": "sentiment",
                    "max_length": 48, **(data or {})},
           "train": {"epochs": 2, "batch_size": 16, "lr": 1e-3, "seed": 7, **sections.pop("train", {})},
           **sections}
    return Recipe.from_dict(raw)


def quiet(r: Recipe):
    return run(r, progress=False, echo=lambda *a: None)


@pytest.fixture(scope="module")
def trained(tiny_base, tmp_path_factory):
    return quiet(recipe(tiny_base, tmp_path_factory.mktemp("reg") / "run"))


def write_rows(path: Path, rows: list[dict], array: bool = False) -> Path:
    if array:
        path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def two_target_rows(n: int = 60) -> list[dict]:
    """Texts whose words set two scores: `up` words raise a, `big` words raise b."""
    words = ["profit up", "sales up", "loss", "cuts", "big deal", "small step", "record", "warning"]
    rows = []
    for i in range(n):
        text = f"Firm {i} {words[i % 8]} {words[(i // 8) % 8]}"
        rows.append({"text": text, "a": round(text.count("up") - 0.5 * text.count("loss") + 0.01 * (i % 7), 3),
                     "b": f"{1.5 * text.count('big') + 0.02 * (i % 5):.3f}".replace(".", ",")})  # decimal commas
    return rows


# --- training, metrics, reload -----------------------------------------------------------------

def test_trains_and_reports_metrics_in_the_data_units(trained):
    m = trained.metrics
    for split in ("validation", "test"):
        for key in ("mse", "mae", "pearson", "spearman", "r2", "loss"):
            assert math.isfinite(m[split][key]), (split, key)
        assert set(m[split]["per_target"]) == {"sentiment"}
        assert m[split]["per_target"]["sentiment"]["mse"] == pytest.approx(m[split]["mse"])
    assert m["train"]["best_metric_name"] == "mse"
    assert m["data"]["labels"] == ["sentiment"]
    assert m["data"]["duplicates_removed"] >= 2 and m["data"]["conflicting_texts_averaged"] >= 1
    manifest = trained.model.manifest
    assert manifest["targets"]["names"] == ["sentiment"] and manifest["targets"]["standardized"] is True
    assert trained.model.model.config.problem_type == "regression"
    assert trained.model.model.config.num_labels == 1


def test_report_and_model_card(trained):
    assert report_files(trained.run_dir) == ["learning_curves.png", "per_target.png"]
    data, _ = card(trained.model_dir / "README.md")
    assert data["pipeline_tag"] == "text-classification" and "regression" in data["tags"]
    assert index_scores(data)["Pearson r (test)"] == pytest.approx(trained.metrics["test"]["pearson"], abs=1e-4)
    ns = run_snippet(snippets(trained.model_dir / "README.md")[-1].replace('["Your text here."]', repr(TEXTS)),
                     trained.model_dir)
    np.testing.assert_allclose(ns["values"][:, 0], [p["value"] for p in trained.model.predict(TEXTS)], rtol=1e-5)


def test_reload_predicts_the_same_values(trained):
    values = trained.model.predict(TEXTS)
    assert all(set(v) == {"value"} and isinstance(v["value"], float) for v in values)
    assert_reloaded_same(load(trained.run_dir).predict(TEXTS), values)
    one = trained.model.predict(TEXTS[0])  # a single string is one text (unpadded: the last digits differ)
    assert len(one) == 1 and one[0]["value"] == pytest.approx(values[0]["value"], abs=1e-5)


def test_standardization_round_trip(trained):
    targets = trained.model.manifest["targets"]
    train = [e.values[0] for e in TASK.load_data(trained.recipe.data).train]
    assert targets["mean"] == [pytest.approx(np.mean(train))] and targets["std"] == [pytest.approx(np.std(train))]
    # Encoded training labels are standardized; the prediction undoes it.
    from transformers import AutoTokenizer

    data = TASK.load_data(trained.recipe.data)
    encoded = TASK.encode(data.train, AutoTokenizer.from_pretrained(trained.model_dir), {}, trained.recipe.data)
    z = np.array(encoded["labels"])[:, 0]
    assert abs(z.mean()) < 1e-9 and z.std() == pytest.approx(1.0)
    logits = trained.model.logits(TEXTS)
    expected = logits[:, 0].astype(np.float64) * targets["std"][0] + targets["mean"][0]
    np.testing.assert_allclose([v["value"] for v in trained.model.predict(TEXTS)], expected, rtol=1e-6)
    scaling = data.scaling
    back = np.array(scaling.forward((0.25,))) * scaling.std[0] + scaling.mean[0]
    assert back[0] == pytest.approx(0.25)


def test_onnx_bundle_and_torch_free_predictor_agree(trained, tmp_path):
    from domainft.export import export_run
    from domainft.serving import load as load_bundle

    bundle = export_run(trained.run_dir, out=tmp_path / "bundle", echo=lambda *a: None)
    assert bundle.manifest["targets"] == trained.model.manifest["targets"]
    parity = bundle.manifest["parity"]
    assert parity["max_abs_diff"] <= 1e-4 and set(parity["pytorch"]) == {"pearson", "spearman"}
    fp32 = load_bundle(bundle.dir, "fp32")
    got = [p["value"] for p in fp32.predict(TEXTS)]
    want = [p["value"] for p in trained.model.predict(TEXTS)]
    np.testing.assert_allclose(got, want, atol=1e-4)
    card = (bundle.dir / "README.md").read_text()
    assert "Targets: sentiment" in card and "value = output x std + mean" in card and "Pearson r" in card


# --- several targets, options ------------------------------------------------------------------

def test_several_targets_from_a_json_array(tiny_base, tmp_path):
    path = write_rows(tmp_path / "two.json", two_target_rows(), array=True)
    r = Recipe.from_dict({"name": "two", "task": "regression", "base": str(tiny_base),
                          "data": {"path": str(path), "target_columns": ["a", "b"], "max_length": 32,
                                   "standardize_targets": False},
                          "train": {"epochs": 1, "batch_size": 16, "lr": 1e-3, "loss": "huber", "huber_delta": 0.5,
                                    "early_stopping": {"metric": "pearson"}},
                          "output": {"dir": str(tmp_path / "run")}})
    result = quiet(r)
    assert result.model.model.config.num_labels == 2
    assert set(result.metrics["test"]["per_target"]) == {"a", "b"}
    mean_pearson = np.mean([result.metrics["test"]["per_target"][t]["pearson"] for t in "ab"])
    assert result.metrics["test"]["pearson"] == pytest.approx(mean_pearson)
    out = result.model.predict(["Firm 1 profit up big deal"])
    assert set(out[0]) == {"values"} and set(out[0]["values"]) == {"a", "b"}
    targets = result.model.manifest["targets"]
    assert targets["standardized"] is False
    np.testing.assert_allclose(list(out[0]["values"].values()), result.model.logits(["Firm 1 profit up big deal"])[0],
                               rtol=1e-6)  # not standardized: the outputs are the values
    data = TASK.load_data(r.data)
    b = {e.text: e.values[1] for e in data.train + data.validation + data.test}
    assert b["Firm 4 big deal profit up"] == pytest.approx(1.5 + 0.08)  # '1,580' read with its decimal comma


def test_early_stopping_on_mse_keeps_the_lowest(tiny_base, tmp_path):
    r = recipe(tiny_base, tmp_path / "run", train={"epochs": 3, "eval_every": 4, "lr": 3e-3,
                                                    "early_stopping": {"metric": "mse", "patience": 20}})
    assert not TASK.greater_is_better("mse") and not TASK.greater_is_better("mae")
    assert TASK.greater_is_better("pearson")
    m = quiet(r).metrics
    log = [e["eval_mse"] for e in m["train"]["history"] if "eval_mse" in e]
    assert len(log) >= 3 and len(set(log)) > 1
    assert m["train"]["best_metric"] == pytest.approx(min(log))
    assert m["validation"]["mse"] == pytest.approx(min(log), rel=1e-4)  # the best checkpoint was restored


# --- reading -----------------------------------------------------------------------------------

def test_missing_targets_are_left_out_and_counted(tmp_path):
    rows = [{"text": f"headline {i}", "score": str(i % 5) if i % 10 else "n/a"} for i in range(40)]
    path = write_rows(tmp_path / "d.jsonl", rows)
    spec = recipe_data(path, label_column="score", missing_values=["n/a"])
    data = TASK.load_data(spec)
    assert data.report["targets_missing"] == 4
    assert sum(data.report["counts"].values()) == 36


def recipe_data(path: Path, **data):
    return Recipe.from_dict({"task": "regression", "data": {"path": str(path), **data}}).data


def test_stratified_split_on_quantile_bins_and_tiny_data(tmp_path):
    rows = [{"text": f"headline {i}", "label": i / 10} for i in range(200)]
    data = TASK.load_data(recipe_data(write_rows(tmp_path / "d.jsonl", rows)))
    test = sorted(e.values[0] for e in data.test)
    assert len(test) == 20 and test[0] < 2 and test[-1] > 18  # spans the range, not a random corner
    # Few examples (or the same value many times): never the stratified splitter's "only N examples".
    few = [{"text": f"t{i}", "label": 0.5 if i < 8 else 1.0} for i in range(11)]
    data = TASK.load_data(recipe_data(write_rows(tmp_path / "few.jsonl", few)))
    assert sum(data.report["counts"].values()) == 11


def test_json_array_records_report_their_line(tmp_path):
    from domainft.data.readers import TextFields, read_examples

    rows = [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]
    path = write_rows(tmp_path / "d.json", rows, array=True)
    got = read_examples(path, "auto", TextFields())
    assert [(e.text, e.label, e.line) for e in got] == [("a", "x", 2), ("b", "y", 6)]
    one_line = tmp_path / "one.json"
    one_line.write_text(json.dumps(rows), encoding="utf-8")
    assert [e.text for e in read_examples(one_line, "auto", TextFields())] == ["a", "b"]
    bad = tmp_path / "bad.json"
    bad.write_text('[\n  {"text": "a", "label": "x"},\n  {"text": "b" "label": "y"}\n]\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.json line 3: not valid JSON"):
        read_examples(bad, "auto", TextFields())
    keyed = tmp_path / "keyed.json"
    keyed.write_text(json.dumps({"1": {"sentence": "a"}, "2": {"sentence": "b"}}, indent=2), encoding="utf-8")
    with pytest.raises(DataError, match=r"keyed\.json: one JSON object holding the whole file.*flatten"):
        read_examples(keyed, "auto", TextFields())


def test_the_semeval_layout_reads_as_the_recipe_says(tmp_path):
    rows = [{"id": i, "company": "Acme", "title": f"Acme headline {i}", "sentiment": (i % 9 - 4) / 5}
            for i in range(30)]
    path = write_rows(tmp_path / "Headline_Trainingdata.json", rows, array=True)
    r = Recipe.from_yaml(ROOT / "recipes" / "finance_sentiment_scores.yaml", [f"data.path={path}"])
    data = TASK.load_data(r.data)
    first = min(data.train + data.validation + data.test, key=lambda e: e.line)
    assert first.text == "Acme: Acme headline 0" and first.values == (-0.8,) and first.line == 2


# --- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell, message", [
    ('"high"', r"d\.jsonl line 2: column 'score': 'high' is not a number"),
    ('""', r"d\.jsonl line 2: column 'score': empty target; .*data\.missing_values"),
    ("null", r"d\.jsonl line 2: column 'score': empty target"),
    ("[1, 2]", r"d\.jsonl line 2: column 'score': holds a list"),
    ("NaN", r"d\.jsonl line 2: column 'score': 'nan' is not a number"),
])
def test_a_target_that_is_not_a_number_names_file_line_and_column(tmp_path, cell, message):
    path = tmp_path / "d.jsonl"
    path.write_text(f'{{"text": "a", "score": 1}}\n{{"text": "b", "score": {cell}}}\n', encoding="utf-8")
    with pytest.raises(DataError, match=message):
        TASK.load_data(recipe_data(path, label_column="score"))


def test_data_errors(tmp_path):
    same = write_rows(tmp_path / "same.jsonl", [{"text": f"t{i}", "label": 2} for i in range(20)])
    with pytest.raises(DataError, match=r"target 'label' has the same value \(2\) in every training example"):
        TASK.load_data(recipe_data(same))
    missing = write_rows(tmp_path / "m.jsonl", [{"text": "a", "valence": 1}])
    with pytest.raises(DataError, match=r"m\.jsonl line 1: no column 'arousal'.*Set data\.target_columns"):
        TASK.load_data(recipe_data(missing, target_columns=["valence", "arousal"]))
    txt = tmp_path / "d.txt"
    txt.write_text("Profit rose .@positive\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.txt: task: regression reads csv, tsv, jsonl"):
        TASK.load_data(recipe_data(txt))
    gone = write_rows(tmp_path / "g.jsonl", [{"text": "a", "label": "?"}])
    with pytest.raises(DataError, match=r"g\.jsonl: every row's target is one of data\.missing_values"):
        TASK.load_data(recipe_data(gone, missing_values=["?"]))


@pytest.mark.parametrize("section, message", [
    ({"train": {"class_weights": "balanced"}}, r"train\.class_weights: does not apply to task: regression"),
    ({"train": {"label_smoothing": 0.1}}, r"train\.label_smoothing: does not apply to task: regression"),
    ({"data": {"ordinal": True, "labels": ["1", "2"]}}, r"data\.labels: does not apply to task: regression"),
    ({"data": {"label_names": {"0": "low"}}}, r"data\.label_names: does not apply to task: regression"),
    ({"decision": {"escalate_threshold": 0.5}}, r"decision: does not apply to task: regression"),
    ({"train": {"huber_delta": 2.0}}, r"train\.huber_delta: applies to train\.loss: huber only"),
    ({"train": {"loss": "mae"}}, r"train\.loss: Input should be 'mse' or 'huber'"),
    ({"train": {"early_stopping": {"metric": "macro_f1"}}}, r"'macro_f1' is not a metric this task reports"),
    ({"data": {"target_columns": ["a", "a"]}}, r"data\.target_columns: lists a column twice"),
    ({"data": {"text_template": "{title} {sentiment}"}}, r"data\.text_template: uses column 'sentiment'"),
    ({"data": {"format": "phrasebank"}}, r"data\.format: 'phrasebank' is not a format for task regression"),
])
def test_recipe_errors(section, message):
    raw = {"task": "regression", "data": {"path": str(SAMPLE), "label_column": "sentiment"}}
    for key, value in section.items():
        raw[key] = {**raw.get(key, {}), **value}
    with pytest.raises(RecipeError, match=message):
        Recipe.from_dict(raw)


@pytest.mark.parametrize("field, value", [("target_columns", ["a"]), ("standardize_targets", False)])
def test_regression_fields_are_refused_on_classification(field, value):
    with pytest.raises(RecipeError, match=rf"data\.{field}: applies to task: regression only"):
        Recipe.from_dict({"data": {"path": "x.txt", field: value}})
    with pytest.raises(RecipeError, match=r"train\.loss: applies to task: regression only"):
        Recipe.from_dict({"data": {"path": "x.txt"}, "train": {"loss": "huber"}})


def test_cli_predict_prints_the_values(trained, tmp_path):
    from typer.testing import CliRunner

    from domainft.cli import app
    from domainft.export import export_run

    runner = CliRunner()
    out = runner.invoke(app, ["predict", str(trained.run_dir), TEXTS[0], TEXTS[1]])
    assert out.exit_code == 0, out.output
    rows = [json.loads(line) for line in out.output.splitlines()]
    want = trained.model.predict(TEXTS[:2])
    assert [r["text"] for r in rows] == TEXTS[:2]
    np.testing.assert_allclose([r["value"] for r in rows], [w["value"] for w in want], atol=1e-6)
    bundle = export_run(trained.run_dir, out=tmp_path / "bundle", echo=lambda *a: None)
    out = runner.invoke(app, ["predict", str(bundle.dir), "--fp32", TEXTS[0]])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["value"] == pytest.approx(want[0]["value"], abs=1e-4)


def test_group_split_keeps_groups_whole(tmp_path):
    rows = [{"text": f"headline {i}", "label": (i % 13) / 13, "firm": f"f{i % 20}"} for i in range(120)]
    spec = recipe_data(write_rows(tmp_path / "g.jsonl", rows), leak_columns=["firm"],
                       split={"group_column": "firm", "validation": 0.2, "test": 0.2})
    data = TASK.load_data(spec)
    assert data.report["groups"]["shared_between_splits"] == 0
    assert sum(data.report["counts"].values()) == 120 and all(e.label == "" for e in data.train)
