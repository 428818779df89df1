"""`run`: prepare -> train -> evaluate -> save (-> export), each a function of its own.

    recipe -> data -> tokenizer + lexicon -> base + head + method  (prepare.py)
           -> Trainer with early stopping                          (train, training.py)
           -> validation / test reports                            (evaluate)
           -> the run directory: model/, report/, metrics.json     (save, rundir.py, plots.py)
           -> the ONNX bundle when export.enabled                  (export.py)
"""
from __future__ import annotations

import resource
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from domainft import __version__, distributed
from domainft.bases import hub_origin
from domainft.card import dataset_of, model_card
from domainft.errors import DomainftError, out_of_space
from domainft.export import export_run
from domainft.gguf import cache_dir
from domainft.lexicon import fold_new_rows, save_new_rows
from domainft.methods import artefact_size
from domainft.model import TrainedModel, load, save_model
from domainft.plots import write_report
from domainft.precision import Precision, choose_on_main_rank
from domainft.prepare import Prepared, prepare
from domainft.recipe import Recipe
from domainft.report import print_summary
from domainft.rundir import REPORT_DIR, RunDir, RunPlan, checkpoint_step, plan_run, run_lock
from domainft.training import build_trainer, check_training_setup


@dataclass
class RunResult:
    run_dir: Path
    model_dir: Path
    metrics: dict
    recipe: Recipe
    model: TrainedModel | None  # the trained model in memory, as saved in model_dir (None on other ranks
    # than the main one of a multi-process run)
    bundle_dir: Path | None = None  # the ONNX bundle, when the recipe's export is enabled

    @property
    def test(self) -> dict:
        return self.metrics.get("test") or {}


def run(recipe: Recipe, resume: bool = False, progress: bool = True, echo=print,
        callbacks=()) -> RunResult:
    """Train, evaluate and save one recipe. Everything is checked before any file is written.

    Launched as several processes (torchrun, accelerate launch), every rank prepares the same data
    and trains on its shard; the main rank alone writes (distributed.py), and the others return
    the same metrics with `model` None. A second run into the same output.dir while this one holds it
    is refused (rundir.run_lock)."""
    distributed.setup()
    with run_lock(recipe.run_dir, echo=echo):
        try:
            return _run(recipe, resume, progress, echo, callbacks)
        except DomainftError:
            raise
        except Exception as e:  # a full disk mid-run says so, not with a library's traceback
            full = out_of_space(e, [recipe.run_dir, cache_dir()], "continue with --resume (resume=True): the "
                                "run keeps its last complete checkpoint")
            if full is None:
                raise
            raise full from e


def _run(recipe: Recipe, resume: bool, progress: bool, echo, callbacks) -> RunResult:
    main = distributed.is_main()
    if not main:  # one console: the main rank's
        progress, echo = False, _silent
    plan = plan_run(recipe, resume)
    if plan.export_only:
        return _finish_export(recipe, plan.work, echo) if main else RunResult(
            plan.final.path, plan.final.model_dir, {}, recipe, None)
    check_training_setup(recipe)
    teacher = None
    if recipe.distill.enabled:  # named, or trained first (distill.teacher_base) before the student loads
        from domainft.teacher import teacher_run_dir

        teacher = teacher_run_dir(recipe, run, progress, echo)
    prepared = prepare(recipe, echo)
    if teacher is not None:  # the teacher's soft targets join the training set (before anything is written)
        from domainft.distill import with_teacher

        prepared.encoded["train"], prepared.distill = with_teacher(prepared, teacher, echo)
    precision = choose_on_main_rank(recipe.train.precision, prepared.model, lambda: _sample_batch(prepared))
    echo(f"precision: {precision.used} ({precision.reason})")
    if main:
        plan.start(recipe)
    distributed.barrier()  # the run directory exists before any rank trains into it
    trainer, settings = train(prepared, plan, progress, echo, callbacks, precision)
    recipe, metrics = evaluate(prepared, trainer, settings, echo)
    distributed.barrier()  # every rank has trained and evaluated: the main rank writes from here
    if not main:
        return RunResult(plan.final.path, plan.final.model_dir, metrics, recipe, None)
    trained = save(prepared, trainer, recipe, plan.work, metrics, echo)
    plan.finish()  # a run replacing an earlier one takes its place now, complete
    run_dir = plan.final
    if progress:
        print_summary(metrics, run_dir.path)
    bundle_dir = export(recipe, run_dir, prepared.encoded.get("validation"), metrics, echo) \
        if recipe.export.enabled else None
    return RunResult(run_dir.path, run_dir.model_dir, metrics, recipe, trained, bundle_dir)


