"""`run`: recipe -> data -> base + head + tuning method -> Trainer -> evaluation -> run directory."""
from __future__ import annotations

import resource
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from domainft import __version__
from domainft.atomic import staged_dir, write_text
from domainft.bases import resolve_base
from domainft.errors import DomainftError
from domainft.lexicon import fold_new_rows, inject_lexicon, save_new_rows, train_new_rows
from domainft.methods import artefact_size, count_parameters, get_method
from domainft.model import TrainedModel, build_model, save_model
from domainft.recipe import Recipe
from domainft.report import print_summary, write_metrics
from domainft.tasks import get_task
from domainft.training import build_trainer, last_checkpoint

RECIPE_FILE = "recipe.yaml"
METRICS_FILE = "metrics.json"


@dataclass
class RunResult:
    run_dir: Path
    model_dir: Path
    metrics: dict
    recipe: Recipe
    model: TrainedModel  # the trained model in memory, as saved in model_dir
    bundle_dir: Path | None = None  # the ONNX bundle, when the recipe's export is enabled

    @property
    def test(self) -> dict:
        return self.metrics.get("test") or {}


def run(recipe: Recipe, resume: bool = False, progress: bool = True, echo=print,
        callbacks=()) -> RunResult:
    """Train, evaluate and save one recipe. Everything is checked before any file is written."""
    task = get_task(recipe.task)
    method = get_method(recipe.tuning.method)(recipe.tuning)
    run_dir = recipe.run_dir
    checkpoint = _check_run_dir(recipe, run_dir, resume)

    data = task.load_data(recipe.data)
    base = resolve_base(recipe.base.name, recipe.base.revision)
    echo(f"base: {base.describe()}")
    _echo_data(data.report, echo)

    from transformers import set_seed

    set_seed(recipe.train.seed)
    eval_hook = task.eval_hook(recipe, data)  # may refuse the recipe's early-stopping metric
    model, tokenizer, ctx = build_model(task, base, data.labels, recipe.base.revision,
                                        recipe.base.trust_remote_code, method.load_kwargs())
    if ctx.new_modules:
        echo(f"new modules (random init, always trained): {', '.join(ctx.new_modules)}")
    injection = inject_lexicon(recipe.lexicon, task.words(data.train), tokenizer, model)
    if injection is not None:
        ctx.new_token_ids = injection.new_ids
        _echo_lexicon(injection, echo)
    label2id = {label: i for i, label in enumerate(data.labels)}
    max_length = recipe.data.max_length
    encoded = {name: task.encode(exs, tokenizer, label2id, recipe.data)
               for name, exs in data.splits().items() if exs}
    truncated = {name: task.count_truncated(exs, tokenizer, recipe.data, encoded[name])
                 for name, exs in data.splits().items() if exs}
    if any(truncated.values()):
        echo(f"longer than {max_length} tokens, {task.long_input_note}: " +
             ", ".join(f"{k} {v}" for k, v in truncated.items()))

    model = train_new_rows(method.prepare(model, ctx), ctx.new_token_ids)
    trainable, total = count_parameters(model)
    echo(f"tuning: {method.name}, {trainable:,} trainable of {total:,} parameters "
         f"({100 * trainable / total:.2f}%)")

    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        write_text(run_dir / RECIPE_FILE, recipe.to_yaml())
    weights = task.class_weights(data.train, data.labels, recipe.train.class_weights)
    lr = recipe.train.lr or method.default_lr
    checkpointing = recipe.train.gradient_checkpointing
    if checkpointing is None:
        checkpointing = method.default_gradient_checkpointing
    loss_function = task.loss_function(weights, recipe.train.label_smoothing)
    trainer = build_trainer(recipe, task, model, tokenizer, encoded, run_dir / "checkpoints",
                            loss_function, lr, progress, echo, callbacks,
                            gradient_checkpointing=checkpointing,
                            eval_on_start=task.eval_on_start and checkpoint is None, eval_hook=eval_hook)
    if checkpoint:
        echo(f"resuming from {checkpoint}")
    started = time.perf_counter()
    with _no_kv_cache(model, checkpointing):
        trainer.train(resume_from_checkpoint=checkpoint)
    wall = time.perf_counter() - started

    state = trainer.state
    metrics: dict = {
        "run": {"name": recipe.name, "task": task.name, "base": base.describe(), "method": method.name,
                "trainable_params": trainable, "total_params": total, "domainft_version": __version__},
        "data": {**data.report, "labels": data.labels, "truncated": truncated},
        **({"lexicon": injection.report()} if injection else {}),
        "train": {"lr": lr, "gradient_checkpointing": checkpointing,
                  **_train_stats(state, recipe, len(data.train), wall, checkpoint is not None)},
    }
    for split in ("validation", "test"):
        if split in encoded:
            out = trainer.predict(encoded[split], metric_key_prefix=split)
            if split == "validation":  # e.g. the escalation threshold for decision.max_under_rate
                recipe, note = task.fit_decision(recipe, out.predictions, out.label_ids)
                if note:
                    echo(note)
            report = task.evaluate(out.predictions, out.label_ids, data.labels, encoded[split],
                                   data.splits()[split], recipe, split)
            loop = {k.removeprefix(f"{split}_"): v for k, v in out.metrics.items()}
            # Metrics only the evaluation loop has (the task's eval_hook: perplexity, generated answers).
            extra = {k: loop[k] for k in (*task.metric_names, "perplexity") if k in loop and k not in report}
            metrics[split] = {**report, **extra, "loss": float(out.metrics[f"{split}_loss"])}

    manifest = {"domainft_version": __version__, "task": task.name, "labels": data.labels,
                "max_length": max_length, "stride": recipe.data.stride,
                "tuning": recipe.tuning.model_dump(mode="json"),
                "base": {"requested": base.requested, "path": base.path, "source": base.source},
                **task.manifest_extras(recipe)}
    model_dir = run_dir / "model"
    if injection is not None:
        manifest["lexicon"] = {"terms_added": len(injection.added), "sources": injection.sources}
    fold_new_rows(trainer.model)  # a plain embedding again, the trained rows in it
    with staged_dir(model_dir) as tmp:
        save_model(method, trainer.model, tokenizer, tmp, manifest)
        if ctx.new_token_ids:
            save_new_rows(trainer.model, ctx.new_token_ids, tmp)
    metrics["run"]["saved_mb"] = round(artefact_size(model_dir) / 2**20, 2)
    trained = TrainedModel(trainer.model, tokenizer, task, manifest)
    metrics.update(task.examples(trained, data, recipe))
    write_metrics(run_dir / METRICS_FILE, metrics)
    if not recipe.output.keep_checkpoints:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    if progress:
        print_summary(metrics, run_dir)
    bundle_dir = _export(recipe, run_dir, encoded.get("validation"), metrics, echo) if recipe.export.enabled else None
    return RunResult(run_dir, model_dir, metrics, recipe, trained, bundle_dir)


