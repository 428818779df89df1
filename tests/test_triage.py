"""Emergency triage (recipes/medical_triage.yaml): tabular cells into a text template, leak
columns, ordinal labels with under/over-triage, the nurse as reference, the escalation rule."""
import json

import numpy as np
import pytest

from domainft import load, run
from domainft.data import TextFields, prepare_examples, read_examples
from domainft.decode import softmax
from domainft.errors import DataError, DomainftError, RecipeError
from domainft.ordinal import FINE_SWEEP, Decision, escalate, severity_rates
from domainft.recipe import DataSpec, Recipe
from domainft.tasks.classification import reference_scores

from cards import card, index_scores, report_files, run_snippet, snippets
from conftest import ROOT

RECIPE = ROOT / "recipes" / "medical_triage.yaml"
SAMPLE = ROOT / "data" / "medical_triage_sample.csv"
HEADER = "Chief_complain;Sex;BT;Saturation;NRS_pain;Diagnosis in ED;KTAS_RN;KTAS_expert"


def triage_data(**changes) -> dict:
    """The shipped recipe's data section (on the sample), with changes."""
    data = Recipe.from_yaml(RECIPE).to_dict(exclude_defaults=True)["data"]
    return {**data, "path": str(SAMPLE), **changes}


def write_csv(path, rows: list[str]):
    # The real file's quirks: ';' separated, Windows-1254 bytes, CRLF line ends.
    path.write_bytes(("\r\n".join([HEADER, *rows]) + "\r\n").encode("cp1254"))
    return path


COLUMNS = {"Sex": {"values": {1: "female", 2: "male"}}, "BT": {"number": True, "unit": "°C"},
           "Saturation": {"number": True, "unit": "%", "missing": "not measured"},
           "NRS_pain": {"number": True, "missing": "none"}}


def small_spec(path, **changes) -> DataSpec:
    return DataSpec.model_validate({
        "path": str(path), "format": "csv", "delimiter": ";", "encoding": "cp1254",
        "label_column": "KTAS_expert", "labels": [1, 2, 3, 4, 5], "ordinal": True,
        "reference_column": "KTAS_RN", "leak_columns": ["Diagnosis in ED", "KTAS_RN"],
        "missing_values": ["#BOŞ!", "??", ""],
        "text_template": "{Chief_complain}. {Sex}, temperature {BT}, SpO2 {Saturation}, pain {NRS_pain}.",
        "columns": COLUMNS,
        **changes})


def read(spec: DataSpec):
    return read_examples(spec.path, spec.format, TextFields.of(spec), spec.encoding, spec.delimiter)


def test_template_renders_missing_markers_decimal_commas_and_codes(tmp_path):
    f = write_csv(tmp_path / "t.csv", ["pain, chest;2;36,5;;#BOŞ!;Angina;2;3",
                                       "fever;1;38.10;??;7;Fever, unspecified;;3"])
    first, second = read(small_spec(f))
    assert first.text == "pain, chest. male, temperature 36.5 °C, SpO2 not measured, pain none."
    assert second.text == "fever. female, temperature 38.1 °C, SpO2 not measured, pain 7."
    assert (first.label, first.reference, second.reference) == ("3", "2", None)  # empty cell: no reference


def test_flags_name_the_range_a_number_falls_in(tmp_path):
    f = write_csv(tmp_path / "t.csv", ["fever;1;39,2;88;7;x;2;3", "cough;2;36.5;97;;x;4;4"])
    columns = {**COLUMNS,
               "BT": {"number": True, "unit": "°C", "flags": [{"min": 38, "text": "fever"},
                                                            {"max": 35.9, "text": "hypothermia"}]},
               "Saturation": {"number": True, "unit": "%", "missing": "not measured",
                              "flags": [{"max": 89, "text": "hypoxia"}, {"min": 85, "max": 94, "text": "low"}]}}
    first, second = read(small_spec(f, columns=columns))
    assert first.text == "fever. female, temperature 39.2 °C (fever), SpO2 88 % (hypoxia, low), pain 7."
    assert second.text == "cough. male, temperature 36.5 °C, SpO2 97 %, pain none."  # bounds inclusive, none hit


@pytest.mark.parametrize("flag, message", [
    ({"text": "high"}, "needs `min`, `max` or both"),
    ({"min": 5, "max": 1, "text": "x"}, "min 5 is above max 1"),
])
def test_bad_flags_are_refused(flag, message):
    with pytest.raises(RecipeError, match=message):
        Recipe.from_dict({"data": triage_data(columns={"BT": {"number": True, "flags": [flag]}})})


