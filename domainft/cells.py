"""One cell of a table as the text template sees it: missing markers, decimal commas, coded values.

Tabular exports (clinical registries, Excel) mark missing values with strings such as '??' or
'#NULL!', write decimals with a comma and store categories as codes. `data.columns` says how each
column reads, so the text the model learns from says 'SpO2 unknown' rather than 'SpO2 #NULL!'.
Stdlib only: the data readers render training rows with it, and the torch-free predictor new rows
(records.py), so that both read a cell alike.
"""
from __future__ import annotations

import math
import string
from dataclasses import dataclass, field
from typing import Protocol


class Flag(Protocol):
    min: float | None
    max: float | None
    text: str


class Column(Protocol):
    """How one column's cells read (data.spec.ColumnSpec, or a manifest's copy of it: ColumnRule)."""
    number: bool
    values: dict[str, str] | None
    unit: str | None
    missing: str
    flags: list


def in_range(flag: Flag, value: float) -> bool:
    """A flag's bounds are inclusive; an absent bound is open."""
    return (flag.min is None or value >= flag.min) and (flag.max is None or value <= flag.max)


@dataclass(frozen=True)
class FlagRule:
    text: str
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class ColumnRule:
    """A column's settings as a model manifest keeps them (ColumnSpec.model_dump), without pydantic."""
    number: bool = False
    values: dict[str, str] | None = None
    unit: str | None = None
    missing: str = "unknown"
    flags: list = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict) -> ColumnRule:
        return cls(d.get("number", False), d.get("values"), d.get("unit"), d.get("missing", "unknown"),
                   [FlagRule(f["text"], f.get("min"), f.get("max")) for f in d.get("flags") or []])


def template_fields(template: str) -> list[str]:
    """Column names a `{title}: {body}` template uses, in order; ValueError on unbalanced braces."""
    return [*dict.fromkeys(f for _, f, _, _ in string.Formatter().parse(template) if f)]


class CellError(ValueError):
    """A cell that does not read as its column says; the reader adds file and line."""


def as_text(value) -> str:
    return "" if value is None else str(value).strip()


def is_missing(raw: str, missing_values: frozenset[str]) -> bool:
    return raw in missing_values


def render_text(row: dict, column: str | None, template: str | None, rules: dict,
                missing_values: frozenset[str]) -> str:
    """A row's text: its `column` whole, or `template` filled with its cells, each read by its rule."""
    if template is None:
        raw = as_text(row[column])
        return "" if is_missing(raw, missing_values) else raw  # the empty-text check names it
    cells = {name: render(as_text(row[name]), name, rules.get(name), missing_values)
             for name in template_fields(template)}
    return template.format_map(cells)


def render(raw: str, name: str, spec: Column | None, missing_values: frozenset[str]) -> str:
    """The template text of one cell (already stripped)."""
    if is_missing(raw, missing_values):
        return spec.missing if spec is not None else "unknown"
    if spec is None:
        return raw
    flags: list[str] = []
    if spec.number:
        value = parse_number(raw, name)
        text = format(value, "f").rstrip("0").rstrip(".")  # 36.5 -> '36.5', 100.0 -> '100'
        flags = [f.text for f in spec.flags if in_range(f, value)]
    elif spec.values is not None:
        text = _code(raw, name, spec.values)
    else:
        text = raw
    text = f"{text} {spec.unit}" if spec.unit else text
    return f"{text} ({', '.join(flags)})" if flags else text


def parse_number(raw: str, name: str) -> float:
    # One comma and no point is a decimal comma ('36,5'); with both, the reading is ambiguous.
    text = raw.replace(",", ".") if raw.count(",") == 1 and "." not in raw else raw
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise CellError(f"column {name!r}: {raw!r} is not a number; if it marks a missing value, list "
                        f"it in data.missing_values (or check data.encoding), else fix the cell")
    return value


def _code(raw: str, name: str, values: dict[str, str]) -> str:
    if raw not in values:
        raise CellError(f"column {name!r}: code {raw!r} is not in data.columns.{name}.values "
                        f"({', '.join(values)}); add it there, or list it in data.missing_values")
    return values[raw]
