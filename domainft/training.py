"""Assemble a Hugging Face Trainer from a recipe: dynamic padding, length-grouped batches,
early stopping on a named metric, best checkpoint restored, class weights, resume, gradient
checkpointing, and task metrics that need the model itself (generated answers)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from domainft.callbacks import EarlyStopping, ElapsedTime, EvalReport, QuietProgressCallback
from domainft.distributed import has_accelerator, per_device_batch, world
from domainft.errors import DomainftError
from domainft.precision import Precision, mixed_precision_arguments

if TYPE_CHECKING:
    from domainft.recipe import Recipe
    from domainft.tasks import Task


def training_arguments(recipe: Recipe, task: Task, checkpoint_dir: Path, progress: bool, lr: float,
                       gradient_checkpointing: bool = False, eval_on_start: bool = False,
                       precision: Precision | None = None, logging_dir: Path | None = None):
    from transformers import TrainingArguments

    t = recipe.train
    by_steps = isinstance(t.eval_every, int)
    strategy = "steps" if by_steps else "epoch"
    metric = t.early_stopping.metric
    return TrainingArguments(
        output_dir=str(checkpoint_dir),
        num_train_epochs=t.epochs,
        # The recipe's batch sizes are global: each of N processes takes 1/N of every batch.
        per_device_train_batch_size=per_device_batch(t.batch_size),
        per_device_eval_batch_size=max(1, -(-t.eval_batch_size // world().size)),
        # Without a GPU the Trainer must be told it trains on CPUs, or under torchrun it leaves the
        # process group unused and every rank trains a full copy of its own.
        use_cpu=not has_accelerator(),
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=lr,
        weight_decay=t.weight_decay,
        warmup_ratio=t.warmup_ratio,
        lr_scheduler_type=t.scheduler,
        max_grad_norm=t.max_grad_norm,
        seed=t.seed,
        data_seed=t.seed,
        eval_strategy=strategy,
        save_strategy=strategy,
        logging_strategy="steps",
        logging_steps=t.logging_steps,
        logging_first_step=True,
        logging_dir=str(logging_dir) if logging_dir else None,
        eval_steps=t.eval_every if by_steps else None,
        save_steps=t.eval_every if by_steps else None,
        save_total_limit=1,  # with load_best_model_at_end the best is kept as well as the last
        load_best_model_at_end=True,
        metric_for_best_model=metric,
        greater_is_better=task.greater_is_better(metric),
        group_by_length=t.group_by_length,
        restore_callback_states_from_checkpoint=True,
        save_safetensors=True,
        report_to=list(t.report_to),
        **mixed_precision_arguments(precision),
        deepspeed=str(t.deepspeed) if t.deepspeed else None,
        fsdp=t.fsdp or "",
        fsdp_config=str(t.fsdp_config) if isinstance(t.fsdp_config, Path) else t.fsdp_config,
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        dataloader_pin_memory=_has_cuda(),
        log_level="warning",
        gradient_checkpointing=gradient_checkpointing,
        # Non-reentrant: works with frozen inputs (LoRA, 4-bit bases) without forcing input grads.
        gradient_checkpointing_kwargs={"use_reentrant": False} if gradient_checkpointing else None,
        eval_on_start=eval_on_start,
        prediction_loss_only=task.loss_only_eval,
    )


def check_training_setup(recipe: Recipe) -> None:
    """What only this launch can tell, checked before anything is written (the Trainer itself
    would fail later, mid-setup): the batch splits over the processes, the packages the train
    section names are installed (each tracker's module and pip package share its name)."""
    per_device_batch(recipe.train.batch_size)
    for name in recipe.train.report_to:
        _require(name, f"train.report_to: {name} is not installed; `pip install {name}` (or drop it from "
                       "train.report_to)")
    if recipe.train.deepspeed is not None:
        _require("deepspeed", "train.deepspeed: DeepSpeed is not installed; `pip install deepspeed` (it needs a "
                              "CUDA toolkit), or remove train.deepspeed")


def _require(module: str, message: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise DomainftError(message)


def _sequential_eval_trainer():
    from torch.utils.data import SequentialSampler
    from transformers import Trainer

    class SequentialEvalTrainer(Trainer):
        """Evaluation and prediction keep dataset order (transformers also length-groups them when
        group_by_length is on), so metrics can map rows back to sentences and windows. The task's
        eval_hook adds metrics that need the model (before callbacks such as early stopping see them)."""

        def __init__(self, *args, eval_hook=None, model_loss=None, distill_loss=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.eval_hook = eval_hook
            self.model_loss = model_loss
            self.distill_loss = distill_loss  # training batches that carry teacher targets
            self.examples_seen = 0  # by this process: under DDP each rank sees its share

        def training_step(self, model, inputs, num_items_in_batch=None):
            first = next((v for v in inputs.values() if hasattr(v, "shape")), None)
            self.examples_seen += int(first.shape[0]) if first is not None else 0
            return super().training_step(model, inputs, num_items_in_batch)

        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            from domainft.distill import TEACHER_COLUMN

            if self.distill_loss is not None and TEACHER_COLUMN not in self._signature_columns:
                self._signature_columns.append(TEACHER_COLUMN)  # the teacher targets: kept, not a model input

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self.distill_loss is not None and not return_outputs and _has_teacher(inputs):
                return self.distill_loss(model, inputs, num_items_in_batch)
            if self.model_loss is None:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss = self.model_loss(model, inputs, num_items_in_batch)
            return (loss, {"loss": loss}) if return_outputs else loss

        def _load_optimizer_and_scheduler(self, checkpoint):
            # Under DDP on CPUs accelerate names every process's device cpu:0 and the Trainer maps
            # the optimizer state there, a location torch.load cannot restore to ("don't know how
            # to restore data location ... cpu:0"): on CPUs it is loaded to plain "cpu".
            import torch

            device = self.args.device
            if checkpoint is None or self.args.world_size == 1 or device.type != "cpu":
                return super()._load_optimizer_and_scheduler(checkpoint)
            original = torch.load

            def load_to_cpu(*args, **kwargs):
                if kwargs.get("map_location") == device:
                    kwargs["map_location"] = "cpu"
                return original(*args, **kwargs)

            torch.load = load_to_cpu
            try:
                return super()._load_optimizer_and_scheduler(checkpoint)
            finally:
                torch.load = original

        def _get_eval_sampler(self, eval_dataset):
            return SequentialSampler(eval_dataset) if eval_dataset is not None else None

        def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                            metric_key_prefix="eval"):
            output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys,
                                             metric_key_prefix)
            if self.eval_hook is not None:
                output.metrics.update(self.eval_hook(self.model, self.processing_class, dataloader.dataset,
                                                     output.metrics, metric_key_prefix))
            return output

    return SequentialEvalTrainer


def _has_teacher(inputs) -> bool:
    from domainft.distill import TEACHER_COLUMN

    return TEACHER_COLUMN in inputs


def build_trainer(recipe: Recipe, task: Task, model, tokenizer, datasets: dict, checkpoint_dir: Path,
                  loss_function: Callable | None, lr: float, progress: bool = True, echo=print,
                  extra_callbacks=(), gradient_checkpointing: bool = False, eval_on_start: bool = False,
                  eval_hook: Callable | None = None, precision: Precision | None = None,
                  logging_dir: Path | None = None, distill=None):
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    # A progress bar redraws its line with carriage returns: in a log file or a pipe the evaluation
    # lines would land glued onto it, so it is drawn only on a terminal.
    progress = progress and _is_terminal()
    args = training_arguments(recipe, task, checkpoint_dir, progress, lr, gradient_checkpointing, eval_on_start,
                              precision, logging_dir)
    es = recipe.train.early_stopping
    callbacks = [ElapsedTime(), EvalReport(es.metric, echo), *extra_callbacks]
    if es.enabled:
        callbacks.append(EarlyStopping(es.metric, task.greater_is_better(es.metric), es.patience, es.min_delta))
    collate, distill_loss = task.collator(tokenizer), None
    if distill is not None:  # distill.py: teacher targets in the batches, the mixed loss
        from domainft.distill import collator, distillation_loss

        collate = collator(collate)
        distill_loss = distillation_loss(task.name, distill.alpha, distill.temperature, loss_function)
    trainer = _sequential_eval_trainer()(
        model=model,
        args=args,
        train_dataset=datasets["train"],
        eval_dataset=datasets["validation"],
        processing_class=tokenizer,
        data_collator=collate,
        compute_metrics=task.metrics_for(datasets["validation"], _labels(model)),
        compute_loss_func=loss_function,
        callbacks=callbacks,
        eval_hook=eval_hook,
        model_loss=task.model_loss(),
        distill_loss=distill_loss,
    )
    # Our EvalReport prints each evaluation; drop the Trainer's raw log-dict printing.
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if progress:
        trainer.add_callback(QuietProgressCallback)
    return trainer


def _labels(model) -> list[str]:
    id2label = model.config.id2label
    return [id2label[i] for i in range(len(id2label))]



def _is_terminal() -> bool:
    import sys

    return sys.stderr.isatty()  # where tqdm draws


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()
