"""What a task supplies to the pipeline: data, model class, encoding, metrics, decoding."""
from __future__ import annotations

from typing import ClassVar


class Task:
    name: ClassVar[str]
    metric_names: ClassVar[tuple[str, ...]]  # what evaluation reports; early stopping picks one
    peft_task_type: ClassVar[str]

    def greater_is_better(self, metric: str) -> bool:
        return metric != "loss"

    @property
    def model_class(self):
        raise NotImplementedError
