"""Readers for labelled text files: CSV, TSV, JSONL and Financial PhraseBank's `sentence@label`.

Every reader returns `Example`s that remember their file and line, so later checks (empty text,
unknown label) can say exactly where the problem is.
"""
from __future__ import annotations

import csv
import io
import json
import string
from dataclasses import dataclass
from pathlib import Path

from domainft.errors import DataError

FORMATS = ("csv", "tsv", "jsonl", "phrasebank")
DEFAULT_ENCODING = {"csv": "utf-8-sig", "tsv": "utf-8-sig", "jsonl": "utf-8", "phrasebank": "latin-1"}
SUFFIX_FORMAT = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".txt": "phrasebank"}


@dataclass(frozen=True)
class Example:
    text: str
    label: str
    source: str  # file path as the user wrote it
    line: int  # 1-based line where the record starts

    @property
    def where(self) -> str:
        return f"{self.source} line {self.line}"


@dataclass(frozen=True)
class TextFields:
    """How to build the text: one column, or a template over several (`{title}: {body}`)."""

    column: str = "text"
    template: str | None = None
    label_column: str = "label"

    def needed_columns(self) -> list[str]:
        if self.template is None:
            return [self.column, self.label_column]
        names = [f for _, f, _, _ in string.Formatter().parse(self.template) if f]
        return [*dict.fromkeys(names), self.label_column]

    def text_of(self, row: dict) -> str:
        if self.template is None:
            return _as_text(row[self.column])
        return self.template.format_map({k: _as_text(v) for k, v in row.items()})


def _as_text(value) -> str:
    return "" if value is None else str(value).strip()


def detect_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    found = SUFFIX_FORMAT.get(path.suffix.lower())
    if found is None:
        raise DataError(
            f"{path}: cannot tell the format from the suffix {path.suffix!r}; "
            f"set data.format to one of: {', '.join(FORMATS)}"
        )
    return found


def read_text(path: Path, encoding: str) -> str:
    """Decode a whole file; on bad bytes, name the line and suggest data.encoding."""
    if not path.is_file():
        raise DataError(f"{path}: file not found (relative paths start at {Path.cwd()})")
    raw = path.read_bytes()
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(
            f"{path} line {line}: bytes {raw[e.start:e.end]!r} are not valid {encoding}; "
            "set data.encoding to the file's encoding (e.g. latin-1 or cp1252)"
        ) from None
    except LookupError:
        raise DataError(f"data.encoding: unknown encoding {encoding!r}") from None


def read_examples(path: Path, fmt: str, fields: TextFields, encoding: str | None = None) -> list[Example]:
    fmt = detect_format(path, fmt)
    text = read_text(path, encoding or DEFAULT_ENCODING[fmt])
    if fmt == "phrasebank":
        return _read_phrasebank(path, text)
    if fmt == "jsonl":
        return _read_jsonl(path, text, fields)
    return _read_delimited(path, text, fields, delimiter="," if fmt == "csv" else "\t")


def _check_columns(path: Path, columns: list[str], fields: TextFields, where: str = "") -> None:
    for name in fields.needed_columns():
        if name not in columns:
            setting = "data.label_column" if name == fields.label_column else (
                "data.text_template" if fields.template else "data.text_column")
            raise DataError(
                f"{path}{where}: no column {name!r}; columns are: {', '.join(map(str, columns)) or '(none)'}. "
                f"Set {setting} to one of them."
            )


def _example(path: Path, line: int, row: dict, fields: TextFields) -> Example:
    return Example(fields.text_of(row), _as_text(row[fields.label_column]), str(path), line)


def _read_delimited(path: Path, text: str, fields: TextFields, delimiter: str) -> list[Example]:
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    _check_columns(path, list(reader.fieldnames or []), fields)
    examples, line = [], 2  # line 1 is the header
    try:
        for row in reader:
            if None in row:  # more cells than header columns
                raise DataError(
                    f"{path} line {line}: {len(row) - 1 + len(row[None])} cells but the header has "
                    f"{len(row) - 1}; quote cells that contain {delimiter!r}"
                )
            examples.append(_example(path, line, row, fields))
            line = reader.line_num + 1
    except csv.Error as e:
        raise DataError(f"{path} line {reader.line_num}: {e}") from None
    return examples


def _read_jsonl(path: Path, text: str, fields: TextFields) -> list[Example]:
    examples = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as e:
            raise DataError(f"{path} line {line}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path} line {line}: expected a JSON object, got {type(row).__name__}")
        _check_columns(path, list(row), fields, where=f" line {line}")
        examples.append(_example(path, line, row, fields))
    return examples


def _read_phrasebank(path: Path, text: str) -> list[Example]:
    """`sentence@label` per line; split on the LAST '@' (sentences may contain '@')."""
    examples = []
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        sentence, sep, label = raw.rpartition("@")
        if not sep:
            raise DataError(f"{path} line {line}: expected 'sentence@label', found no '@'")
        examples.append(Example(sentence.strip(), label.strip(), str(path), line))
    return examples
