"""What a launch decides and checks before training: the precision (recorded, measured on CPUs
that advertise bf16), trackers and DeepSpeed / FSDP settings (each missing piece a message with
nothing written), and a quiet console."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_pipeline import TEXTS, quiet_run
from typer.testing import CliRunner

from domainft import __version__
from domainft import precision as precision_module
from domainft.cli import app
from domainft.errors import DomainftError, RecipeError
from domainft.model import load
from domainft.precision import choose_precision, measure_bf16_speedup

from conftest import ROOT


def test_fp32_is_recorded(make_recipe):
    m = quiet_run(make_recipe({"train.epochs": 1, "train.precision": "fp32"})).metrics
    assert m["train"]["precision"] == {"requested": "fp32", "used": "fp32", "reason": "as the recipe says"}


def test_bf16_trains_on_a_cpu_and_the_returned_model_answers_as_it_reloads(make_recipe):
    result = quiet_run(make_recipe({"train.epochs": 1, "train.precision": "bf16"}))
    assert result.metrics["train"]["precision"]["used"] == "bf16"
    assert math.isfinite(result.metrics["validation"]["loss"])
    # No autocast wrapper left on the trained model's forward: fp32, as saved.
    np.testing.assert_allclose(result.model.logits(TEXTS), load(result.run_dir).logits(TEXTS), atol=1e-6)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CPU-only check")
def test_fp16_on_a_cpu_is_refused_before_anything_is_written(make_recipe):
    recipe = make_recipe({"train.precision": "fp16"})
    with pytest.raises(DomainftError, match="train.precision: fp16 mixed precision needs a CUDA GPU"):
        quiet_run(recipe)
    assert not recipe.run_dir.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CPU-only check")
def test_auto_on_a_cpu_without_bf16_instructions_is_fp32(monkeypatch):
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: {"avx2", "fma"})
    p = choose_precision("auto", model=object(), sample_batch=lambda: pytest.fail("nothing to measure"))
    assert (p.used, p.reason) == ("fp32", "auto on a CPU without bf16 instructions")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CPU-only check")
@pytest.mark.parametrize("speedup, used", [(1.6, "bf16"), (1.05, "fp32"), (0.58, "fp32")])
# With AMX and without: bf16 steps measured 2.3x as fast as fp32 on an AVX512-BF16 AMD EPYC without
# AMX and 0.7x on an AVX512-BF16 Intel Xeon without it, so the flags alone decide nothing.
@pytest.mark.parametrize("flags", [{"avx512_bf16", "amx_bf16"}, {"avx512_bf16", "avx512_vnni"}])
def test_auto_on_a_bf16_cpu_keeps_bf16_only_when_measured_clearly_faster(monkeypatch, tmp_path, speedup, used,
                                                                        flags):
    monkeypatch.setenv("DOMAINFT_CACHE", str(tmp_path))
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: flags)
    monkeypatch.setattr(precision_module, "measure_bf16_speedup", lambda model, batch: speedup)
    p = choose_precision("auto", model=torch.nn.Linear(2, 2), sample_batch=dict)
    assert p.used == used and p.bf16_speedup == speedup
    assert f"{speedup:.2f}x" in p.reason


def test_an_fp32_training_after_a_bf16_one_in_the_same_process_trains_in_fp32(monkeypatch, tmp_path):
    """TrainingArguments(bf16=True) leaves ACCELERATE_MIXED_PRECISION=bf16 in the process and a later
    TrainingArguments without bf16 obeys it: the second Trainer would autocast while the run reports
    fp32. Each training's arguments set the variable to the precision decided for it."""
    from transformers import Trainer, TrainingArguments

    from domainft.precision import Precision, mixed_precision_arguments

    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "no")  # put back after the test
    used = []
    for name in ("bf16", "fp32", "bf16"):
        flags = mixed_precision_arguments(Precision(name, name, "as the recipe says"))
        args = TrainingArguments(str(tmp_path), use_cpu=True, report_to=[], **flags)
        used.append(Trainer(model=torch.nn.Linear(2, 2), args=args).accelerator.mixed_precision)
    assert used == ["bf16", "no", "bf16"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CPU-only check")
def test_the_measurement_is_remembered_so_a_machine_decides_alike_every_run(monkeypatch, tmp_path):
    monkeypatch.setenv("DOMAINFT_CACHE", str(tmp_path))
    monkeypatch.setattr(precision_module, "cpu_flags", lambda: {"avx512_bf16", "amx_bf16"})
    timings = iter([1.3, 0.9])
    monkeypatch.setattr(precision_module, "measure_bf16_speedup", lambda model, batch: next(timings))
    first, again = (choose_precision("auto", model=torch.nn.Linear(2, 2), sample_batch=dict) for _ in range(2))
    assert first.used == again.used == "bf16" and again.bf16_speedup == 1.3
    assert "measured earlier on this machine" in again.reason


def test_the_measurement_leaves_the_model_and_the_random_numbers_as_they_were(tiny_base):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_base, num_labels=3).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ids = torch.randint(1000, 2000, (4, 12))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor([0, 1, 2, 0])}
    rng = torch.get_rng_state()
    assert measure_bf16_speedup(model, batch) > 0
    assert torch.equal(torch.get_rng_state(), rng)
    assert not model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_tensorboard_writes_event_files_into_the_run(make_recipe):
    pytest.importorskip("tensorboard")
    result = quiet_run(make_recipe({"train.epochs": 1, "train.report_to": "tensorboard", "train.logging_steps": 2}))
    assert list((result.run_dir / "logs").rglob("events.out.tfevents.*"))
    assert result.recipe.train.report_to == ["tensorboard"]


