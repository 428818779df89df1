"""Text pairs (data.text_pair_column / _template) and long inputs in windows (data.long_inputs):
tokenized as training did in predict, after reload and in the torch-free bundle; a wrong input form
or a setting that does not fit is a clear error."""
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from domainft import load, run
from domainft.cli import app
from domainft.decode import pool_rows
from domainft.errors import DomainftError, RecipeError
from domainft.export import export_run
from domainft.recipe import Recipe
from domainft.serving import load as load_bundle

from compare import assert_reloaded_same

CLAUSES = ["The supplier shall deliver the goods within {n} days of the order.",
           "The customer may terminate this agreement with {n} days written notice.",
           "Each party shall keep the other's information confidential for {n} years.",
           "The licensee shall pay a royalty of {n} percent of net sales."]
HYPOTHESES = {"delivery": "The supplier must deliver.", "termination": "The customer can terminate.",
              "confidentiality": "Information stays confidential.", "royalty": "A royalty is payable."}
FILLER = " The parties agree that the headings are for convenience only and do not affect interpretation."


def nli_rows(n: int = 96, long_every: int = 0) -> list[dict]:
    """(hypothesis, clause) pairs: entailed when the clause is the hypothesis' topic, else not
    mentioned; every `long_every`-th clause padded with boilerplate past a short max_length."""
    rows, topics = [], list(HYPOTHESES)
    for i in range(n):
        clause = CLAUSES[i % 4].format(n=i + 2) + (FILLER * 3 if long_every and i % long_every == 0 else "")
        topic = topics[(i // 4) % 4]
        rows.append({"hypothesis": HYPOTHESES[topic], "clause": clause,
                     "label": "entailment" if topic == topics[i % 4] else "not_mentioned"})
    return rows


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def pair_recipe(tiny_base, tmp_path, rows=None, **data) -> Recipe:
    path = write(tmp_path / "pairs.jsonl", rows or nli_rows())
    return Recipe.from_dict({
        "name": "pairs", "base": str(tiny_base),
        "data": {"path": str(path), "text_column": "hypothesis", "text_pair_column": "clause", "max_length": 64,
                 "split": {"stratify": False}, **data},
        "train": {"epochs": 1, "batch_size": 16, "lr": 5e-4, "seed": 7},
        "output": {"dir": str(tmp_path / "run")}})


def quiet(r):
    return run(r, progress=False, echo=lambda *a: None)


PAIRS = [{"text": "The supplier must deliver.", "text_pair": CLAUSES[0].format(n=9)},
         {"text": "A royalty is payable.", "text_pair": CLAUSES[1].format(n=30) + FILLER * 4}]


def test_pairs_train_reload_and_export_alike(tiny_base, tmp_path):
    result = quiet(pair_recipe(tiny_base, tmp_path))
    model = load(result.run_dir)
    enc = model.tokenizer("The supplier must deliver.", CLAUSES[0].format(n=9))
    assert 1 in enc["token_type_ids"]  # the second text is segment 1
    before = result.model.predict(PAIRS)
    assert model.predict(PAIRS) == before  # reload: the same pair reading
    assert model.predict([("The supplier must deliver.", CLAUSES[0].format(n=9))])[0] == before[0]  # tuple form
    bundle = load_bundle(export_run(result.run_dir, echo=lambda *a: None).dir, "fp32")
    assert bundle.manifest["text_inputs"]["text_pair"] is True
    for a, b in zip(bundle.predict(PAIRS), before):
        assert a["label"] == b["label"]
        assert max(abs(a["scores"][k] - b["scores"][k]) for k in a["scores"]) < 1e-4


def test_a_pair_model_refuses_single_texts_and_the_other_way(tiny_base, tmp_path):
    result = quiet(pair_recipe(tiny_base, tmp_path))
    with pytest.raises(DomainftError, match=r"input 1: this model reads text pairs .*text_pair"):
        result.model.predict(["The supplier must deliver."])
    bundle = load_bundle(export_run(result.run_dir, echo=lambda *a: None).dir)
    with pytest.raises(DomainftError, match="this model reads text pairs"):
        bundle.predict(["The supplier must deliver."])
    with pytest.raises(DomainftError, match="a text pair is"):
        bundle.predict([("only one",)])
    with pytest.raises(DomainftError, match=r"input 1: an object with keys 'clause', 'question'; this model reads "
                                            r"text pairs\. Rows \{column: value\} are read by a model trained on "
                                            r"texts built from columns"):
        bundle.predict([{"clause": "a", "question": "b"}])


def test_predict_cli_reads_pairs_from_jsonl(tiny_base, tmp_path):
    result = quiet(pair_recipe(tiny_base, tmp_path))
    inputs = write(tmp_path / "in.jsonl", PAIRS)
    out = CliRunner().invoke(app, ["predict", str(result.run_dir), "--input", str(inputs)])
    assert out.exit_code == 0, out.output
    lines = [json.loads(line) for line in out.output.splitlines()]
    assert [(x["text"], x["text_pair"]) for x in lines] == [(p["text"], p["text_pair"]) for p in PAIRS]
    assert [x["label"] for x in lines] == [p["label"] for p in result.model.predict(PAIRS)]


def test_pair_duplicates_are_both_texts(tiny_base, tmp_path):
    """The same hypothesis over different clauses is not a duplicate; the same pair twice is."""
    from domainft.data import prepare_examples

    rows = nli_rows()
    spec = pair_recipe(tiny_base, tmp_path, rows=rows + rows[:5]).data
    bundle = prepare_examples(spec)
    assert bundle.report["duplicates_removed"] == 5
    assert sum(bundle.report["counts"].values()) == len(rows)


def test_pair_template_builds_the_second_text(tiny_base, tmp_path):
    from domainft.data import prepare_examples

    rows = [{**r, "party": "supplier"} for r in nli_rows()]
    spec = pair_recipe(tiny_base, tmp_path, rows=rows, text_pair_column=None,
                       text_pair_template="{party}: {clause}").data
    ex = prepare_examples(spec).train[0]
    assert ex.text.endswith(".") and ex.pair.startswith("supplier: ")


@pytest.mark.parametrize("data, message", [
    ({"text_pair_column": "premise"}, r"no column 'premise'.*Set data.text_pair_column"),
    ({"text_pair_template": "{clause}"}, "give data.text_pair_column or data.text_pair_template, not both"),
    ({"text_pair_column": "label"}, r"data.text_pair_template: uses column 'label'"),
])
def test_pair_settings_that_do_not_fit_are_errors(tiny_base, tmp_path, data, message):
    from domainft.data import prepare_examples

    with pytest.raises((RecipeError, DomainftError), match=message):
        prepare_examples(pair_recipe(tiny_base, tmp_path, **data).data)


def test_pairs_do_not_apply_to_ner_or_single_text_formats(tiny_base, tmp_path):
    with pytest.raises(RecipeError, match="data.text_pair_column.*applies to tasks? .*classification"):
        Recipe.from_dict({"task": "ner", "base": str(tiny_base), "data": {"path": "x", "text_pair_column": "b"}})
    with pytest.raises(RecipeError, match="format phrasebank has one text per example"):
        Recipe.from_dict({"base": str(tiny_base), "data": {"path": "x.txt", "format": "phrasebank",
                                                           "text_pair_column": "b"}})


# --- long inputs in windows ---------------------------------------------------------------------


def long_recipe(tiny_base, tmp_path, pairs: bool = False, **data) -> Recipe:
    rows = nli_rows(long_every=3)
    if not pairs:
        rows = [{"text": f"{r['hypothesis']} {r['clause']}", "label": r["label"]} for r in rows]
    path = write(tmp_path / "long.jsonl", rows)
    fields = {"text_column": "hypothesis", "text_pair_column": "clause"} if pairs else {}
    return Recipe.from_dict({
        "name": "long", "base": str(tiny_base),
        "data": {"path": str(path), "max_length": 32, "stride": 8, "long_inputs": "windows",
                 "split": {"stratify": False}, **fields, **data},
        "train": {"epochs": 1, "batch_size": 16, "lr": 5e-4, "seed": 7},
        "output": {"dir": str(tmp_path / "run")}})


@pytest.mark.parametrize("pairs", [False, True], ids=["text", "pair"])
def test_windows_pool_in_training_predict_reload_and_bundle(tiny_base, tmp_path, pairs):
    from domainft.prepare import encode_splits, read_data
    from domainft.tasks import get_task

    recipe = long_recipe(tiny_base, tmp_path, pairs)
    result = quiet(recipe)
    m = result.metrics
    n_test = m["data"]["counts"]["test"]
    assert m["test"]["n"] == n_test  # one prediction per example, not per window
    assert m["data"]["truncated"]["train"] > 0  # the texts read in windows are counted
    model = load(result.run_dir)
    task = get_task("classification")
    data = read_data(task, recipe)
    encoded, _ = encode_splits(task, {"test": data.test}, model.tokenizer, model.labels, recipe)
    assert len(encoded["test"]) > n_test and max(len(r) for r in encoded["test"]["input_ids"]) <= 32
    if pairs:  # the first text is kept whole in every window
        first = model.tokenizer(data.test[0].text)["input_ids"][:-1]
        assert all(row[:len(first)] == first for row, k in zip(encoded["test"]["input_ids"], encoded["test"]["example"])
                   if k == 0)
    inputs = [(e.text, e.pair) if pairs else e.text for e in data.test]
    before = result.model.predict(inputs)
    assert model.predict(inputs) == before
    # The run's test metrics are the predictions predict() makes.
    accuracy = np.mean([p["label"] == e.label for p, e in zip(before, data.test)])
    assert accuracy == pytest.approx(m["test"]["accuracy"])
    exported = export_run(result.run_dir, echo=lambda *a: None)
    bundle = load_bundle(exported.dir, "fp32")
    assert bundle.manifest["text_inputs"]["long_inputs"] == "windows"
    for a, b in zip(bundle.predict(inputs), before):
        assert a["label"] == b["label"]
        assert max(abs(a["scores"][k] - b["scores"][k]) for k in a["scores"]) < 1e-4


def test_windows_need_room_for_the_second_text(tiny_base, tmp_path):
    rows = [{**r, "hypothesis": r["hypothesis"] + FILLER * 2} for r in nli_rows()]
    recipe = long_recipe(tiny_base, tmp_path, pairs=True)
    write(tmp_path / "long.jsonl", rows)
    with pytest.raises(DomainftError, match="the first text of a pair is kept whole in every window"):
        quiet(recipe)
    assert not (tmp_path / "run").exists()


def test_pool_rows_mean_and_max():
    logits = np.array([[1.0, 0.0], [3.0, 2.0], [5.0, -1.0], [0.0, 4.0]])
    assert pool_rows(logits, [0, 0, 1, 2]).tolist() == [[2.0, 1.0], [5.0, -1.0], [0.0, 4.0]]
    assert pool_rows(logits, [0, 0, 0, 1], "max").tolist() == [[5.0, 2.0], [0.0, 4.0]]


def test_windows_do_not_apply_to_ner(tiny_base):
    with pytest.raises(RecipeError, match="data.long_inputs.*applies to tasks? .*classification"):
        Recipe.from_dict({"task": "ner", "base": str(tiny_base), "data": {"path": "x", "long_inputs": "windows"}})


# --- every task over texts reads pairs and windows alike ---------------------------------------------


def task_rows(task: str) -> list[dict]:
    """nli_rows (long clauses every third row) labelled for `task`: a label, a label set (empty for
    not mentioned), or a score."""
    rows = nli_rows(long_every=3)
    if task == "multilabel":
        return [{**r, "label": [] if r["label"] == "not_mentioned" else [r["label"], "clause"]} for r in rows]
    if task == "regression":
        return [{**r, "label": (1.0 if r["label"] == "entailment" else -1.0) + i / 100} for i, r in enumerate(rows)]
    return rows


@pytest.mark.parametrize("task", ["classification", "multilabel", "regression"])
def test_pairs_in_windows_for_every_text_task(tiny_base, tmp_path, task):
    path = write(tmp_path / "rows.jsonl", task_rows(task))
    result = quiet(Recipe.from_dict({
        "name": "pairs", "task": task, "base": str(tiny_base),
        "data": {"path": str(path), "text_column": "hypothesis", "text_pair_column": "clause", "max_length": 32,
                 "stride": 8, "long_inputs": "windows", "split": {"stratify": False}},
        "train": {"epochs": 1, "batch_size": 16, "lr": 5e-4, "seed": 7},
        "output": {"dir": str(tmp_path / "run")}}))
    assert result.metrics["test"]["n"] == result.metrics["data"]["counts"]["test"]  # pooled per example
    inputs = [(p["text"], p["text_pair"]) for p in PAIRS]
    before = result.model.predict(inputs)
    assert_reloaded_same(load(result.run_dir).predict(inputs), before)
    pooling = load(result.run_dir).manifest["text_inputs"]["window_pooling"]
    assert pooling == ("max" if task == "multilabel" else "mean")
    bundle = load_bundle(export_run(result.run_dir, echo=lambda *a: None).dir, "fp32")
    for a, b in zip(bundle.predict(inputs), before):
        assert a.keys() == b.keys()
        if task == "regression":
            assert a["value"] == pytest.approx(b["value"], abs=1e-4)
        else:
            assert a.get("label") == b.get("label") and a.get("labels") == b.get("labels")
            assert max(abs(a["scores"][k] - b["scores"][k]) for k in a["scores"]) < 1e-4


def test_the_clause_nli_recipe_reads_its_sample_as_pairs_in_windows(tiny_base, tmp_path):
    from conftest import ROOT

    recipe = Recipe.from_yaml(ROOT / "recipes" / "clause_nli.yaml").override(
        {"base": str(tiny_base), "train.epochs": 1, "output.dir": str(tmp_path / "run"),
         "data.path": str(ROOT / "data" / "clause_nli_sample.jsonl.gz")})
    result = quiet(recipe)
    counts, truncated = result.metrics["data"]["counts"], result.metrics["data"]["truncated"]
    assert counts["test"] > 0 and result.metrics["test"]["n"] == counts["test"]
    assert truncated["train"] > counts["train"] / 2  # most agreements are longer than one window
    assert result.model.input_settings == {"text_pair": True, "long_inputs": "windows", "window_pooling": "mean"}


@pytest.mark.parametrize("task", ["classification", "multilabel", "regression"])
def test_an_empty_second_text_names_its_line_for_every_text_task(tiny_base, tmp_path, task):
    from domainft.prepare import read_data
    from domainft.tasks import get_task

    rows = task_rows(task)
    rows[4]["clause"] = ""
    path = write(tmp_path / "rows.jsonl", rows)
    r = Recipe.from_dict({"task": task, "base": str(tiny_base),
                          "data": {"path": str(path), "text_column": "hypothesis", "text_pair_column": "clause"}})
    with pytest.raises(DomainftError, match=r"rows.jsonl line 5: empty second text"):
        read_data(get_task(task), r)