def _finish_export(recipe: Recipe, run_dir: RunDir, echo) -> RunResult:
    """--resume of a run that was saved but whose export (export.enabled) did not complete."""
    echo(f"resuming: the run in {run_dir.path} is saved; exporting it")
    metrics = run_dir.read_metrics()
    bundle_dir = export(recipe, run_dir, None, metrics, echo)
    return RunResult(run_dir.path, run_dir.model_dir, metrics, recipe, load(run_dir.model_dir), bundle_dir)


def _silent(*args, **kwargs) -> None:
    pass


@dataclass
class TrainSettings:
    """What train() resolved from the recipe and the method, and how long it took."""

    lr: float
    gradient_checkpointing: bool
    checkpoint: str | None  # the checkpoint training resumed from
    precision: Precision | None = None
    wall: float = 0.0
    examples_seen: int = 0  # by this process


def train(p: Prepared, plan: RunPlan, progress: bool, echo, callbacks, precision: Precision | None = None):
    """Build the Trainer and train (from the plan's checkpoint on resume); the best checkpoint is
    loaded back. Training's end is recorded, so that a failure after it resumes without training."""
    recipe, task, method, run_dir, checkpoint = p.recipe, p.task, p.method, plan.work, plan.checkpoint
    weights = task.class_weights(p.data.train, p.data.labels, recipe.train.class_weights)
    settings = TrainSettings(lr=recipe.train.lr or method.default_lr,
                             gradient_checkpointing=_gradient_checkpointing(recipe, method),
                             checkpoint=checkpoint, precision=precision)
    loss_function = task.loss_for(recipe, weights)
    trainer = build_trainer(recipe, task, p.model, p.tokenizer, p.encoded, run_dir.checkpoints,
                            loss_function, settings.lr, progress, echo, callbacks,
                            gradient_checkpointing=settings.gradient_checkpointing,
                            eval_on_start=task.eval_on_start and checkpoint is None, eval_hook=p.eval_hook,
                            precision=settings.precision, logging_dir=run_dir.logs_dir,
                            distill=recipe.distill if recipe.distill.enabled else None)
    if distributed.is_main():
        for incomplete in run_dir.remove_incomplete_checkpoints():
            echo(f"removed {incomplete.name}: an interrupted save left it incomplete")
    distributed.barrier()
    if plan.trained:
        echo(f"resuming: training had finished; evaluating its best checkpoint ({Path(checkpoint).name})")
        restore_trained(trainer, plan.trained)
        settings.wall = plan.trained["wall_time_s"]
        return trainer, settings
    if checkpoint:
        echo(f"resuming from {checkpoint}")
    elif plan.resume:
        echo("resuming: no checkpoint was complete yet; training from the start")
    started = time.perf_counter()
    with _no_kv_cache(p.model, settings.gradient_checkpointing):
        trainer.train(resume_from_checkpoint=checkpoint)
    settings.wall = time.perf_counter() - started
    _without_autocast_wrapper(trainer.model)
    settings.examples_seen = trainer.examples_seen
    if distributed.is_main():
        trainer.state.save_to_json(str(run_dir.final_state_file))
        run_dir.write_training_done({"best_checkpoint": trainer.state.best_model_checkpoint,
                                     "state": str(run_dir.final_state_file), "wall_time_s": settings.wall})
    return trainer, settings


def _sample_batch(p: Prepared, n: int = 16) -> dict:
    """A training batch of `n` examples, as the Trainer's collator builds it (the CPU bf16 measurement)."""
    import inspect

    model = p.model.get_base_model() if hasattr(p.model, "get_base_model") else p.model  # peft wraps it
    # The columns the model's forward takes, as the Trainer keeps them (it drops the others).
    names = {*inspect.signature(model.forward).parameters, "label", "labels", "label_ids"}
    train = p.encoded["train"]
    rows = [{k: v for k, v in train[i].items() if k in names} for i in range(min(n, len(train)))]
    return dict(p.task.collator(p.tokenizer)(rows))


