"""Small single-purpose Trainer callbacks: strict early stopping, a readable progress line,
wall-clock stamps on the training history, and a progress file beside the checkpoints."""
from __future__ import annotations

import json
import time
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState, ProgressCallback

from domainft.errors import DomainftError


class EarlyStopping(TrainerCallback, ExportableState):
    """Stop when `metric` has not improved by more than `min_delta` for `patience` evaluations.

    Strict: a metric missing from the evaluation is an error, not a silent no-op. Its state is
    saved in every checkpoint's trainer_state.json and restored on resume.
    """

    def __init__(self, metric: str, greater_is_better: bool, patience: int, min_delta: float = 0.0):
        self.metric = metric
        self.greater_is_better = greater_is_better
        self.patience = patience
        self.min_delta = min_delta
        self.best: float | None = None
        self.wait = 0

    def improved(self, value: float) -> bool:
        if self.best is None:
            return True
        delta = value - self.best if self.greater_is_better else self.best - value
        return delta > self.min_delta

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if state.global_step == 0:
            return  # the untrained model (eval_on_start): a reference; the Trainer cannot restore it
        key = f"eval_{self.metric}"
        if key not in (metrics or {}):
            raise DomainftError(f"early stopping: evaluation reported no {self.metric!r} "
                                f"(it reported {', '.join(sorted(metrics or {}))})")
        value = metrics[key]
        if self.improved(value):
            self.best, self.wait = value, 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                control.should_training_stop = True

    def state(self) -> dict:
        return {
            "args": {"metric": self.metric, "greater_is_better": self.greater_is_better,
                     "patience": self.patience, "min_delta": self.min_delta},
            "attributes": {"best": self.best, "wait": self.wait},
        }


class ElapsedTime(TrainerCallback):
    """Every log entry (training loss, evaluation) gets `elapsed_s`: seconds since training started
    in this process, so the history says when a score was reached, not only at which step. A
    resumed run counts from its resumption."""

    def __init__(self):
        self.started: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        # The Trainer has just appended (a copy of) `logs` to the history.
        if state.log_history and self.started is not None:
            state.log_history[-1]["elapsed_s"] = round(time.perf_counter() - self.started, 2)


class ProgressFile(TrainerCallback):
    """At every checkpoint, a JSON file of what a resumed job needs and the Trainer does not keep: the
    seconds spent up to that checkpoint (over every attempt) and `facts` the job adds (the
    MLM head warm-up's result). With `resume`, the file an earlier attempt left is read back first."""

    def __init__(self, path: Path, started: float, resume: bool):
        self.path, self.started = Path(path), started
        self.facts = json.loads(self.path.read_text(encoding="utf-8")) if resume and self.path.is_file() else {}

    def seconds(self) -> float:
        """Seconds of the earlier attempts (up to the checkpoint this one continued from) and this one."""
        return self.facts.get("seconds", 0.0) + time.perf_counter() - self.started

    def on_save(self, args, state, control, **kwargs):
        from domainft.atomic import write_text

        if not state.is_world_process_zero:  # one writer, as for the checkpoint itself
            return
        write_text(self.path, json.dumps({**self.facts, "seconds": self.seconds()}))


SHOWN = ("loss", "accuracy", "macro_f1", "mse", "pearson", "perplexity", "exact_match", "token_f1")


class EvalReport(TrainerCallback):
    """One line per evaluation instead of the Trainer's raw dicts."""

    def __init__(self, metric: str, echo=print):
        self.metric = metric
        self.echo = echo
        self.last_train_loss: float | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.last_train_loss = logs["loss"]

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        metrics = metrics or {}
        shown = [f"{name} {metrics[f'eval_{name}']:.4f}" for name in SHOWN if f"eval_{name}" in metrics]
        if self.metric not in SHOWN and f"eval_{self.metric}" in metrics:
            shown.append(f"{self.metric} {metrics[f'eval_{self.metric}']:.4f}")
        train = f"train loss {self.last_train_loss:.4f} | " if self.last_train_loss is not None else ""
        when = "before training" if state.global_step == 0 else f"epoch {state.epoch:.2f} step {state.global_step}"
        self.echo(f"{when}: {train}validation " + ", ".join(shown))


class QuietProgressCallback(ProgressCallback):
    """The training progress bar, without evaluation bars or raw log dicts under it."""

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        pass

    def on_log(self, args, state, control, logs=None, **kwargs):
        pass
