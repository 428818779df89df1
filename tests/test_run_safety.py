"""Nothing lost, nothing half-done: resume skips what a kill left half-written and finishes what
training left unsaved, overwrite replaces only a run and only once the new one is complete,
export never replaces what is not a bundle."""
import json
import re

import numpy as np
import pytest
from test_pipeline import TEXTS, Interrupt, StopAfterFirstSave, quiet_run
from transformers import TrainerCallback
from typer.testing import CliRunner

from domainft import run as run_recipe
from domainft.cli import app
from domainft.errors import DataError, DomainftError
from domainft.rundir import RunDir
from domainft.tasks.classification import ClassificationTask

from conftest import ROOT


def snapshot(path):
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(path.rglob("*"))} if path.exists() else None


@pytest.fixture
def straight(make_recipe, tmp_path):
    """The uninterrupted run every resumed one must equal."""
    return quiet_run(make_recipe({"train.epochs": 3, "output.dir": str(tmp_path / "straight")}))


def interrupted(make_recipe, tmp_path, name="resumed"):
    recipe = make_recipe({"train.epochs": 3, "output.dir": str(tmp_path / name)})
    with pytest.raises(Interrupt):
        quiet_run(recipe, callbacks=[StopAfterFirstSave()])
    return recipe


def test_resume_skips_a_half_written_checkpoint(make_recipe, tmp_path, straight):
    recipe = interrupted(make_recipe, tmp_path)
    run = RunDir(recipe.run_dir)
    [complete] = run.checkpoints_found()[0]
    # What a kill -9 during the next save leaves: weights and a truncated optimizer, no trainer state.
    half = run.checkpoints / f"checkpoint-{int(complete.name.split('-')[1]) * 2}"
    half.mkdir()
    (half / "model.safetensors").write_bytes((complete / "model.safetensors").read_bytes())
    (half / "optimizer.pt").write_bytes((complete / "optimizer.pt").read_bytes()[:1000])
    assert run.last_checkpoint() == str(complete)
    resumed = quiet_run(recipe, resume=True)
    assert resumed.metrics["test"] == straight.metrics["test"]
    np.testing.assert_allclose(resumed.model.logits(TEXTS), straight.model.logits(TEXTS), atol=1e-6)


def test_a_failure_after_training_keeps_it_and_resume_only_evaluates_and_saves(make_recipe, tmp_path, straight,
                                                                             monkeypatch):
    recipe = make_recipe({"train.epochs": 3, "output.dir": str(tmp_path / "resumed")})

    def broken(*args, **kwargs):
        raise RuntimeError("evaluation failed")

    with monkeypatch.context() as m:
        m.setattr(ClassificationTask, "report", broken)
        with pytest.raises(RuntimeError, match="evaluation failed"):
            quiet_run(recipe)
    run = RunDir(recipe.run_dir)
    assert run.training_done() is not None and not run.model_dir.exists() and not run.is_finished()
    lines = []
    resumed = run_recipe(recipe, resume=True, progress=False, echo=lines.append)
    assert any("training had finished" in line for line in lines)
    assert resumed.metrics["train"]["steps"] == straight.metrics["train"]["steps"]
    assert resumed.metrics["train"]["best_step"] == straight.metrics["train"]["best_step"]
    assert resumed.metrics["test"] == straight.metrics["test"]
    assert resumed.metrics["validation"] == straight.metrics["validation"]
    assert not run.checkpoints.exists()  # removed once the run is saved, as after any run


def test_overwrite_keeps_the_old_run_when_the_new_one_fails_its_checks(make_recipe, tmp_path, straight):
    before = snapshot(straight.run_dir)
    bad = make_recipe({"output.dir": str(straight.run_dir), "output.overwrite": True,
                       "data.path": str(tmp_path / "missing.txt")})
    with pytest.raises(DataError):
        quiet_run(bad)
    assert snapshot(straight.run_dir) == before


def test_overwrite_replaces_only_a_directory_domainft_wrote(make_recipe, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    before = snapshot(mine)
    with pytest.raises(DomainftError, match=r"output.overwrite: .*mine holds notes.txt, which domainft did not write"):
        quiet_run(make_recipe({"output.dir": str(mine), "output.overwrite": True}))
    assert snapshot(mine) == before


def test_overwrite_keeps_the_old_run_until_the_new_one_is_complete(make_recipe, tmp_path, straight):
    before = snapshot(straight.run_dir)
    recipe = make_recipe({"train.epochs": 3, "train.lr": 1e-3, "output.dir": str(straight.run_dir),
                          "output.overwrite": True})
    with pytest.raises(Interrupt):
        quiet_run(recipe, callbacks=[StopAfterFirstSave()])
    assert snapshot(straight.run_dir) == before  # the old run, untouched, while the new one is unfinished
    replaced = quiet_run(recipe, resume=True)  # continues the replacement where it stopped
    assert replaced.run_dir == straight.run_dir
    assert json.loads((straight.run_dir / "metrics.json").read_text())["train"]["lr"] == 1e-3
    assert sorted(p.name for p in straight.run_dir.parent.iterdir() if p.name.startswith(".")) == []


def test_export_refuses_to_replace_what_is_not_a_bundle(make_recipe, tmp_path):
    result = quiet_run(make_recipe({"train.epochs": 1}))
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "data.csv").write_text("a,b\n")
    runner = CliRunner()
    for out, message in [(keep, "holds files that are not an earlier bundle"),
                         (result.run_dir, "is \\(or holds\\) the run"),
                         (result.run_dir.parent, "is \\(or holds\\) the run"),
                         (result.run_dir / "model", "is \\(or holds\\) the run")]:
        before = snapshot(tmp_path)
        outcome = runner.invoke(app, ["export", str(result.run_dir), "--out", str(out)])
        assert outcome.exit_code == 2 and "Traceback" not in outcome.output
        assert re.search(message, " ".join(outcome.output.split())), outcome.output
        assert snapshot(tmp_path) == before


