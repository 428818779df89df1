"""JSON Lines reading shared by the data readers and the CLI (stdlib only: the torch-free predictor
uses it too)."""
from __future__ import annotations

import json
from typing import Any, Iterator

from domainft.errors import DataError


def jsonl_records(text: str, where: str) -> Iterator[tuple[int, Any]]:
    """(1-based line number, parsed value) for each non-blank line of `text`; a line that is not
    JSON is a DataError naming `where` and the line."""
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            yield lineno, json.loads(raw)
        except json.JSONDecodeError as e:
            raise DataError(f"{where} line {lineno}: not valid JSON ({e.msg})") from None
