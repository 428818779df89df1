"""Tuning methods, one module each, found by name (`tuning.method` in a recipe)."""
from domainft.methods.base import ModelContext, TuningMethod, TuningOptions, artefact_size, count_parameters
from domainft.registry import Registry

METHODS: Registry[type[TuningMethod]] = Registry("tuning method")


def register_method(name: str):
    """Class decorator: make a TuningMethod subclass available as `tuning.method: name`."""

    def add(cls: type[TuningMethod]) -> type[TuningMethod]:
        cls.name = name
        return METHODS.register(name)(cls)

    return add


def get_method(name: str) -> type[TuningMethod]:
    return METHODS.get(name)


# Built-in methods register themselves on import.
from domainft.methods import adapter, freeze, full, lora, qlora  # noqa: E402,F401

__all__ = [
    "METHODS", "ModelContext", "TuningMethod", "TuningOptions", "artefact_size", "count_parameters",
    "get_method", "register_method",
]
