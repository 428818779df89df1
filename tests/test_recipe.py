import pytest

from domainft.bases import resolve_base
from domainft.errors import RecipeError
from domainft.recipe import Recipe, parse_overrides

from conftest import ROOT

DATA = {"path": "x.txt"}


def problems(raw: dict) -> str:
    with pytest.raises(RecipeError) as info:
        Recipe.from_dict(raw)
    return str(info.value)


def test_defaults_fill_every_section():
    r = Recipe.from_dict({"data": DATA})
    assert r.task == "classification"
    assert r.base.name == ["minilm"]
    assert r.tuning.method == "full"
    assert r.train.early_stopping.metric == "macro_f1"


def test_unknown_key_names_path_and_suggests():
    msg = problems({"data": DATA, "train": {"epoch": 3}})
    assert "train.epoch: unknown field; did you mean 'epochs'?" in msg


def test_wrong_type_and_impossible_value():
    msg = problems({"data": DATA, "train": {"lr": -1, "batch_size": "big"}})
    assert "train.lr: Input should be greater than 0 (got -1)" in msg
    assert "train.batch_size:" in msg


def test_early_stopping_metric_must_be_reported():
    msg = problems({"data": DATA, "train": {"early_stopping": {"metric": "f1"}}})
    assert ("train.early_stopping.metric: 'f1' is not a metric this task reports; "
            "choose one of: accuracy, macro_f1") in msg


def test_method_options_validated_per_method():
    msg = problems({"data": DATA, "tuning": {"method": "full", "r": 8}})
    assert ("tuning.r: not an option of tuning.method=full (its options: none); it is an option of "
            "tuning.method=lora") in msg
    msg = problems({"data": DATA, "tuning": {"method": "lora", "r": 0}})
    assert "tuning.r: Input should be greater than or equal to 1" in msg
    msg = problems({"data": DATA, "tuning": {"method": "prefix"}})
    assert "tuning.method: 'prefix' is not a tuning method; choose one of: adapter, freeze, full, lora" in msg


def test_data_needs_one_source():
    assert "give either `path`" in problems({"data": {}})
    assert "give either `path`" in problems({"data": {"path": "a.txt", "train": "b.csv"}})


def test_unknown_task():
    assert "task: Value error" not in problems({"data": DATA, "task": "summarize"})
    assert "'summarize' is not a task" in problems({"data": DATA, "task": "summarize"})


def test_overrides_parse_yaml_values():
    assert parse_overrides(["train.lr=3e-5", "tuning.method=lora", "base=[a, b]"]) == {
        "train.lr": "3e-5", "tuning.method": "lora", "base": ["a", "b"]}
    with pytest.raises(RecipeError, match="expected FIELD.PATH=VALUE"):
        parse_overrides(["train.lr"])


def test_override_that_is_not_yaml_is_taken_literally():
    template = "{Chief_complain}. {Sex}, age {Age}."  # a flow mapping followed by text: invalid YAML
    assert parse_overrides([f"data.text_template={template}"]) == {"data.text_template": template}


def test_override_switches_method_and_coerces():
    r = Recipe.from_dict({"data": DATA}).override(["train.lr=3e-5", "tuning.method=lora"])
    assert r.train.lr == pytest.approx(3e-5)
    assert r.tuning.method == "lora" and r.tuning.r == 8
    assert Recipe.from_dict({"data": DATA, "base": "minilm"}).override({"base.trust_remote_code": True}
                                                                        ).base.trust_remote_code


def test_override_of_unknown_field_is_an_error():
    with pytest.raises(RecipeError, match="train.learning_rate: unknown field; did you mean"):
        Recipe.from_dict({"data": DATA}).override({"train.learning_rate": 1e-5})


def test_base_shorthands():
    assert Recipe.from_dict({"data": DATA, "base": ["biobert", "minilm"]}).base.name == ["biobert", "minilm"]
    assert Recipe.from_dict({"data": DATA, "base": {"name": "x/y"}}).base.name == ["x/y"]


@pytest.mark.parametrize("name", ["finance_sentiment", "medical_triage", "medical_ner", "legal_clause_review"])
def test_domain_recipes_want_a_domain_base_and_fall_back_offline(name):
    """A user online gets the domain base first; offline (these tests), the packaged MiniLM."""
    base = Recipe.from_yaml(ROOT / "recipes" / f"{name}.yaml").base
    assert len(base.name) == 2 and "/" in base.name[0] and base.name[-1] == "minilm"
    assert resolve_base(base.name).requested == "minilm"


def test_resolved_recipe_round_trips(tmp_path):
    r = Recipe.from_dict({"name": "n", "data": DATA, "tuning": {"method": "lora", "r": 4}})
    path = tmp_path / "n.yaml"
    path.write_text(r.to_yaml())
    again = Recipe.from_yaml(path)
    assert again.to_dict() == r.to_dict()
    assert again.tuning.r == 4


def test_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed")
    with pytest.raises(RecipeError, match="bad.yaml is invalid"):
        Recipe.from_yaml(bad)
    with pytest.raises(RecipeError, match="file not found"):
        Recipe.from_yaml(tmp_path / "missing.yaml")