def test_ner_with_a_lexicon_evaluates_test_on_its_own_windows(tiny_base, tmp_path):
    """The test split was scored with the validation split's word windows (an IndexError when
    validation holds longer rows, as with the medical lexicon)."""
    from domainft.recipe import Recipe

    recipe = Recipe.from_yaml(ROOT / "recipes" / "medical_ner.yaml", [
        f"base={tiny_base}", f"output.dir={tmp_path / 'lex'}", f"lexicon=[{ROOT / 'lexicons' / 'medical.txt'}]",
        f"data.path={ROOT / 'data' / 'medical_ner'}", "train.epochs=1"])
    result = run_recipe(recipe, progress=False, echo=lambda *a: None)
    assert result.metrics["test"]["n"] > 0 and "f1" in result.metrics["test"]


class StopAtStep(TrainerCallback):
    """A kill right after the checkpoint of `step` is saved."""

    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            raise Interrupt()


def test_resume_mid_epoch_with_length_grouped_batches_is_exact(make_recipe, tmp_path):
    """The default sampler groups texts by length from the global RNG: a resume inside a later
    epoch (step 20 of 45, in epoch 2) must still see the batches the uninterrupted run saw."""
    settings = {"train.epochs": 3, "train.eval_every": 5, "train.group_by_length": True,
                "train.early_stopping.enabled": False}
    straight = quiet_run(make_recipe({**settings, "output.dir": str(tmp_path / "straight")}))
    recipe = make_recipe({**settings, "output.dir": str(tmp_path / "resumed")})
    with pytest.raises(Interrupt):
        quiet_run(recipe, callbacks=[StopAtStep(20)])
    resumed = quiet_run(recipe, resume=True)
    assert resumed.metrics["train"]["resumed"] and resumed.metrics["test"] == straight.metrics["test"]
    np.testing.assert_allclose(resumed.model.logits(TEXTS), straight.model.logits(TEXTS), atol=1e-6)


def test_a_full_disk_mid_training_says_so_and_resume_finishes_the_run(make_recipe, tmp_path, straight, monkeypatch):
    """What torch.save raises when the disk fills during a checkpoint (it names no cause): the run says
    the disk is full and what to do, and once there is room --resume gives the uninterrupted result."""
    import shutil

    from transformers import Trainer

    recipe = make_recipe({"train.epochs": 3, "output.dir": str(tmp_path / "resumed")})
    real_save, real_usage = Trainer._save_checkpoint, shutil.disk_usage
    saved = []

    def save_until_full(self, *args, **kwargs):
        if saved:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
        saved.append(real_save(self, *args, **kwargs))

    def usage(path):  # the run's disk is full; the cache's is not
        found = real_usage(path)
        return found._replace(free=4096) if str(path).startswith(str(tmp_path)) else found

    with monkeypatch.context() as m:
        m.setattr(Trainer, "_save_checkpoint", save_until_full)
        m.setattr(shutil, "disk_usage", usage)
        with pytest.raises(DomainftError, match=r"no space left on the disk of .*resumed \(0\.0 MiB free; "
                                                r"RuntimeError: .*unexpected pos.*\)\. Free some space, then "
                                                r"continue with --resume"):
            quiet_run(recipe)
    resumed = quiet_run(recipe, resume=True)
    assert resumed.metrics["test"] == straight.metrics["test"]


def test_an_export_onto_a_full_disk_says_so_and_leaves_nothing(make_recipe, tmp_path, monkeypatch):
    import errno

    from domainft import export

    run = quiet_run(make_recipe())

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export, "to_onnx", full)
    out = tmp_path / "bundle"
    result = CliRunner().invoke(app, ["export", str(run.run_dir), "--out", str(out)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert re.search(r"no space left on the disk of .*bundle .*Free some space, then export again", result.output)
    assert not out.exists() and not any(p.name.startswith(".bundle") for p in tmp_path.iterdir())


def test_only_a_full_disk_is_called_one(tmp_path):
    from domainft.errors import full_disk

    assert full_disk(RuntimeError("size mismatch for classifier.weight"), [tmp_path]) is None  # a bug stays a bug
    assert full_disk(OSError(28, "No space left on device"), [tmp_path])[0] == str(tmp_path)
    try:
        try:
            raise OSError(122, "Disk quota exceeded")
        except OSError as quota:
            raise RuntimeError("saving failed") from quota
    except RuntimeError as wrapped:
        assert full_disk(wrapped, [tmp_path / "not" / "made" / "yet"])[0] == str(tmp_path / "not" / "made" / "yet")
    said = Exception("Error while serializing: I/O error: No space left on device (os error 28)")  # safetensors
    assert full_disk(said, [tmp_path]) is not None


@pytest.mark.parametrize("command", ["adapt", "merge"])
def test_an_adaptation_or_merge_onto_a_full_disk_says_so(command, make_recipe, tmp_path, monkeypatch):
    import errno

    from domainft import adapt, merge

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(adapt, "adapted_base", full)
    monkeypatch.setattr(merge, "merge_run", full)
    monkeypatch.setenv("DOMAINFT_CACHE", str(tmp_path / "cache"))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(make_recipe({"adapt.task_texts": True}).to_yaml(), encoding="utf-8")
    args = ["adapt", str(recipe)] if command == "adapt" else ["merge", str(tmp_path / "run")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    then = "run the same command again" if command == "adapt" else "merge again"
    assert re.search(rf"no space left on the disk of .*No space left on device\)\. Free some space, then {then}",
                     " ".join(result.output.split()))