def test_flags_need_a_number_column():
    with pytest.raises(RecipeError, match="`flags` apply to numbers"):
        columns = {"Sex": {"values": {1: "f"}, "flags": [{"min": 1, "text": "x"}]}}
        Recipe.from_dict({"data": triage_data(columns=columns)})


def test_leak_columns_are_never_in_the_text(tmp_path):
    # Overwrite every leak column (and the nurse's level) with a marker: no text may change.
    import csv
    import io

    recipe = Recipe.from_dict({"data": triage_data()})
    rows = list(csv.DictReader(io.StringIO(SAMPLE.read_bytes().decode("cp1254"), newline=""), delimiter=";"))
    for row in rows:
        row.update({name: "LEAK" for name in recipe.data.leak_columns})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), delimiter=";", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    (tmp_path / "leak.csv").write_bytes(out.getvalue().encode("cp1254"))
    spec = recipe.data.model_copy(update={"path": tmp_path / "leak.csv", "reference_column": None})
    original = prepare_examples(recipe.data)
    leaked = prepare_examples(spec)
    assert [e.text for e in leaked.train] == [e.text for e in original.train]
    for ex in original.train + original.validation + original.test:
        assert not any(marker in ex.text for marker in ("LEAK", "#BOŞ!", "??", ";")), ex.text
    with pytest.raises(RecipeError, match=r"data.text_template: uses column 'Diagnosis in ED'.*must not see it"):
        Recipe.from_dict({"data": triage_data(text_template="{Chief_complain} ({Diagnosis in ED})")})
    with pytest.raises(RecipeError, match=r"data.text_template: uses column 'KTAS_RN'"):
        Recipe.from_dict({"data": triage_data(text_template="{Chief_complain} {KTAS_RN}")})


def test_under_and_over_triage_on_a_hand_example():
    # Index 0 = KTAS 1 (most urgent). Gold 3, predicted 4: under; gold 2, predicted 1: over.
    gold = np.array([2, 1, 0, 3, 4, 2])
    pred = np.array([3, 0, 0, 3, 2, 4])
    assert severity_rates(gold, pred) == {"under_triage": pytest.approx(2 / 6), "over_triage": pytest.approx(2 / 6)}
    from domainft.data import Example

    exs = [Example("a", "3", "f", 1, "4"), Example("b", "2", "f", 2, "2"), Example("c", "2", "f", 3, None),
           Example("d", "5", "f", 4, "3")]
    ref = reference_scores(exs, ["1", "2", "3", "4", "5"], DataSpec(path="x.csv", reference_column="RN",
                                                                 ordinal=True, labels=list("12345")))
    assert (ref["n"], ref["accuracy"]) == (3, pytest.approx(1 / 3))
    assert (ref["under_triage"], ref["over_triage"]) == (pytest.approx(1 / 3), pytest.approx(1 / 3))


def test_escalation_rule_only_moves_toward_urgency():
    probs = np.array([[0.05, 0.30, 0.40, 0.20, 0.05],   # cumulative 0.35 at KTAS 2
                      [0.00, 0.00, 0.10, 0.80, 0.10],   # argmax KTAS 4 already reaches first
                      [0.60, 0.10, 0.10, 0.10, 0.10]])  # most probable is the most urgent
    assert escalate(probs, 1.0).tolist() == probs.argmax(-1).tolist()
    assert escalate(probs, 0.3).tolist() == [1, 3, 0]
    assert escalate(probs, 0.05).tolist() == [0, 2, 0]
    assert Decision(True, None).choose(probs).tolist() == [2, 3, 0]


def test_recipe_checks_ordinal_options():
    with pytest.raises(RecipeError, match=r"decision.escalate_threshold: needs ordered labels"):
        Recipe.from_dict({"data": triage_data(ordinal=False), "decision": {"escalate_threshold": 0.3}})
    with pytest.raises(RecipeError, match=r"decision.max_under_rate: needs ordered labels"):
        Recipe.from_dict({"data": triage_data(ordinal=False), "decision": {"max_under_rate": 0.1}})
    with pytest.raises(RecipeError, match=r"decision.max_under_rate: set either it .* not both"):
        Recipe.from_dict({"data": triage_data(), "decision": {"max_under_rate": 0.1, "escalate_threshold": 0.3}})
    with pytest.raises(RecipeError, match=r"data.ordinal: needs data.labels"):
        Recipe.from_dict({"data": {**triage_data(), "labels": None}})
    with pytest.raises(RecipeError, match=r"data.columns.Sex: give `number` or `values`, not both"):
        Recipe.from_dict({"data": triage_data(columns={"Sex": {"number": True, "values": {1: "f"}}})})


