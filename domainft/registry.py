"""Name -> implementation registries for tasks and tuning methods (spaCy-style).

Each registry lives in its plug-in kind's contract module (`domainft.tasks.base.TASKS`,
`domainft.methods.base.METHODS`), so a plug-in imports the contract, never its package. User code
registers its own entries before building a recipe, from Python or with `domainft run --code FILE`:

    from domainft.methods import TuningMethod, register_method

    @register_method("my_method")
    class MyMethod(TuningMethod): ...

Registering a name that is taken is an error unless `replace=True` says it is meant.
"""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

from domainft.errors import DomainftError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, replace: bool = False) -> Callable[[T], T]:
        """Decorator adding `entry` under `name`; a taken name needs replace=True."""

        def add(entry: T) -> T:
            self.add(name, entry, replace)
            return entry

        return add

    def add(self, name: str, entry: T, replace: bool = False) -> None:
        if name in self._entries and not replace:
            raise DomainftError(f"{self.kind} {name!r} is already registered (by {_origin(self._entries[name])}); "
                                f"choose another name, or pass replace=True to replace it")
        self._entries[name] = entry

    def remove(self, name: str) -> None:
        """Forget `name` (tests that register a plug-in clean up with it)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise KeyError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}")
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries


def _origin(entry) -> str:
    cls = entry if isinstance(entry, type) else type(entry)
    return f"{cls.__module__}.{cls.__qualname__}"
