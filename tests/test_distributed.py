"""Multi-process training under torchrun (2 CPU processes, gloo): one model trained on shards of
each global batch, one writer, a failure on any rank fails the run and leaves nothing that looks
complete, --resume continues, and the result equals one process with the same global batch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_pipeline import TEXTS, quiet_run

from domainft.model import load

from conftest import ROOT, SAMPLE

FAULTS = Path(__file__).parent / "distributed_faults.py"
BATCH = 16  # global: 8 per process


@pytest.fixture(scope="module")
def still_base(tmp_path_factory) -> Path:
    """The tiny BERT without dropout: a rank's random numbers then cannot change its gradients, so
    two processes and one compute the same updates."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from domainft.bases import resolve_base

    out = tmp_path_factory.mktemp("still_bert")
    tokenizer = AutoTokenizer.from_pretrained(resolve_base(["minilm"]).path)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    BertModel(config).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def recipe_file(tmp_path: Path, base: Path) -> Path:
    # Length grouping off: its mega-batches are cut by the per-process batch size, so one process
    # and two would visit the examples in different orders.
    recipe = {"name": "ddp", "base": str(base),
              "data": {"format": "phrasebank", "path": str(SAMPLE), "max_length": 64},
              "train": {"epochs": 2, "batch_size": BATCH, "lr": 5e-4, "seed": 7, "group_by_length": False,
                        "precision": "fp32", "early_stopping": {"metric": "macro_f1", "patience": 2}}}
    path = tmp_path / "ddp.yaml"
    path.write_text(json.dumps(recipe))  # JSON is YAML
    return path


def torchrun(recipe: Path, out: Path, *extra: str, fault: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT),
           "DOMAINFT_TEST_FAULT": fault}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "domainft",
           "run", str(recipe), "--set", f"output.dir={out}", "--quiet", "--code", str(FAULTS), *extra]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def two(tmp_path_factory, still_base):
    tmp = tmp_path_factory.mktemp("ddp")
    out = tmp / "run"
    proc = torchrun(recipe_file(tmp, still_base), out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_two_processes_train_one_model_on_halves_of_each_batch(two, still_base, tmp_path):
    out, proc = two
    m = json.loads((out / "metrics.json").read_text())
    d = m["train"]["distributed"]
    assert (d["world_size"], d["backend"], d["per_device_batch_size"], d["global_batch_size"]) == (2, "gloo", 8, 16)
    n = m["data"]["counts"]["train"]
    epochs = m["train"]["epochs_run"]
    # Each rank saw half of every epoch (the last uneven batch is evened out by repeating examples).
    for seen in d["examples_seen_per_rank"]:
        assert n * epochs / 2 <= seen <= n * epochs / 2 + 8 * epochs
    # One writer: the run directory printed once, by the main rank, and holding one run.
    assert proc.stdout.strip().splitlines() == [str(out)]
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "model", "recipe.yaml", "report"]

    one = quiet_run(_recipe(still_base, tmp_path / "one"))
    assert one.metrics["train"]["distributed"]["world_size"] == 1
    assert m["train"]["steps"] == one.metrics["train"]["steps"]
    assert m["validation"]["loss"] == pytest.approx(one.metrics["validation"]["loss"], abs=2e-3)
    np.testing.assert_allclose(load(out).logits(TEXTS), one.model.logits(TEXTS), atol=2e-3)


def _recipe(base: Path, out: Path):
    from domainft.recipe import Recipe

    return Recipe.from_yaml(recipe_file(out.parent, base), [f"output.dir={out}"])


def test_a_failure_on_one_rank_fails_the_run_and_nothing_looks_finished(still_base, tmp_path):
    out = tmp_path / "run"
    proc = torchrun(recipe_file(tmp_path, still_base), out, fault="evaluate_on_rank_1")
    assert proc.returncode != 0
    assert "injected failure on rank 1" in proc.stderr
    assert not (out / "metrics.json").exists() and not (out / "model").exists()


def test_resume_under_torchrun_continues_to_the_same_model(two, still_base, tmp_path):
    straight, _ = two
    recipe = recipe_file(tmp_path, still_base)
    out = tmp_path / "run"
    stopped = torchrun(recipe, out, fault="stop_after_first_save")
    assert stopped.returncode != 0 and not (out / "metrics.json").exists()
    assert list((out / "checkpoints").glob("checkpoint-*"))
    resumed = torchrun(recipe, out, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (out, straight))
    assert a["train"]["resumed"] and a["train"]["steps"] == b["train"]["steps"]
    assert a["validation"]["loss"] == pytest.approx(b["validation"]["loss"], abs=1e-5)
    np.testing.assert_allclose(load(out).logits(TEXTS), load(straight).logits(TEXTS), atol=1e-5)


def test_the_batch_size_must_split_over_the_processes(still_base, tmp_path):
    out = tmp_path / "run"
    proc = torchrun(recipe_file(tmp_path, still_base), out, "--set", "train.batch_size=15")
    assert proc.returncode != 0
    assert "train.batch_size: 15 does not split evenly over 2 processes" in proc.stderr
    assert not out.exists()


def test_a_held_output_dir_is_refused_on_every_rank_and_left_alone(still_base, tmp_path, monkeypatch):
    from domainft.locks import exclusive
    from domainft.rundir import run_lock_target

    monkeypatch.setenv("DOMAINFT_CACHE", str(tmp_path / "cache"))  # the ranks' cache, and this test's
    out = tmp_path / "run"
    with exclusive(run_lock_target(out), holder="the holder process"):  # as a run training into it does
        proc = torchrun(recipe_file(tmp_path, still_base), out)
    assert proc.returncode != 0
    assert "is in use by another domainft run (the holder process)" in proc.stderr
    assert "Traceback" not in proc.stderr.split("in use by another")[0]  # refused, not crashed
    assert not out.exists()