def test_a_tracker_that_is_not_installed_says_so_and_writes_nothing(make_recipe, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else find_spec(name, *a))
    recipe = make_recipe({"train.report_to": ["mlflow"]})
    with pytest.raises(DomainftError, match=r"train.report_to: mlflow is not installed; `pip install mlflow`"):
        quiet_run(recipe)
    assert not recipe.run_dir.exists()


def test_report_to_none_is_no_tracker(make_recipe):
    assert make_recipe({"train.report_to": "none"}).train.report_to == []
    with pytest.raises(RecipeError, match="train.report_to"):
        make_recipe({"train.report_to": ["comet"]})


def test_a_deepspeed_config_must_exist_and_be_json(make_recipe, tmp_path):
    with pytest.raises(RecipeError, match=r"train.deepspeed.*is not a file"):
        make_recipe({"train.deepspeed": str(tmp_path / "ds.json")})
    bad = tmp_path / "bad.json"
    bad.write_text("{zero: 2")
    with pytest.raises(RecipeError, match=r"train.deepspeed.*is not valid JSON"):
        make_recipe({"train.deepspeed": str(bad)})


def test_deepspeed_missing_is_a_message_before_anything_is_written(make_recipe, tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "deepspeed" else find_spec(name, *a))
    config = tmp_path / "ds.json"
    config.write_text(json.dumps({"zero_optimization": {"stage": 2}, "train_micro_batch_size_per_gpu": "auto"}))
    recipe = make_recipe({"train.deepspeed": str(config)})
    with pytest.raises(DomainftError, match=r"train.deepspeed: DeepSpeed is not installed; `pip install deepspeed`"):
        quiet_run(recipe)
    assert not recipe.run_dir.exists()


def test_fsdp_options_are_checked(make_recipe):
    assert make_recipe({"train.fsdp": "full_shard auto_wrap"}).train.fsdp == "full_shard auto_wrap"
    with pytest.raises(RecipeError, match=r"train.fsdp.*unknown FSDP option full_shrad"):
        make_recipe({"train.fsdp": "full_shrad"})


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"domainft {__version__}"


def test_encoder_runs_print_no_bitsandbytes_kernel_warning():
    # Importing the Trainer imports bitsandbytes when it is installed; on AVX512-BF16 CPUs its import
    # warns about an optional 4-bit kernel that encoder runs never use.
    proc = subprocess.run([sys.executable, "-c", "import domainft.pipeline, transformers.trainer, peft"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "gemm_4bit_forward" not in proc.stderr
