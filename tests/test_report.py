"""What a run leaves for people: the full training history in metrics.json, the report/ plots, the
printed summary naming them, and the model card with Hugging Face metadata and working code.
(The other tasks' plots and cards are checked beside their own runs: test_ner, test_multilabel,
test_regression, test_triage, test_generation, test_export.)"""
import io
import json

import numpy as np
import pytest

from domainft import load, run
from domainft.plots import write_report
from domainft.recipe import Recipe
from domainft.rundir import OWN_NAMES, REPORT_DIR, RunDir

from cards import card, index_scores, report_files, run_snippet, snippets
from conftest import SAMPLE

TEXTS = ["Kallio Group said its net sales rose to EUR 80.1 mn from EUR 60.2 mn .",
         "Tundra Mining will cut 300 jobs as demand weakens ."]


def recipe(base, out, **overrides) -> Recipe:
    raw = {"name": "report_test", "base": str(base),
           "data": {"format": "phrasebank", "path": str(SAMPLE), "max_length": 64},
           "train": {"epochs": 2, "batch_size": 16, "lr": 5e-4, "seed": 7, "eval_every": 8},
           "output": {"dir": str(out)}}
    return Recipe.from_dict(raw).override(overrides)


def quiet(r: Recipe):
    return run(r, progress=False, echo=lambda *a: None)


@pytest.fixture(scope="module")
def trained(tiny_base, tmp_path_factory):
    return quiet(recipe(tiny_base, tmp_path_factory.mktemp("report") / "run"))


def test_history_keeps_every_training_step_and_evaluation(trained):
    train = trained.metrics["train"]
    assert "log" not in train
    history = train["history"]
    steps = [e for e in history if "loss" in e]
    evals = [e for e in history if "eval_loss" in e]
    assert steps and all({"loss", "learning_rate", "grad_norm", "epoch", "step"} <= set(e) for e in steps)
    # Training loss at the first step and every train.logging_steps (10); evaluations every epoch (8 steps).
    assert [e["step"] for e in steps] == [1, *range(10, train["steps"] + 1, 10)]
    assert [e["step"] for e in evals] == list(range(8, train["steps"] + 1, 8))
    assert all(e["elapsed_s"] >= 0 for e in (*steps, *evals))
    assert all("eval_macro_f1" in e for e in evals)
    assert train["best_step"] in {e["step"] for e in evals}
    best = next(e for e in evals if e["step"] == train["best_step"])
    assert best["eval_macro_f1"] == pytest.approx(train["best_metric"])
    assert "train_loss" in history[-1]  # the Trainer's closing summary


def test_report_plots_are_written_and_listed(trained):
    assert report_files(trained.run_dir) == ["learning_curves.png", "confusion_matrix.png", "per_class_f1.png"]
    assert REPORT_DIR in OWN_NAMES and RunDir(trained.run_dir).foreign_entries() == []


def test_summary_names_the_report_directory_last(trained):
    from rich.console import Console

    from domainft.report import print_summary

    buffer = io.StringIO()
    print_summary(trained.metrics, trained.run_dir, console=Console(file=buffer, width=400))
    last = buffer.getvalue().strip().splitlines()[-1]
    assert last.startswith(f"plots: {trained.run_dir / 'report'}/") and "learning_curves.png" in last


def test_model_card_metadata_and_its_code_run(trained):
    readme = trained.model_dir / "README.md"
    data, _ = card(readme)
    assert data["library_name"] == "transformers" and data["pipeline_tag"] == "text-classification"
    assert "base_model" not in data  # a local directory: no Hub origin to name
    assert data["tags"] == ["domainft", "classification", "full"]
    scores = index_scores(data)
    test = trained.metrics["test"]
    assert scores["Accuracy (test)"] == pytest.approx(test["accuracy"], abs=1e-4)
    assert scores["Macro F1 (test)"] == pytest.approx(test["macro_f1"], abs=1e-4)
    result = data["model-index"][0]["results"][0]
    assert result["dataset"] == {"name": "finance_sentiment_sample", "type": "finance_sentiment_sample",
                                 "split": "test"}
    domainft_code, plain = snippets(readme)
    assert 'domainft.load(".")' in domainft_code and "max_length=64" in plain
    ns = run_snippet(plain.replace('["Your text here."]', repr(TEXTS)), trained.model_dir)
    reference = load(trained.run_dir)
    np.testing.assert_allclose(ns["logits"], reference.logits(TEXTS), atol=1e-5)
    assert ns["predicted"] == [p["label"] for p in reference.predict(TEXTS)]
    np.testing.assert_allclose(ns["probs"], [list(p["scores"].values()) for p in reference.predict(TEXTS)],
                               atol=1e-5)


def test_lora_card_loads_through_peft(tiny_base, tmp_path):
    result = quiet(recipe(tiny_base, tmp_path / "run", **{"tuning.method": "lora", "train.epochs": 1}))
    readme = result.model_dir / "README.md"
    data, _ = card(readme)  # written after peft's own README, which it replaces
    assert data["library_name"] == "peft" and "lora" in data["tags"]
    plain = snippets(readme)[-1]
    assert "PeftModel.from_pretrained" in plain and json.dumps(str(tiny_base)) in plain
    ns = run_snippet(plain.replace('["Your text here."]', repr(TEXTS)), result.model_dir)
    np.testing.assert_allclose(ns["logits"], result.model.logits(TEXTS), atol=1e-5)


def test_a_plotting_failure_leaves_a_complete_run_and_a_warning(tiny_base, tmp_path, monkeypatch):
    def broken(metrics, report_dir):
        raise RuntimeError("no fonts")

    monkeypatch.setattr("domainft.pipeline.write_report", broken)
    said = []
    result = run(recipe(tiny_base, tmp_path / "run", **{"train.epochs": 1}), progress=False, echo=said.append)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert "report" not in metrics and metrics["test"]["n"] > 0
    assert not (result.run_dir / "report").exists() and (result.model_dir / "README.md").is_file()
    warning = [line for line in said if "report/" in line]  # through the run's echo
    assert warning == ["warning: report/ not written, the plots failed (RuntimeError: no fonts); "
                       "the run itself is complete"]
    assert load(result.run_dir).predict(TEXTS)


def test_overwrite_replaces_a_run_with_its_report(tiny_base, tmp_path):
    first = quiet(recipe(tiny_base, tmp_path / "run", **{"train.epochs": 1}))
    assert (first.run_dir / "report" / "learning_curves.png").is_file()
    again = quiet(recipe(tiny_base, tmp_path / "run", **{"train.epochs": 1, "output.overwrite": True}))
    assert again.run_dir == first.run_dir and report_files(again.run_dir)
    assert sorted(p.name for p in again.run_dir.iterdir()) == ["metrics.json", "model", "recipe.yaml", "report"]


def test_report_draws_only_what_the_metrics_carry(tmp_path):
    # An older run (evaluations only, under `log`), no per-label detail: the learning curves alone.
    metrics = {"run": {"name": "old", "task": "classification", "method": "full"},
               "train": {"best_metric_name": "loss", "best_metric": 0.5, "best_step": 20,
                         "log": [{"eval_loss": 0.7, "epoch": 1.0, "step": 10},
                                 {"eval_loss": 0.5, "epoch": 2.0, "step": 20}]},
               "validation": {"n": 3, "accuracy": 1.0}}
    assert [p.name for p in write_report(metrics, tmp_path)] == ["learning_curves.png"]
    assert write_report({"run": {}, "train": {}}, tmp_path / "empty") == []
