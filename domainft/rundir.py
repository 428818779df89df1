"""The run directory: what `domainft run` writes, under which names, and how it is read back.

    RUN_DIR/
      recipe.yaml      the resolved recipe (written first; --resume compares against it)
      checkpoints/     the Trainer's checkpoints while training (removed at the end unless kept),
                       and training_done.json once training has ended
      model/           the trained model: method.save output, tokenizer, domainft.json (the manifest)
      report/          PNG plots drawn from metrics.json's content (plots.py), written just before it
      metrics.json     written last: a run directory with it is finished
      onnx/            the exported bundle (`domainft export`, or export.enabled)
      merged/          generation runs: `domainft merge` output
      logs/            trackers' files (TensorBoard event files) when train.report_to names one

Every write goes through here (atomic file writes, staged directories), so that crash safety and
multi-process training change this module only. What it promises: a kill at any moment leaves
either the previous state or the next one (files are replaced atomically, model/ and bundles
appear complete or not at all, half-written checkpoints are never resumed from); `--resume` continues
from the last complete checkpoint, or, when training had ended, evaluates and saves without
training again; output.overwrite replaces only a directory domainft wrote, and only once the new
run is complete; one run at a time writes a run directory (run_lock). The manifest is what
prediction, export and merge need to rebuild the model: task, labels, lengths, the tuning method's
options, the base.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from domainft import distributed
from domainft.atomic import replace_dir, staged_dir, write_text
from domainft.errors import DomainftError
from domainft.gguf import cache_dir
from domainft.locks import Busy, exclusive
from domainft.methods import TuningMethod, get_method
from domainft.recipe import Recipe
from domainft.serving import BUNDLE_DIR

RECIPE_FILE = "recipe.yaml"
METRICS_FILE = "metrics.json"
MODEL_DIR = "model"
CHECKPOINTS_DIR = "checkpoints"
MERGED_DIR = "merged"
LOGS_DIR = "logs"  # trackers' files (TensorBoard event files), when train.report_to names one
REPORT_DIR = "report"
MANIFEST = "domainft.json"  # in model/ (and, with its own format, in an exported bundle)
DONE_FILE = "training_done.json"  # in checkpoints/: training ended; the best checkpoint is named there
FINAL_STATE_FILE = "final_trainer_state.json"  # in checkpoints/: the Trainer's state when training ended
STAGING_SUFFIX = ".new"  # hidden sibling where a run that replaces an earlier one is built
OWN_NAMES = {RECIPE_FILE, METRICS_FILE, MODEL_DIR, CHECKPOINTS_DIR, BUNDLE_DIR, MERGED_DIR, LOGS_DIR,
             REPORT_DIR}


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

    @property
    def logs_dir(self) -> Path:
        return self.path / LOGS_DIR

    @property
    def report_dir(self) -> Path:
        return self.path / REPORT_DIR

    # --- state ---------------------------------------------------------------------------
    def is_started(self) -> bool:
        return self.recipe_file.is_file()

    def is_finished(self) -> bool:
        return self.metrics_file.is_file()

    def holds_anything(self) -> bool:
        return self.path.is_dir() and any(self.path.iterdir())

    def foreign_entries(self) -> list[str]:
        """Entries domainft never writes into a run directory: such a directory is not replaced."""
        if not self.path.is_dir():
            return []
        return sorted(e.name for e in self.path.iterdir()
                      if e.name not in OWN_NAMES and not (e.name.startswith(".") and e.name.endswith(".tmp")))

    def checkpoints_found(self) -> tuple[list[Path], list[Path]]:
        """(complete, incomplete) checkpoint directories, oldest first. A checkpoint is complete
        once the Trainer has written its trainer_state.json, the last file it writes, and that file
        reads back with the step its directory is named for; a kill -9 during a save leaves one
        without it."""
        complete, incomplete = [], []
        if not self.checkpoints.is_dir():
            return complete, incomplete
        for d in sorted(self.checkpoints.glob("checkpoint-*"), key=checkpoint_step):
            (complete if _is_complete(d) else incomplete).append(d)
        return complete, incomplete

    def last_checkpoint(self) -> str | None:
        complete, _ = self.checkpoints_found()
        return str(complete[-1]) if complete else None

    def training_done(self) -> dict | None:
        """What train() recorded when training ended (a failure after it resumes from here)."""
        if not self.done_file.is_file():
            return None
        try:
            done = json.loads(self.done_file.read_text(encoding="utf-8"))
        except ValueError:
            return None
        best = done.get("best_checkpoint")
        return done if best and Path(best).is_dir() and Path(done.get("state") or "").is_file() else None

    @property
    def done_file(self) -> Path:
        return self.checkpoints / DONE_FILE

    @property
    def final_state_file(self) -> Path:
        return self.checkpoints / FINAL_STATE_FILE

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

    # --- writing -------------------------------------------------------------------------
    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    def write_recipe(self, recipe) -> None:
        write_text(self.recipe_file, recipe.to_yaml())

    def write_metrics(self, metrics: dict) -> None:
        write_text(self.metrics_file, json.dumps(metrics, indent=2) + "\n")

    def write_training_done(self, done: dict) -> None:
        write_text(self.done_file, json.dumps(done, indent=2) + "\n")

    @contextmanager
    def staged_model_dir(self):
        """A temporary directory that becomes model/ when the block succeeds."""
        with staged_dir(self.model_dir) as tmp:
            yield tmp

    @contextmanager
    def staged_report_dir(self):
        """A temporary directory that becomes report/ when the block succeeds."""
        with staged_dir(self.report_dir) as tmp:
            yield tmp

    def remove_checkpoints(self) -> None:
        shutil.rmtree(self.checkpoints, ignore_errors=True)

    def remove_incomplete_checkpoints(self) -> list[Path]:
        """Checkpoints a kill left half-written (domainft's own files): removed before resuming, so
        neither --resume nor the Trainer's rotation ever reads one."""
        _, incomplete = self.checkpoints_found()
        for d in incomplete:
            shutil.rmtree(d, ignore_errors=True)
        return incomplete


@dataclass
class RunPlan:
    """Where a run writes and what it continues from: what plan_run found, before anything is
    written. `work` is `final`, except when output.overwrite replaces a finished run: then the new
    run is built in a hidden sibling and replaces the old one only once it is complete."""

    final: RunDir
    work: RunDir
    resume: bool = False
    checkpoint: str | None = None  # the Trainer checkpoint to continue training from
    trained: dict | None = None  # training had finished (write_training_done): evaluate and save only
    export_only: bool = False  # the run finished; only the export the recipe asks for is missing

    @property
    def replaces(self) -> bool:
        return self.work.path != self.final.path

    def start(self, recipe: Recipe) -> None:
        """Once every check has passed: the working directory and its recipe.yaml."""
        if self.replaces and not self.resume:
            shutil.rmtree(self.work.path, ignore_errors=True)  # an earlier replacement that never finished
        self.work.create()
        if not self.resume:
            self.work.write_recipe(recipe)

    def finish(self) -> None:
        """A replacing run is complete: it takes the old run's place (the old one is removed last)."""
        if not self.replaces:
            return
        replace_dir(self.work.path, self.final.path)
        self.work = self.final


@contextmanager
def run_lock(run_dir: Path, wait: bool = False, echo=print):
    """Hold run_dir for one run (one launch: the main rank locks, for every rank). A second
    `domainft run` into the same output.dir (a second terminal, a resumed run while the first still
    trains) is refused with the holder named, before it reads or writes anything there; with
    wait=True (a distillation's teacher, shared by concurrent students) it waits, then goes on."""
    refusal = None
    with ExitStack() as held:
        if distributed.is_main():
            refusal = _take_run_lock(held, run_dir, wait, echo)
        refusal = distributed.gather(refusal)[0]
        if refusal:
            raise DomainftError(refusal)
        yield


@contextmanager
def reading_run(run_dir: Path, command: str):
    """Hold run_dir's run lock while `command` (an export) reads the run, in this process alone: a
    `domainft run` replacing or resuming it now would otherwise swap the model out from under the
    export, and publish the bundle into the run it removes. Refused at once, the run named. A cache
    where no lock can be taken does not stop the command: the lock guards, it never was required."""
    with ExitStack() as held:
        try:
            held.enter_context(exclusive(run_lock_target(run_dir), wait=False, holder=_holder()))
        except Busy as busy:
            raise DomainftError(f"{command}: {run_dir} is in use by a domainft run ({busy.holder}); {command} it "
                                "once that run has ended") from None
        except OSError:
            pass
        yield


def _holder() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}"


