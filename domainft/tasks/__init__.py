"""Tasks (classification, ner, generation), found by name (`task:` in a recipe)."""
from domainft.registry import Registry
from domainft.tasks.base import Task

TASKS: Registry[Task] = Registry("task")


def register_task(name: str):
    def add(cls: type[Task]) -> type[Task]:
        cls.name = name
        TASKS.register(name)(cls())
        return cls

    return add


def get_task(name: str) -> Task:
    return TASKS.get(name)


from domainft.tasks import classification, generation, ner  # noqa: E402,F401

__all__ = ["TASKS", "Task", "get_task", "register_task"]