def _without_autocast_wrapper(model) -> None:
    """Mixed-precision training leaves accelerate's autocast wrapper on the model's forward; the
    model run() returns must answer as the saved one reloads (fp32). The Trainer's own evaluation
    keeps the recipe's precision (it enters autocast itself)."""
    from accelerate.utils import extract_model_from_parallel

    extract_model_from_parallel(model, keep_fp32_wrapper=False)


def restore_trained(trainer, done: dict) -> None:
    """The Trainer as train() left it: its final state, and the best checkpoint's weights loaded
    (as load_best_model_at_end loads them)."""
    from transformers import TrainerState

    trainer.state = TrainerState.load_from_json(done["state"])
    trainer._load_from_checkpoint(done["best_checkpoint"])  # the Trainer's own resume loader


def _gradient_checkpointing(recipe: Recipe, method) -> bool:
    setting = recipe.train.gradient_checkpointing
    return method.default_gradient_checkpointing if setting is None else setting


def evaluate(p: Prepared, trainer, settings: TrainSettings, echo) -> tuple[Recipe, dict]:
    """(recipe, metrics): metrics.json's content so far, and the recipe with any decision setting
    chosen on validation (decision.max_under_rate) filled in."""
    recipe, task, data = p.recipe, p.task, p.data
    metrics: dict = {
        "run": {"name": recipe.name, "task": task.name, "base": p.base.describe(), "method": p.method.name,
                "trainable_params": p.trainable, "total_params": p.total, "domainft_version": __version__},
        "data": {**data.report, "labels": data.labels, "truncated": p.truncated},
        **({"lexicon": p.injection.report()} if p.injection else {}),
        **({"distill": p.distill} if p.distill else {}),
        **({"adapt": p.adapt} if p.adapt else {}),
        "train": {"lr": settings.lr, "gradient_checkpointing": settings.gradient_checkpointing,
                  "precision": settings.precision.report() if settings.precision else None,
                  "distributed": _distributed_report(trainer, settings),
                  **_train_stats(trainer.state, recipe, len(data.train), settings)},
    }
    for split in ("validation", "test"):
        if split in p.encoded:
            recipe, metrics[split] = _evaluate_split(p, trainer, recipe, split, echo)
    return recipe, metrics


def _evaluate_split(p: Prepared, trainer, recipe: Recipe, split: str, echo) -> tuple[Recipe, dict]:
    task = p.task
    # The Trainer's metrics were built for the validation set (word windows map rows to sentences).
    trainer.compute_metrics = task.metrics_for(p.encoded[split], p.data.labels)
    out = trainer.predict(p.encoded[split], metric_key_prefix=split)
    predictions, label_ids = task.per_example(out.predictions, out.label_ids, p.encoded[split])
    if split == "validation":  # e.g. the escalation threshold for decision.max_under_rate
        recipe, note = task.fit_decision(recipe, predictions, label_ids, dataset=p.encoded[split],
                                         labels=p.data.labels)
        if note:
            echo(note)
    report = task.evaluate(predictions, label_ids, p.data.labels, p.encoded[split],
                           p.data.splits()[split], recipe, split)
    loop = {k.removeprefix(f"{split}_"): v for k, v in out.metrics.items()}
    # Metrics only the evaluation loop has (the task's eval_hook: perplexity, generated answers).
    extra = {k: loop[k] for k in (*task.metric_names, "perplexity") if k in loop and k not in report}
    return recipe, {**report, **extra, "loss": float(out.metrics[f"{split}_loss"])}


def save(p: Prepared, trainer, recipe: Recipe, run_dir: RunDir, metrics: dict, echo=print) -> TrainedModel:
    """model/ (staged: it appears complete or not at all; its README.md is the model card), then
    report/ (plots of metrics.json's content; a plotting failure is a warning, never a failed run),
    then metrics.json, which marks the run finished; checkpoints are removed unless
    output.keep_checkpoints."""
    manifest = _manifest(p, recipe)
    metrics["run"]["dataset"] = dataset_of(recipe)
    fold_new_rows(trainer.model)  # a plain embedding again, the trained rows in it
    with run_dir.staged_model_dir() as tmp:
        save_model(p.method, trainer.model, p.tokenizer, tmp, manifest)
        if p.ctx.new_token_ids:
            save_new_rows(trainer.model, p.ctx.new_token_ids, tmp)
        (tmp / "README.md").write_text(model_card(manifest, metrics), encoding="utf-8")  # after peft's own card
    metrics["run"]["saved_mb"] = round(artefact_size(run_dir.model_dir) / 2**20, 2)
    trained = TrainedModel(trainer.model, p.tokenizer, p.task, manifest)
    metrics.update(p.task.examples(trained, p.data, recipe))
    metrics.pop("report", None)
    try:
        with run_dir.staged_report_dir() as tmp:
            files = write_report(metrics, tmp)
        metrics["report"] = {"dir": REPORT_DIR, "files": [f.name for f in files]}
    except Exception as e:  # the plots are a convenience; the trained model and its scores are the run
        echo(f"warning: report/ not written, the plots failed ({type(e).__name__}: {str(e)[:200]}); "
             "the run itself is complete")
    run_dir.write_metrics(metrics)
    if not recipe.output.keep_checkpoints:
        run_dir.remove_checkpoints()
    return trained


