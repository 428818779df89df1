"""Every registered tuning method passes the same checks (PEFT-style shared test): it trains what
it says, saves only that, reloads to identical predictions, and flattens for export exactly."""
import numpy as np
import pytest
import torch

from domainft import load, run
from domainft.errors import DomainftError, RecipeError
from domainft.methods import METHODS, TuningMethod, TuningOptions, register_method

import contract

TEXTS = ["Kallio Group said its net sales rose to EUR 80.1 mn from EUR 60.2 mn .",
         "Tundra Mining will cut 300 jobs as demand weakens .",
         "The annual general meeting will be held in Espoo in April ."]
BUILTIN = ["adapter", "freeze", "full", "lora"]
REGISTERED = contract.methods_for("classification")  # built-ins and any registered before collection


def quiet_run(recipe, **kw):
    return run(recipe, progress=False, echo=lambda *a: None, **kw)


def test_builtin_methods_are_registered():
    assert set(BUILTIN) <= set(METHODS.names())


@pytest.mark.parametrize("method", REGISTERED)
def test_method_trains_reloads_and_exports_exactly(make_recipe, method):
    result = quiet_run(make_recipe({"tuning.method": method, "train.epochs": 1, "train.lr": None}))
    info = result.metrics["run"]
    assert 0 < info["trainable_params"] <= info["total_params"]
    assert info["saved_mb"] > 0
    assert result.metrics["train"]["lr"] == METHODS.get(method).default_lr

    before = result.model.logits(TEXTS)
    reloaded = load(result.run_dir)
    np.testing.assert_allclose(reloaded.logits(TEXTS), before, atol=1e-6)
    assert [p["label"] for p in reloaded.predict(TEXTS)] == [p["label"] for p in result.model.predict(TEXTS)]

    # The export form is a transformers model computing the same logits, and making it leaves
    # the tuned model untouched.
    method_obj = METHODS.get(method)(result.recipe.tuning)
    plain = method_obj.to_plain(reloaded.model).eval()
    batch = reloaded.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        np.testing.assert_allclose(plain(**batch).logits.numpy(), before, atol=1e-5)
    np.testing.assert_allclose(reloaded.logits(TEXTS), before, atol=1e-6)


def test_parameter_efficient_methods_save_less_than_full(make_recipe, tmp_path):
    sizes = {}
    for method in ("full", "lora", "adapter"):
        r = quiet_run(make_recipe({"tuning.method": method, "train.epochs": 1,
                                   "output.dir": str(tmp_path / method)}))
        sizes[method] = r.metrics["run"]
        saved = {p.name for p in (r.run_dir / "model").iterdir()}
        if method != "full":
            assert "model.safetensors" not in saved  # only what was trained + a pointer to the base
    for method in ("lora", "adapter"):
        assert sizes[method]["saved_mb"] < sizes["full"]["saved_mb"] / 2
        assert sizes[method]["trainable_params"] < sizes["full"]["trainable_params"] / 5


def test_freeze_trains_top_layers_and_head_only(make_recipe):
    result = quiet_run(make_recipe({"tuning.method": "freeze", "tuning.train_top_layers": 1,
                                    "train.epochs": 1}))
    trainable = {n for n, p in result.model.model.named_parameters() if p.requires_grad}
    assert trainable, "nothing trained"
    assert all(n.startswith(("bert.encoder.layer.1.", "bert.pooler.", "classifier.")) for n in trainable)
    assert any(n.startswith("classifier.") for n in trainable)


def test_freeze_more_layers_than_the_base_has_is_an_error(make_recipe):
    with pytest.raises(DomainftError, match=r"tuning.train_top_layers: 5, but the base has only 2"):
        quiet_run(make_recipe({"tuning.method": "freeze", "tuning.train_top_layers": 5}))


def test_adapter_placement_changes_size(make_recipe, tmp_path):
    counts = {}
    for placement in ("ffn", "attention_and_ffn"):
        r = quiet_run(make_recipe({"tuning.method": "adapter", "tuning.placement": placement,
                                   "tuning.reduction_factor": 4, "train.epochs": 1,
                                   "output.dir": str(tmp_path / placement)}))
        counts[placement] = r.metrics["run"]["trainable_params"]
    assert counts["attention_and_ffn"] > counts["ffn"]


def test_adapter_can_train_the_pooler_and_reloads_it(make_recipe):
    result = quiet_run(make_recipe({"tuning.method": "adapter", "tuning.train_pooler": True,
                                    "train.epochs": 1}))
    trainable = {n for n, p in result.model.model.named_parameters() if p.requires_grad}
    assert {"bert.pooler.dense.weight", "bert.pooler.dense.bias"} <= trainable
    base = load(result.run_dir)  # the pooler's trained weights come back from the head file
    np.testing.assert_allclose(base.model.bert.pooler.dense.weight.detach().numpy(),
                               result.model.model.bert.pooler.dense.weight.detach().numpy())
    np.testing.assert_allclose(base.logits(TEXTS), result.model.logits(TEXTS), atol=1e-6)


@pytest.mark.parametrize("override, message", [
    ({"tuning.method": "freeze", "tuning.r": 8}, r"tuning.r: .*not an option of tuning.method=freeze"),
    ({"tuning.method": "lora", "tuning.train_top_layers": 2}, r"tuning.train_top_layers"),
    ({"tuning.method": "adapter", "tuning.placement": "everywhere"}, r"tuning.placement"),
    ({"tuning.method": "adapter", "tuning.reduction_factor": 0}, r"tuning.reduction_factor"),
])
def test_options_of_another_method_are_rejected(make_recipe, override, message):
    with pytest.raises(RecipeError, match=message):
        make_recipe(override)


def test_custom_method_registered_from_python_works_in_a_recipe(make_recipe, tmp_path):
    from typing import Literal

    from domainft.methods.full import FullTuning

    class HeadOnlyOptions(TuningOptions):
        method: Literal["head_only"] = "head_only"

    @register_method("head_only")
    class HeadOnly(FullTuning):
        Options = HeadOnlyOptions

        def prepare(self, model, ctx):
            for name, p in model.named_parameters():
                p.requires_grad = any(name.startswith(m + ".") for m in ctx.new_modules)
            return model

    try:
        result = quiet_run(make_recipe({"tuning": {"method": "head_only"}, "train.epochs": 1}))
        assert result.metrics["run"]["method"] == "head_only"
        assert result.metrics["run"]["trainable_params"] < result.metrics["run"]["total_params"] / 10
        np.testing.assert_allclose(load(result.run_dir).logits(TEXTS), result.model.logits(TEXTS), atol=1e-6)
        assert "head_only" in contract.methods_for("ner")  # a registered method joins the shared checks
        contract.check(result, tmp_path)
    finally:
        METHODS.remove("head_only")
    assert isinstance(HeadOnly(HeadOnlyOptions()), TuningMethod)