def test_bad_columns_and_cells_name_file_line_and_field(tmp_path):
    f = write_csv(tmp_path / "t.csv", ["fever;1;36,5;98;3;Fever;3;3", "cough;3;37,0;99;2;Cold;4;4",
                                       "dyspnea;2;hot;90;5;Asthma;2;2"])
    with pytest.raises(DataError, match=r"t.csv: no column 'Chief_complaint'; columns are: Chief_complain, "
                                        r".*Set data.text_template"):
        read(small_spec(f, text_template="{Chief_complaint}"))
    with pytest.raises(DataError, match=r"no column 'Saturaton'.*Set data.columns \(key 'Saturaton'\)"):
        read(small_spec(f, columns={"Saturaton": {"number": True}}))
    with pytest.raises(DataError, match=r"no column 'Chief_complain'.*looks ';'-separated: set data.delimiter"):
        read(small_spec(f, delimiter=","))
    with pytest.raises(DataError, match=r"t.csv line 3: column 'Sex': code '3' is not in data.columns.Sex.values"):
        read(small_spec(f))
    with pytest.raises(DataError, match=r"t.csv line 4: column 'BT': 'hot' is not a number; .*data.missing_values"):
        read(small_spec(f, columns={"BT": {"number": True}}))
    bad_ref = write_csv(tmp_path / "r.csv", [f"c{i};1;36;98;3;D;{'X' if i == 5 else 3};3" for i in range(12)])
    from domainft.tasks import get_task

    with pytest.raises(DataError, match=r"r.csv line 7: KTAS_RN \(data.reference_column\) holds 'X'"):
        get_task("classification").load_data(small_spec(bad_ref, labels=["3"], split={"stratify": False}))


def test_escalation_is_reported_saved_and_reloaded(make_recipe):
    recipe = make_recipe({"train.epochs": 1}, data=triage_data(max_length=64),
                         decision={"escalate_threshold": 0.35})
    result = run(recipe, progress=False, echo=lambda *a: None)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    for split in ("validation", "test"):
        m = metrics[split]
        assert {"under_triage", "over_triage", "reference"} <= set(m)
        assert {"accuracy", "under_triage", "over_triage", "n"} <= set(m["reference"])
        assert m["decision"] == {"ordinal": True, "escalate_threshold": 0.35}
    sweep = {row["escalate_threshold"]: row for row in metrics["validation"]["escalation_sweep"]}
    assert {1.0, 0.35, 0.1} <= set(sweep) and "escalation_sweep" not in metrics["test"]
    assert sweep[0.1]["under_triage"] <= sweep[0.35]["under_triage"] <= sweep[1.0]["under_triage"]
    assert metrics["data"]["reference"]["column"] == "KTAS_RN"

    texts = [e.text for e in prepare_examples(recipe.data).test]
    labels = result.model.labels
    most_probable = result.model.logits(texts).argmax(-1)
    chosen = [labels.index(p["label"]) for p in result.model.predict(texts)]
    assert all(c <= m for c, m in zip(chosen, most_probable))  # only ever more urgent
    assert any(c < m for c, m in zip(chosen, most_probable))  # a near-uniform tiny model escalates
    reloaded = load(result.run_dir)
    assert reloaded.manifest["decision"] == {"ordinal": True, "escalate_threshold": 0.35}
    again, before = reloaded.predict(texts), result.model.predict(texts)
    assert [p["label"] for p in again] == [p["label"] for p in before] == [labels[c] for c in chosen]
    np.testing.assert_allclose([p["score"] for p in again], [p["score"] for p in before], atol=1e-5)

    assert report_files(result.run_dir) == ["learning_curves.png", "confusion_matrix.png", "per_class_f1.png",
                                            "triage.png"]
    data, _ = card(result.model_dir / "README.md")
    assert index_scores(data)["Under-triage rate (predicted less severe than gold) (test)"] == pytest.approx(
        metrics["test"]["under_triage"], abs=1e-4)
    code = snippets(result.model_dir / "README.md")[-1]
    assert "reaches 0.35" in code
    ns = run_snippet(code.replace('["Your text here."]', repr(texts)), result.model_dir)
    assert ns["predicted"] == [p["label"] for p in before]  # the escalation rule, outside domainft

    # The exported bundle applies the same rule without torch.
    from domainft.export import export_run
    from domainft.serving import load as load_bundle

    bundle = export_run(result.run_dir, echo=lambda *a: None).dir
    served = load_bundle(bundle, precision="fp32").predict(texts)
    assert [p["label"] for p in served] == [p["label"] for p in before]


