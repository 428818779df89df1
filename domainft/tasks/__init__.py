"""Tasks (classification, multilabel, regression, ner, generation), found by name (`task:` in a recipe).

The contract and the registry are in domainft/tasks/base.py; importing this package registers the
built-in tasks.
"""
from domainft.tasks import classification, generation, multilabel, ner, regression  # noqa: F401  (they register themselves)
from domainft.tasks.base import TASKS, Task, get_task, register_task

__all__ = ["TASKS", "Task", "get_task", "register_task"]
