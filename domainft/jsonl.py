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


def json_records(text: str, where: str) -> Iterator[tuple[int, Any]]:
    """The records of a data file: JSON Lines (one value per line, as jsonl_records), or a JSON
    array of records (a `.json` export: `[{...}, {...}]`, pretty-printed or on one line), each
    with the line where it starts. A file whose first line is a whole JSON value is JSON Lines,
    unless it is the only line and an array of objects."""
    first = next((raw for raw in text.splitlines() if raw.strip()), "")
    try:
        head = json.loads(first)
    except json.JSONDecodeError:
        head = None
        if text.lstrip().startswith("["):
            yield from _array_records(text, where)
            return
        _refuse_single_object(text, where)
    else:
        if isinstance(head, list) and head and all(isinstance(r, dict) for r in head) \
                and first.strip() == text.strip():
            yield from _array_records(text, where)
            return
    yield from jsonl_records(text, where)


def _array_records(text: str, where: str) -> Iterator[tuple[int, Any]]:
    decoder = json.JSONDecoder()
    i = _skip_space(text, text.index("[") + 1)
    escapes = bool(_SURROGATE_ESCAPE.search(text))  # rare: only then are the records walked
    if text[i:i + 1] == "]":
        return
    while True:
        line = text.count("\n", 0, i) + 1
        try:
            value, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError as e:
            raise DataError(f"{where} line {e.lineno}: not valid JSON ({e.msg})") from None
        bad = lone_surrogate(value) if escapes else None
        if bad is not None:
            raise DataError(f"{where} line {line}: {shown(bad)} is not valid UTF-8 text (a lone surrogate "
                            "escape such as \\udce9, from text decoded with the wrong encoding); fix or remove it")
        yield line, value
        i = _skip_space(text, i)
        if text[i:i + 1] == ",":
            i = _skip_space(text, i + 1)
            continue
        if text[i:i + 1] == "]" and not text[i + 1:].strip():
            return
        raise DataError(f"{where} line {text.count(chr(10), 0, i) + 1}: not valid JSON (expected ',' or the "
                        "closing ']' of the array of records)")


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _refuse_single_object(text: str, where: str) -> None:
    """A file holding one JSON object (records keyed by id, as FiQA's): say so, rather than report
    its first line as bad JSON Lines."""
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        return
    if isinstance(whole, dict):
        raise DataError(f"{where}: one JSON object holding the whole file, not JSON Lines (one object per "
                        "line) or a JSON array of objects; flatten it to one record per line first "
                        "(bench/regression_scores.py does so for FiQA's id-keyed files)")
