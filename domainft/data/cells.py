"""One cell of a table as the text template sees it: missing markers, decimal commas, coded values.

Tabular exports (clinical registries, Excel) mark missing values with strings such as '??' or
'#NULL!', write decimals with a comma and store categories as codes. `data.columns` says how each
column reads, so the text the model learns from says 'SpO2 unknown' rather than 'SpO2 #NULL!'.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from domainft.data.spec import ColumnSpec


class CellError(ValueError):
    """A cell that does not read as its column says; the reader adds file and line."""


def as_text(value) -> str:
    return "" if value is None else str(value).strip()


def is_missing(raw: str, missing_values: frozenset[str]) -> bool:
    return raw in missing_values


def render(raw: str, name: str, spec: ColumnSpec | None, missing_values: frozenset[str]) -> str:
    """The template text of one cell (already stripped)."""
    if is_missing(raw, missing_values):
        return spec.missing if spec is not None else "unknown"
    if spec is None:
        return raw
    flags: list[str] = []
    if spec.number:
        value = parse_number(raw, name)
        text = format(value, "f").rstrip("0").rstrip(".")  # 36.5 -> '36.5', 100.0 -> '100'
        flags = [f.text for f in spec.flags if f.matches(value)]
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
