"""The run directory: what `domainft run` writes, under which names, and how it is read back.

    RUN_DIR/
      recipe.yaml      the resolved recipe (written first; --resume compares against it)
      checkpoints/     the Trainer's checkpoints while training (removed at the end unless kept)
      model/           the trained model: method.save output, tokenizer, domainft.json (the manifest)
      metrics.json     written last: a run directory with it is finished
      onnx/            the exported bundle (`domainft export`, or export.enabled)
      merged/          generation runs: `domainft merge` output

Every write goes through here (atomic file writes, staged directories), so that crash safety and
multi-process training change this module only. The manifest is what prediction, export and merge
need to rebuild the model: task, labels, lengths, the tuning method's options, the base.
"""
from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from pathlib import Path

import yaml

from domainft.atomic import staged_dir, write_text
from domainft.errors import DomainftError
from domainft.methods import TuningMethod, get_method
from domainft.recipe import Recipe

RECIPE_FILE = "recipe.yaml"
METRICS_FILE = "metrics.json"
MODEL_DIR = "model"
CHECKPOINTS_DIR = "checkpoints"
BUNDLE_DIR = "onnx"
MERGED_DIR = "merged"
MANIFEST = "domainft.json"  # in model/ (and, with its own format, in an exported bundle)


class RunDir:
    """One run's directory and the files in it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # --- names ---------------------------------------------------------------------------
    @property
    def recipe_file(self) -> Path:
        return self.path / RECIPE_FILE

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def model_dir(self) -> Path:
        return self.path / MODEL_DIR

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    @property
    def bundle_dir(self) -> Path:
        return self.path / BUNDLE_DIR

    @property
    def merged_dir(self) -> Path:
        return self.path / MERGED_DIR

    # --- state ---------------------------------------------------------------------------
    def is_started(self) -> bool:
        return self.recipe_file.is_file()

    def is_finished(self) -> bool:
        return self.metrics_file.is_file()

    def holds_anything(self) -> bool:
        return self.path.exists() and any(self.path.iterdir())

    def last_checkpoint(self) -> str | None:
        from transformers.trainer_utils import get_last_checkpoint

        return get_last_checkpoint(str(self.checkpoints)) if self.checkpoints.is_dir() else None

    # --- reading -------------------------------------------------------------------------
    def read_recipe(self, command: str = "export") -> Recipe:
        """The recipe the run was started with, or an error naming the command."""
        if not self.recipe_file.is_file():
            raise DomainftError(f"{command}: {self.path} has no {RECIPE_FILE}; point at a run directory that "
                                "`domainft run` wrote")
        return Recipe.from_yaml(self.recipe_file)

    def read_recipe_dict(self) -> dict:
        return yaml.safe_load(self.recipe_file.read_text(encoding="utf-8"))

    def read_metrics(self) -> dict:
        return json.loads(self.metrics_file.read_text(encoding="utf-8")) if self.is_finished() else {}

    def check_for(self, recipe: Recipe, resume: bool) -> str | None:
        """Refuse to clobber a run by accident; on resume, check it is the same recipe and return
        the checkpoint to continue from. Nothing is written or removed here."""
        if resume:
            return self._checkpoint_to_resume(recipe)
        if self.holds_anything() and not recipe.output.overwrite:
            raise DomainftError(
                f"output.dir: {self.path} already holds a run. Use --resume to continue it, "
                "--set output.overwrite=true to replace it, or --set output.dir=... for a new one")
        return None

    def _checkpoint_to_resume(self, recipe: Recipe) -> str:
        if not self.is_started():
            raise DomainftError(f"--resume: {self.path} holds no run to resume (no {RECIPE_FILE}); "
                                "run without --resume to start it")
        if self.is_finished():
            raise DomainftError(f"--resume: the run in {self.path} already finished; "
                                "set output.overwrite=true to train it again")
        differences = _differences(self.read_recipe_dict(), recipe.to_dict())
        if differences:
            raise DomainftError(f"--resume: the recipe differs from the one {self.path} was started with "
                                f"({', '.join(differences)}); resume with the same recipe and overrides")
        checkpoint = self.last_checkpoint()
        if checkpoint is None:
            raise DomainftError(f"--resume: {self.path} has no checkpoint yet (the run stopped before "
                                "its first evaluation); run again without --resume")
        return checkpoint

    # --- writing -------------------------------------------------------------------------
    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    def clear(self) -> None:
        """output.overwrite: remove the earlier run before a new one starts."""
        shutil.rmtree(self.path)

    def write_recipe(self, recipe) -> None:
        write_text(self.recipe_file, recipe.to_yaml())

    def write_metrics(self, metrics: dict) -> None:
        write_text(self.metrics_file, json.dumps(metrics, indent=2) + "\n")

    @contextmanager
    def staged_model_dir(self):
        """A temporary directory that becomes model/ when the block succeeds."""
        with staged_dir(self.model_dir) as tmp:
            yield tmp

    def remove_checkpoints(self) -> None:
        shutil.rmtree(self.checkpoints, ignore_errors=True)


def write_manifest(model_dir: Path, manifest: dict) -> None:
    (Path(model_dir) / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def read_manifest(model_dir: Path) -> dict:
    return json.loads((Path(model_dir) / MANIFEST).read_text(encoding="utf-8"))


def model_dir_of(path: str | Path) -> Path:
    """Accept a run directory or its model/ directory."""
    path = Path(path)
    for candidate in (path, path / MODEL_DIR):
        if (candidate / MANIFEST).is_file():
            return candidate
    raise DomainftError(f"{path}: not a domainft run or model directory (no {MANIFEST} in it or in "
                        f"{path / MODEL_DIR}); point at the run directory that `domainft run` printed")


def run_dir_of(path: str | Path) -> RunDir:
    """The run a run directory or its model/ directory belongs to."""
    return RunDir(model_dir_of(path).parent)


def method_from_manifest(manifest: dict) -> TuningMethod:
    """The tuning method, with its options, that trained the model the manifest describes."""
    tuning = manifest["tuning"]
    return get_method(tuning["method"]).from_tuning(tuning)


def _differences(a, b, prefix: str = "") -> list[str]:
    """Dotted paths where two recipe dicts differ, leaving out what does not change training."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if (key == "overwrite" and prefix == "output.") or (key == "export" and not prefix):
                continue  # neither changes training (export runs after it)
            out += _differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]