def test_max_under_rate_chooses_the_threshold_on_validation_per_run(make_recipe):
    recipe = make_recipe({"train.epochs": 1}, data=triage_data(max_length=64), decision={"max_under_rate": 0.05})
    notes = []
    result = run(recipe, progress=False, echo=notes.append)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    validation = metrics["validation"]
    threshold = validation["decision"]["escalate_threshold"]
    # The least escalation that keeps validation under-triage at or below the target ...
    sweep = {row["escalate_threshold"]: row for row in validation["escalation_sweep"]}
    assert validation["under_triage"] == sweep[threshold]["under_triage"] <= 0.05
    higher = [t for t in FINE_SWEEP if t > threshold]
    data = prepare_examples(recipe.data)
    probs = softmax(result.model.logits([e.text for e in data.validation]))
    y = [result.model.labels.index(e.label) for e in data.validation]
    assert all(severity_rates(y, escalate(probs, t))["under_triage"] > 0.05 for t in higher)
    assert any(f"escalate_threshold {threshold:g} chosen on validation" in str(n) for n in notes)
    # ... used on test, kept with the model and by a reload.
    assert metrics["test"]["decision"] == {"ordinal": True, "escalate_threshold": threshold, "max_under_rate": 0.05}
    reloaded = load(result.run_dir)
    assert reloaded.manifest["decision"]["escalate_threshold"] == threshold
    texts = [e.text for e in data.test]
    assert [p["label"] for p in reloaded.predict(texts)] == [p["label"] for p in result.model.predict(texts)]


def sample_lines() -> list[str]:
    return SAMPLE.read_bytes().decode(Recipe.from_dict({"data": triage_data()}).data.encoding).splitlines()


def sample_rows(n: int | None = None) -> list[dict]:
    """The sample's rows as a client has them: every column, cells as strings."""
    import csv

    rows = list(csv.DictReader(sample_lines(), delimiter=";"))
    return rows[:n] if n else rows


def test_new_rows_are_rendered_as_training_rendered_its_rows(make_recipe, tmp_path):
    """A model trained on texts built from columns takes rows: the trained model, its reload, the
    exported bundle and `domainft predict --input rows.csv` render them exactly as training did."""
    from typer.testing import CliRunner

    from domainft.cli import app
    from domainft.export import export_run
    from domainft.records import Records
    from domainft.serving import load as load_bundle

    recipe = make_recipe({"train.epochs": 1}, data=triage_data(max_length=64))
    result = run(recipe, progress=False, echo=lambda *a: None)
    records = result.model.records
    fields = TextFields.of(recipe.data)
    assert all(records.render(row, 1) == fields.text_of(row) for row in sample_rows())  # every sample row

    rows = sample_rows(12)
    texts = [fields.text_of(row) for row in rows]
    expected = result.model.predict(texts)
    assert result.model.predict(rows) == expected
    assert load(result.run_dir).predict(rows) == expected
    bundle = export_run(result.run_dir, echo=lambda *a: None).dir
    served = load_bundle(bundle, precision="fp32")
    assert isinstance(served.records, Records)
    assert [p["label"] for p in served.predict(rows)] == [p["label"] for p in expected]

    table = tmp_path / "new_patients.csv"  # as the registry exports them: ';', decimal commas
    table.write_text("\n".join(sample_lines()[:13]) + "\n", encoding="utf-8")
    cli = CliRunner().invoke(app, ["predict", str(result.run_dir), "--input", str(table)])
    assert cli.exit_code == 0, cli.output
    assert [json.loads(line)["label"] for line in cli.output.splitlines()] == [p["label"] for p in expected]

    from fastapi.testclient import TestClient

    from domainft.server import ServeSettings, create_app

    with TestClient(create_app(ServeSettings(bundle=str(bundle), threads=1, precision="fp32"))) as client:
        answer = client.post("/predict", json={"texts": rows[:3]})
        assert answer.status_code == 200, answer.text
        assert [p["label"] for p in answer.json()["predictions"]] == [p["label"] for p in expected[:3]]
        bad = client.post("/predict", json={"texts": [{**rows[0], "BT": "warm"}]})
        assert bad.status_code == 422 and "texts[0]: column 'BT': 'warm' is not a number" in bad.text

    del rows[0]["BT"]
    with pytest.raises(DomainftError, match=r"input 1: no 'BT'; this model builds its text from the columns "
                                            r"Chief_complain, .*give a row with each of them"):
        result.model.predict(rows[:1])
    with pytest.raises(DomainftError, match=r"input 1: column 'HR': 'fast' is not a number"):
        served.predict([{**rows[1], "HR": "fast"}])