def _manifest(p: Prepared, recipe: Recipe) -> dict:
    """What the saved model needs to be rebuilt and to predict (rundir.py: domainft.json)."""
    manifest = {"domainft_version": __version__, "task": p.task.name, "labels": p.data.labels,
                "max_length": recipe.data.max_length, "stride": recipe.data.stride,
                "tuning": recipe.tuning.model_dump(mode="json"),
                "base": {"requested": p.base.requested, "path": p.base.path, "source": p.base.source,
                         "hub_id": hub_origin(p.base.requested, p.base.path, p.base.source)},
                **p.task.manifest_extras(recipe), **p.task.data_manifest(p.data)}
    if p.injection is not None:
        manifest["lexicon"] = {"terms_added": len(p.injection.added), "sources": p.injection.sources}
    return manifest


def export(recipe: Recipe, run_dir: RunDir, validation, metrics: dict, echo) -> Path:
    """The recipe's `export:` section, after the run is saved; its parity figures join metrics.json."""
    try:
        result = export_run(run_dir.path, recipe.export, validation=validation, echo=echo)
    except DomainftError as e:
        raise DomainftError(f"{e}\n(the trained run is saved in {run_dir.path}; `domainft export "
                            f"{run_dir.path}` retries the export)") from None
    metrics["export"] = {"dir": str(result.dir), "parity": result.manifest["parity"],
                         "files": result.manifest["files"]}
    run_dir.write_metrics(metrics)
    return result.dir


def _train_stats(state, recipe: Recipe, n_train: int, settings: TrainSettings) -> dict:
    # Throughput measured here: the Trainer's own samples/s divides by the planned steps (wrong
    # after early stopping).
    epochs, wall = float(state.epoch or 0), settings.wall
    return {
        "wall_time_s": round(wall, 2),
        "resumed": settings.checkpoint is not None,
        "epochs_run": round(epochs, 3),
        "epochs_max": recipe.train.epochs,
        "steps": state.global_step,
        "stopped_early": state.global_step < state.max_steps,
        "best_metric_name": recipe.train.early_stopping.metric,
        "best_metric": state.best_metric,
        "best_step": checkpoint_step(state.best_model_checkpoint) if state.best_model_checkpoint else None,
        "examples_per_s": round(epochs * n_train / wall, 2) if wall > 0 else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        **_cuda_peak(),
        # The Trainer's whole log: a training entry every logging step (loss, learning_rate, grad_norm),
        # every evaluation (eval_*), and its closing summary (train_loss, train_runtime).
        "history": [dict(entry) for entry in state.log_history],
    }


def _distributed_report(trainer, settings: TrainSettings) -> dict:
    """How many processes trained and what each saw (a collective: every rank calls it)."""
    seen = distributed.gather(settings.examples_seen)
    args = trainer.args
    return {"world_size": distributed.world().size, "backend": distributed.backend(),
            "per_device_batch_size": args.per_device_train_batch_size,
            "global_batch_size": args.per_device_train_batch_size * args.gradient_accumulation_steps * len(seen),
            "examples_seen_per_rank": seen}


@contextmanager
def _no_kv_cache(model, checkpointing: bool):
    """Training with gradient checkpointing keeps no KV cache (transformers would warn at every
    step); the saved config keeps the base's setting, which generation wants."""
    config = getattr(model, "config", None)
    saved = getattr(config, "use_cache", None)
    if checkpointing and saved:
        config.use_cache = False
    try:
        yield
    finally:
        if checkpointing and saved:
            config.use_cache = saved


def _cuda_peak() -> dict:
    import torch

    if not torch.cuda.is_available():
        return {}
    return {"peak_cuda_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1)}
