"""The task contract: everything the pipeline, training, evaluation, export and prediction ask of a
task, in one place. A task is a Task subclass registered by name (`task: NAME` in a recipe):

    @register_task("my_task")
    class MyTask(Task):
        metric_names = ("accuracy", "loss"); default_metric = "accuracy"; ...
        def load_data(self, spec): ...            # and the other abstract hooks below

Registration instantiates the class, so a task missing a required hook fails there, naming it.
The hooks, in the order a run calls them:

    check_recipe   refuse settings that do not fit the task (beyond `fields` / `data_formats`)
    load_data      data.* -> a bundle with train / validation / test, labels and a report
    check_base     refuse a base the task cannot use; the tokenizer to use
    model_class, model_kwargs          the transformers auto class and its head arguments
    words          the words of examples (lexicon mining, tokens per word)
    encode, count_truncated            examples -> a datasets.Dataset; how many were too long
    class_weights, loss_for            the loss (shared default: weighted cross-entropy)
    collator, metrics_for, model_loss, eval_hook   what the Trainer needs
    per_example, fit_decision, evaluate (-> report)  a split's entry in metrics.json
    manifest_extras, data_manifest, examples   what the saved model and metrics.json carry besides
    predict                             trained model + texts -> one dict per text
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from typing import ClassVar

from domainft.errors import DomainftError
from domainft.registry import Registry
from domainft.schema import field_error

IGNORE = -100  # the label of positions no loss or metric counts (subwords, padding)


class Task(ABC):
    name: ClassVar[str]
    metric_names: ClassVar[tuple[str, ...]]  # what evaluation reports; early stopping picks one
    default_metric: ClassVar[str]  # early stopping's metric unless the recipe names another
    peft_task_type: ClassVar[str]  # peft TaskType name: SEQ_CLS, TOKEN_CLS, CAUSAL_LM
    long_input_note: ClassVar[str]  # what happens to inputs longer than data.max_length
    summary_columns: ClassVar[list[tuple[str, str]]]  # (title, metric) shown in the run summary
    words_as_input: ClassVar[bool] = False  # inputs are pre-split words (token classification)
    # data.format values the task's reader takes ("auto" always: the file suffix decides).
    data_formats: ClassVar[tuple[str, ...]] = ()
    # Recipe fields (dotted paths: "data.ordinal", "decision", "train.class_weights") that apply to
    # some tasks only. A field some task declares is refused on a recipe whose task does not, with
    # "applies to task: ... only"; fields no task declares apply to all.
    fields: ClassVar[frozenset[str]] = frozenset()
    # Metrics an exported int8 model may lose at most export.max_int8_drop points of.
    gate_metrics: ClassVar[tuple[str, ...]] = ()
    # Evaluate the untrained model before the first step (a reference in the log, never a candidate
    # for early stopping or the restored best checkpoint).
    eval_on_start: ClassVar[bool] = False
    # Evaluation computes the loss only (eval_hook adds the rest): no logits gathered.
    loss_only_eval: ClassVar[bool] = False

    # --- the recipe ------------------------------------------------------------------------

    def check_recipe(self, recipe) -> None:
        """Refuse settings of `recipe` (a domainft.recipe.Recipe) that do not fit this task: raise
        domainft.schema.field_error(path, message). The shared check: class weights name labels."""
        cw = recipe.train.class_weights
        if isinstance(cw, dict) and recipe.data.labels is not None:
            unknown = sorted(set(cw) - set(recipe.data.labels))
            if unknown:
                raise field_error("train.class_weights", f"{', '.join(map(repr, unknown))} not in data.labels")

    def greater_is_better(self, metric: str) -> bool:
        return metric != "loss"

    # --- data --------------------------------------------------------------------------------

    @abstractmethod
    def load_data(self, spec):
        """data.* (a DataSpec) -> a bundle with .train / .validation / .test example lists, .labels,
        .report (counts, removals) and .splits(); DataError naming file and line on bad data."""

    @abstractmethod
    def words(self, examples) -> list[str]:
        """The words of `examples` in order (lexicon mining, tokens-per-word statistics)."""

    # --- the model ---------------------------------------------------------------------------

    @property
    @abstractmethod
    def model_class(self):
        """The transformers auto class of the task's model (AutoModelForSequenceClassification, ...)."""

    def model_kwargs(self, labels: list[str]) -> dict:
        """from_pretrained arguments for the task's model: a head sized and named for `labels`."""
        id2label = dict(enumerate(labels))
        return {"num_labels": len(labels), "id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}

    def check_base(self, base, tokenizer):
        """Refuse a base the task cannot use, before its weights load; the tokenizer to use."""
        return tokenizer

    # --- encoding ----------------------------------------------------------------------------

    @abstractmethod
    def encode(self, examples, tokenizer, label2id: dict[str, int], spec):
        """Examples -> a datasets.Dataset of model inputs and `labels` (unpadded: the collator pads)."""

    @abstractmethod
    def count_truncated(self, examples, tokenizer, spec, encoded) -> int:
        """How many examples were longer than data.max_length (reported with long_inputs())."""

    def long_inputs(self, spec) -> str:
        """What happens to inputs longer than data.max_length under these settings."""
        return self.long_input_note

    @abstractmethod
    def collator(self, tokenizer):
        """The Trainer's data collator: pads a batch of encoded rows."""

    # --- the loss ----------------------------------------------------------------------------

    def label_counts(self, train) -> Counter:
        """Label -> how often it is the target in `train` (class weights 'balanced')."""
        raise NotImplementedError(f"task {self.name!r} has no label counts; class weights do not apply")

    def class_weights(self, train, labels: list[str], setting) -> list[float] | None:
        """train.class_weights -> one weight per label, or None. 'balanced' is n_samples /
        (n_classes * n_c), as scikit-learn defines it, over label_counts(train)."""
        if setting == "none":
            return None
        if setting == "balanced":
            counts = self.label_counts(train)
            total = sum(counts.values())
            return [total / (len(labels) * max(counts[label], 1)) for label in labels]
        return [float(setting.get(label, 1.0)) for label in labels]

    def loss_function(self, weights: list[float] | None, smoothing: float = 0.0):
        """None (the model's own loss) or a Trainer compute_loss_func; default: cross-entropy with
        class weights and label smoothing when either is set."""
        return cross_entropy_loss(weights, smoothing)

    def loss_for(self, recipe, weights: list[float] | None):
        """The run's loss_function: None or a Trainer compute_loss_func (a task whose loss reads
        other train.* settings overrides this; the default passes train.label_smoothing)."""
        return self.loss_function(weights, recipe.train.label_smoothing)

    def model_loss(self):
        """None (the model computes its loss), or a function (model, inputs, num_items_in_batch) ->
        loss that the Trainer uses instead of calling the model with labels."""
        return None

    # --- evaluation --------------------------------------------------------------------------

    @abstractmethod
    def metrics_for(self, dataset, labels: list[str]):
        """The Trainer's compute_metrics over `dataset` (None: loss only); returns the scalar
        metrics early stopping reads, named as in metric_names."""

    def eval_hook(self, recipe, data):
        """None, or a function (model, tokenizer, dataset, metrics, prefix) -> extra metrics that
        each evaluation adds (with the model at hand: generations, not logits)."""
        return None

    def per_example(self, predictions, label_ids, dataset):
        """(predictions, label_ids) with one row per example of `dataset`'s split: tasks that encode
        an example as several rows (windows of a long text) pool them here, before fit_decision and
        evaluate see them."""
        return predictions, label_ids

    def fit_decision(self, recipe, predictions, label_ids, dataset=None, labels=None) -> tuple:
        """(recipe, note): the recipe with any decision setting chosen on the validation
        predictions filled in, and a line saying what was chosen (None: nothing to choose).
        `dataset`: the encoded validation set the predictions' rows come from (windows); `labels`:
        the run's labels in model order."""
        return recipe, None

    def evaluate(self, predictions, label_ids, labels: list[str], dataset, examples, recipe, split: str) -> dict:
        """A split's entry in metrics.json; tasks with recipe-dependent extras override it."""
        return self.report(predictions, label_ids, labels, dataset)

    @abstractmethod
    def report(self, predictions, label_ids, labels: list[str], dataset) -> dict:
        """Full evaluation of one split: the scalar metrics and per-label detail."""

    # --- what the saved model carries ---------------------------------------------------------

    def manifest_extras(self, recipe) -> dict:
        """Entries the model manifest carries for prediction (beyond labels and lengths)."""
        return {}

    def data_manifest(self, data) -> dict:
        """Entries the model manifest carries that come from the training data (regression: the
        targets' training mean and standard deviation)."""
        return {}

    def examples(self, trained, data, recipe) -> dict:
        """Entries for metrics.json made with the trained model (generation: sample answers)."""
        return {}

    # --- prediction --------------------------------------------------------------------------

    @abstractmethod
    def predict(self, trained, texts, batch_size: int = 32) -> list[dict]:
        """One dict per text with the trained model (a domainft.model.TrainedModel)."""


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


TASKS: Registry[Task] = Registry("task")


def register_task(name: str, replace: bool = False):
    """Class decorator: make a Task subclass available as `task: name` (one instance serves all runs)."""

    def add(cls: type[Task]) -> type[Task]:
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise DomainftError(f"register_task({name!r}): {cls!r} is not a Task subclass")
        missing = sorted(getattr(cls, "__abstractmethods__", ()))
        if missing:
            raise DomainftError(f"register_task({name!r}): {cls.__qualname__} does not implement "
                                f"{', '.join(missing)} (see domainft/tasks/base.py)")
        TASKS.add(name, cls(), replace)
        cls.name = name
        return cls

    return add


def get_task(name: str) -> Task:
    return TASKS.get(name)
