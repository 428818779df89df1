"""What a task supplies to the pipeline: data, model class, encoding, metrics, decoding."""
from __future__ import annotations

from typing import ClassVar


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

    def greater_is_better(self, metric: str) -> bool:
        return metric != "loss"

    @property
    def model_class(self):
        raise NotImplementedError

    def words(self, examples) -> list[str]:
        """The words of `examples` in order (lexicon mining, tokens-per-word statistics)."""
        raise NotImplementedError

    def evaluate(self, predictions, label_ids, labels: list[str], dataset, examples, recipe, split: str) -> dict:
        """A split's entry in metrics.json; tasks with recipe-dependent extras override it."""
        return self.report(predictions, label_ids, labels, dataset)

    def manifest_extras(self, recipe) -> dict:
        """Entries the model manifest carries for prediction (beyond labels and lengths)."""
        return {}
