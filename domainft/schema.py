"""The building blocks of recipe sections: strict pydantic models and errors placed at a field path."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError


class Section(BaseModel):
    """A recipe section: unknown keys are errors, defaults are validated too."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


def field_error(path: str, message: str) -> PydanticCustomError:
    """An error placed at `path` (dotted, from the recipe root) by a model-level check."""
    return PydanticCustomError("domainft", "{message}", {"path": path, "message": message})


def cell_text(value: Any) -> str:
    """A YAML scalar as the text a data cell holds (`1` -> '1')."""
    return str(value).strip() if value is not None else ""


def changed(section: BaseModel, names) -> list[str]:
    """Those of `names` whose value differs from the field's default."""
    fields = type(section).model_fields
    return [n for n in names if getattr(section, n) != fields[n].get_default(call_default_factory=True)]