def run_lock_target(run_dir: Path) -> Path:
    """What a run directory's lock is taken on: a name in the cache, by the directory's absolute
    path, so that taking it writes nothing beside the user's files (a refused run leaves them as
    they were, modification times included)."""
    key = hashlib.sha256(str(Path(run_dir).resolve()).encode("utf-8")).hexdigest()[:16]
    return cache_dir() / "locks" / f"run-{key}"


def _take_run_lock(held: ExitStack, run_dir: Path, wait: bool, echo) -> str | None:
    holder = _holder()
    target = run_lock_target(run_dir)
    try:
        held.enter_context(exclusive(target, wait=False, holder=holder))
    except Busy as busy:
        if not wait:
            return (f"output.dir: {run_dir} is in use by another domainft run ({busy.holder}). Wait for it to "
                    "end, or --set output.dir=... to run into another directory")
        echo(f"{run_dir}: waiting for the domainft run that holds it ({busy.holder})")
        held.enter_context(exclusive(target, wait=True, holder=holder))
    except OSError as e:
        return (f"cannot take the lock of {run_dir} in {target.parent} ({e.strerror}); set DOMAINFT_CACHE to a "
                "writable directory")
    return None


def staging_path(run_dir: Path) -> Path:
    """The hidden sibling where a run replacing the one in run_dir is built until it is complete."""
    return run_dir.with_name(f".{run_dir.name}{STAGING_SUFFIX}")


