"""JSON Lines reading shared by the data readers and the CLI (stdlib only: the torch-free predictor
uses it too)."""
from __future__ import annotations

import json
import re
from typing import Any, Iterator

from domainft.errors import DataError

# A \uD800-\uDFFF escape: JSON allows one, but alone (not a high + low pair) it is no character.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def jsonl_records(text: str, where: str) -> Iterator[tuple[int, Any]]:
    """(1-based line number, parsed value) for each non-blank line of `text`; a line that is not
    JSON, or whose strings hold a lone surrogate escape (not UTF-8 text), is a DataError naming
    `where` and the line."""
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as e:
            raise DataError(f"{where} line {lineno}: not valid JSON ({e.msg})") from None
        if _SURROGATE_ESCAPE.search(raw):  # rare: only then is the parsed value walked
            bad = lone_surrogate(value)
            if bad is not None:
                raise DataError(f"{where} line {lineno}: {shown(bad)} is not valid UTF-8 text (a lone "
                                "surrogate escape such as \\udce9, from text decoded with the wrong "
                                "encoding); fix or remove it")
        yield lineno, value


def lone_surrogate(value: Any) -> str | None:
    """The first string in `value` (a string, or nested lists / dicts) that cannot be encoded as UTF-8
    because it holds a lone surrogate (JSON escapes, or command-line bytes that were not UTF-8)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value
        return None
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if isinstance(value, list):
        for item in value:
            bad = lone_surrogate(item)
            if bad is not None:
                return bad
    return None


def shown(text: str, width: int = 40) -> str:
    """repr() of `text`, cut to about `width` characters around its first lone surrogate (if any)."""
    if len(text) <= width:
        return repr(text)
    at = next((i for i, c in enumerate(text) if "\ud800" <= c <= "\udfff"), 0)
    start = max(0, at - width // 2)
    cut = text[start:start + width]
    return ("..." if start else "") + repr(cut) + ("..." if start + width < len(text) else "")
