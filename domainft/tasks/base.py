"""What a task supplies to the pipeline: data, model class, encoding, metrics, decoding."""
from __future__ import annotations

from typing import ClassVar

IGNORE = -100  # the label of positions no loss or metric counts (subwords, padding)


class Task:
    name: ClassVar[str]
    metric_names: ClassVar[tuple[str, ...]]  # what evaluation reports; early stopping picks one
    default_metric: ClassVar[str]  # early stopping's metric unless the recipe names another
    peft_task_type: ClassVar[str]
    long_input_note: ClassVar[str]  # what happens to inputs longer than data.max_length
    summary_columns: ClassVar[list[tuple[str, str]]]  # (title, metric) shown in the run summary
    words_as_input: ClassVar[bool] = False  # inputs are pre-split words (token classification)
    # Metrics an exported int8 model may lose at most export.max_int8_drop points of.
    gate_metrics: ClassVar[tuple[str, ...]] = ()
    # Evaluate the untrained model before the first step (a reference in the log, never a candidate
    # for early stopping or the restored best checkpoint).
    eval_on_start: ClassVar[bool] = False
    # Evaluation computes the loss only (eval_hook adds the rest): no logits gathered.
    loss_only_eval: ClassVar[bool] = False

    def greater_is_better(self, metric: str) -> bool:
        return metric != "loss"

    @property
    def model_class(self):
        raise NotImplementedError

    def model_kwargs(self, labels: list[str]) -> dict:
        """from_pretrained arguments for the task's model: a head sized and named for `labels`."""
        id2label = dict(enumerate(labels))
        return {"num_labels": len(labels), "id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}

    def check_base(self, base, tokenizer):
        """Refuse a base the task cannot use, before its weights load; the tokenizer to use."""
        return tokenizer

    def model_loss(self):
        """None (the model computes its loss), or a function (model, inputs, num_items_in_batch) ->
        loss that the Trainer uses instead of calling the model with labels."""
        return None

    def eval_hook(self, recipe, data):
        """None, or a function (model, tokenizer, dataset, metrics, prefix) -> extra metrics that
        each evaluation adds (with the model at hand: generations, not logits)."""
        return None

    def examples(self, trained, data, recipe) -> dict:
        """Entries for metrics.json made with the trained model (generation: sample answers)."""
        return {}

    def words(self, examples) -> list[str]:
        """The words of `examples` in order (lexicon mining, tokens-per-word statistics)."""
        raise NotImplementedError

    def fit_decision(self, recipe, predictions, label_ids) -> tuple:
        """(recipe, note): the recipe with any decision setting chosen on the validation
        predictions filled in, and a line saying what was chosen (None: nothing to choose)."""
        return recipe, None

    def evaluate(self, predictions, label_ids, labels: list[str], dataset, examples, recipe, split: str) -> dict:
        """A split's entry in metrics.json; tasks with recipe-dependent extras override it."""
        return self.report(predictions, label_ids, labels, dataset)

    def manifest_extras(self, recipe) -> dict:
        """Entries the model manifest carries for prediction (beyond labels and lengths)."""
        return {}


def cross_entropy_loss(weights: list[float] | None, smoothing: float = 0.0):
    """None (the model's own cross-entropy) unless class weights or label smoothing are set; else
    a Trainer compute_loss_func over logits of any shape [..., labels], skipping IGNORE labels."""
    if weights is None and not smoothing:
        return None
    import torch

    weight = None if weights is None else torch.tensor(weights, dtype=torch.float32)

    def cross_entropy(outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"]
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
            weight=None if weight is None else weight.to(logits.device), ignore_index=IGNORE,
            label_smoothing=smoothing)

    return cross_entropy