def _export(recipe: Recipe, run_dir: Path, validation, metrics: dict, echo) -> Path:
    """The recipe's `export:` section, after the run is saved; its parity figures join metrics.json."""
    from domainft.export import export_run

    try:
        result = export_run(run_dir, recipe.export, validation=validation, echo=echo)
    except DomainftError as e:
        raise DomainftError(f"{e}\n(the trained run is saved in {run_dir}; `domainft export {run_dir}` "
                            "retries the export)") from None
    metrics["export"] = {"dir": str(result.dir), "parity": result.manifest["parity"],
                         "files": result.manifest["files"]}
    write_metrics(run_dir / METRICS_FILE, metrics)
    return result.dir


def _check_run_dir(recipe: Recipe, run_dir: Path, resume: bool) -> str | None:
    """Refuse to clobber a run by accident; on --resume, check it is the same recipe."""
    if resume:
        saved = run_dir / RECIPE_FILE
        if not saved.is_file():
            raise DomainftError(f"--resume: {run_dir} holds no run to resume (no {RECIPE_FILE}); "
                                "run without --resume to start it")
        if (run_dir / METRICS_FILE).is_file():
            raise DomainftError(f"--resume: the run in {run_dir} already finished; "
                                "set output.overwrite=true to train it again")
        differences = _differences(yaml.safe_load(saved.read_text(encoding="utf-8")), recipe.to_dict())
        if differences:
            raise DomainftError(f"--resume: the recipe differs from the one {run_dir} was started with "
                                f"({', '.join(differences)}); resume with the same recipe and overrides")
        checkpoint = last_checkpoint(run_dir / "checkpoints")
        if checkpoint is None:
            raise DomainftError(f"--resume: {run_dir} has no checkpoint yet (the run stopped before "
                                "its first evaluation); run again without --resume")
        return checkpoint
    if run_dir.exists() and any(run_dir.iterdir()):
        if not recipe.output.overwrite:
            raise DomainftError(
                f"output.dir: {run_dir} already holds a run. Use --resume to continue it, "
                "--set output.overwrite=true to replace it, or --set output.dir=... for a new one")
        shutil.rmtree(run_dir)
    return None


def _differences(a, b, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if (key == "overwrite" and prefix == "output.") or (key == "export" and not prefix):
                continue  # neither changes training (export runs after it)
            out += _differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def _train_stats(state, recipe: Recipe, n_train: int, wall: float, resumed: bool) -> dict:
    # Throughput measured here: the Trainer's own samples/s divides by the planned steps (wrong
    # after early stopping).
    epochs = float(state.epoch or 0)
    return {
        "wall_time_s": round(wall, 2),
        "resumed": resumed,
        "epochs_run": round(epochs, 3),
        "epochs_max": recipe.train.epochs,
        "steps": state.global_step,
        "stopped_early": state.global_step < state.max_steps,
        "best_metric_name": recipe.train.early_stopping.metric,
        "best_metric": state.best_metric,
        "best_step": int(state.best_model_checkpoint.rsplit("-", 1)[-1]) if state.best_model_checkpoint else None,
        "examples_per_s": round(epochs * n_train / wall, 2) if wall > 0 else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        **_cuda_peak(),
        "log": [entry for entry in state.log_history if "eval_loss" in entry],
    }


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


def _echo_lexicon(injection, echo) -> None:
    r = injection.report()
    tpw = r["tokens_per_word"]
    echo(f"lexicon: {r['terms_added']} terms added as tokens ({r['already_single_tokens']} already single "
         f"tokens); train tokens per word {tpw['before']} -> {tpw['after']}")


def _echo_data(report: dict, echo) -> None:
    c = report["counts"]
    line = f"data: train {c['train']}, validation {c['validation']}, test {c['test']}"
    if "conflicting_rows_removed" in report:
        line += (f"; removed {report['duplicates_removed']} exact duplicates and "
                 f"{report['conflicting_rows_removed']} rows of {report['conflicting_texts_removed']} "
                 "texts with conflicting labels")
    elif "duplicates_removed" in report:  # generation: pairs have no label to conflict on
        line += f"; removed {report['duplicates_removed']} exact duplicate pairs"
    if report.get("overlap_train_test"):
        line += f"; warning: {report['overlap_train_test']} test texts also occur in train"
    echo(line)
