"""Tuning methods, one module each, found by name (`tuning.method` in a recipe).

The contract and the registry are in domainft/methods/base.py; importing this package registers
the built-in methods.
"""
from domainft.methods import adapter, freeze, full, lora, qlora  # noqa: F401  (they register themselves)
from domainft.methods.base import (
                                   METHODS,
                                   ModelContext,
                                   TuningMethod,
                                   TuningOptions,
                                   artefact_size,
                                   count_parameters,
                                   get_method,
                                   register_method,
)

__all__ = [
    "METHODS", "ModelContext", "TuningMethod", "TuningOptions", "artefact_size", "count_parameters",
    "get_method", "register_method",
]