def plan_run(recipe: Recipe, resume: bool) -> RunPlan:
    """Check the run directory against the recipe and --resume; nothing is written or removed.
    Refuses to clobber a run by accident, to replace a directory domainft did not write, and to
    resume with another recipe."""
    final = RunDir(recipe.run_dir)  # not a file: the recipe's own validation checked it
    staging = RunDir(staging_path(final.path))
    if resume:
        return _plan_resume(recipe, final, staging)
    if not final.holds_anything():
        return RunPlan(final, final)
    foreign = final.foreign_entries()
    listed = f"{', '.join(foreign[:5])}{' ...' if len(foreign) > 5 else ''}"
    if not recipe.output.overwrite:
        if foreign:  # the user's own files (a data folder given as output.dir): not "a run"
            raise DomainftError(f"output.dir: {final.path} holds {listed}, which domainft did not write; it is not "
                                "a run directory. Choose a new or empty output.dir")
        raise DomainftError(
            f"output.dir: {final.path} already holds a run. Use --resume to continue it, "
            "--set output.overwrite=true to replace it, or --set output.dir=... for a new one")
    if foreign:
        raise _not_a_run(final, f"holds {listed}, which")
    if not final.is_started():
        raise _not_a_run(final, f"has no {RECIPE_FILE}, so it")
    return RunPlan(final, staging)


def _not_a_run(final: RunDir, what: str) -> DomainftError:
    return DomainftError(f"output.overwrite: {final.path} {what} domainft did not write; only a run directory "
                         "is replaced. Choose another output.dir, or move those files away")


def _plan_resume(recipe: Recipe, final: RunDir, staging: RunDir) -> RunPlan:
    # An overwriting run interrupted before it was complete continues in its hidden directory.
    work = staging if recipe.output.overwrite and staging.is_started() else final
    if not work.is_started():
        raise DomainftError(f"--resume: {work.path} holds no run to resume (no {RECIPE_FILE}); "
                            "run without --resume to start it")
    differences = _differences(work.read_recipe_dict(), recipe.to_dict())
    if differences:
        raise DomainftError(f"--resume: the recipe differs from the one {work.path} was started with "
                            f"({', '.join(differences)}); resume with the same recipe and overrides")
    if work.is_finished():
        if recipe.export.enabled and "export" not in work.read_metrics():
            return RunPlan(final, work, resume=True, export_only=True)
        raise DomainftError(f"--resume: the run in {work.path} already finished; "
                            "set output.overwrite=true to train it again")
    trained = work.training_done()
    # No complete checkpoint yet (stopped before its first save finished): training starts over,
    # which with the recipe's seed is the run it would have been.
    checkpoint = trained["best_checkpoint"] if trained else work.last_checkpoint()
    return RunPlan(final, work, resume=True, checkpoint=checkpoint, trained=trained)


def checkpoint_step(path: str | Path) -> int:
    """The step a checkpoint-<step> directory is named for (-1 if it is not so named)."""
    tail = Path(path).name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


def _is_complete(checkpoint: Path) -> bool:
    try:
        state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return state.get("global_step") == checkpoint_step(checkpoint)


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
