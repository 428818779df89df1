"""Readers for labelled text files: CSV, TSV, JSONL, Financial PhraseBank's `sentence@label` and
wide tables of excerpt lists (data/wide.py); any of them gzip-compressed (`.gz`).

Every reader returns `Example`s that remember their file and line, so later checks (empty text,
unknown label) can say exactly where the problem is.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from domainft.cells import CellError, as_text, is_missing, parse_number, render_text, template_fields
from domainft.data.tables import TABLE_FORMATS, is_saved_dataset, table_rows
from domainft.errors import DataError, where_to_look
from domainft.jsonl import json_records

if TYPE_CHECKING:
    from domainft.data.spec import ColumnSpec, DataSpec

FORMATS = ("csv", "tsv", "jsonl", "phrasebank", "wide_lists", *TABLE_FORMATS)
DEFAULT_ENCODING = {"csv": "utf-8-sig", "tsv": "utf-8-sig", "jsonl": "utf-8", "phrasebank": "latin-1",
                    "wide_lists": "utf-8-sig"}
SPREADSHEETS = {".xlsx": "an Excel", ".xlsm": "an Excel", ".xls": "an Excel", ".ods": "an OpenDocument",
                ".numbers": "a Numbers"}
SUFFIX_FORMAT = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".txt": "phrasebank",
                 ".parquet": "parquet"}


@dataclass(frozen=True)
class Example:
    text: str
    label: str
    source: str  # file path as the user wrote it
    line: int  # 1-based line where the record starts
    reference: str | None = None  # another rater's label (data.reference_column); never an input
    group: str | None = None  # data.split.group_column: rows of one group stay in one split
    pair: str | None = None  # the second text of a text pair (data.text_pair_column / _template)
    # task: multilabel: the example's label set (possibly empty); `label` is then its canonical key
    # (label_key), which deduplication compares. None for one-label examples.
    labels: tuple[str, ...] | None = None
    # task: regression: the numeric targets (data.label_column or data.target_columns), NaN where
    # the cell is one of data.missing_values; None for the label tasks.
    values: tuple[float, ...] | None = None

    @property
    def where(self) -> str:
        return f"{self.source} line {self.line}"


@dataclass(frozen=True)
class TextFields:
    """How to build the text: one column, or a template over several (`{title}: {body}`), each
    cell read as `columns` says; which columns hold the label and a reference rater's label."""

    column: str = "text"
    template: str | None = None
    label_column: str = "label"
    columns: Mapping[str, ColumnSpec] = field(default_factory=dict)
    missing_values: frozenset[str] = frozenset()
    reference_column: str | None = None
    leak_columns: tuple[str, ...] = ()
    group_column: str | None = None
    pair_column: str | None = None
    pair_template: str | None = None
    multilabel: bool = False  # task: multilabel: each row holds a label set (labels_of)
    label_delimiter: str | None = None
    label_columns: tuple[str, ...] = ()
    target_columns: tuple[str, ...] = ()  # task: regression: numeric targets instead of a label

    @classmethod
    def of(cls, spec: DataSpec, multilabel: bool = False) -> TextFields:
        return cls(spec.text_column, spec.text_template, spec.label_column, dict(spec.columns),
                   frozenset(spec.missing_values), spec.reference_column, tuple(spec.leak_columns),
                   spec.split.group_column, pair_column=spec.text_pair_column, pair_template=spec.text_pair_template,
                   multilabel=multilabel, label_delimiter=spec.label_delimiter, label_columns=tuple(spec.label_columns))

    @property
    def has_pair(self) -> bool:
        return self.pair_column is not None or self.pair_template is not None

    def template_columns(self) -> list[str]:
        return [self.column] if self.template is None else template_fields(self.template)

    def pair_columns(self) -> list[str]:
        if not self.has_pair:
            return []
        return [self.pair_column] if self.pair_template is None else template_fields(self.pair_template)

    def needed_columns(self) -> dict[str, str]:
        """Column -> the recipe field that asks for it (named when the file lacks the column)."""
        need = {name: "data.text_template" if self.template else "data.text_column"
                for name in self.template_columns()}
        for name in self.pair_columns():
            need.setdefault(name, "data.text_pair_template" if self.pair_template else "data.text_pair_column")
        if self.target_columns:
            setting = "data.target_columns" if self.target_columns != (self.label_column,) else "data.label_column"
            for name in self.target_columns:
                need.setdefault(name, setting)
        elif self.label_columns:
            for name in self.label_columns:
                need.setdefault(name, "data.label_columns")
        else:
            need.setdefault(self.label_column, "data.label_column")
        if self.reference_column:
            need.setdefault(self.reference_column, "data.reference_column")
        for name in self.columns:
            need.setdefault(name, f"data.columns (key {name!r})")
        for name in self.leak_columns:
            need.setdefault(name, "data.leak_columns")
        if self.group_column:
            need.setdefault(self.group_column, "data.split.group_column")
        return need

    def text_of(self, row: dict) -> str:
        """The model's input; a cell that does not read as its column says raises CellError."""
        return self._render(row, self.column, self.template)

    def pair_of(self, row: dict) -> str | None:
        """The second text of a pair (None without data.text_pair_*)."""
        return self._render(row, self.pair_column, self.pair_template) if self.has_pair else None

    def _render(self, row: dict, column: str | None, template: str | None) -> str:
        return render_text(row, column, template, self.columns, self.missing_values)

    def reference_of(self, row: dict) -> str | None:
        if self.reference_column is None:
            return None
        raw = as_text(row[self.reference_column])
        return None if not raw or is_missing(raw, self.missing_values) else raw

    def values_of(self, row: dict) -> tuple[float, ...]:
        """The numeric targets (a decimal comma reads as a point); NaN for a missing-value marker."""
        values = []
        for name in self.target_columns:
            cell = row[name]
            if isinstance(cell, (list, dict)):
                raise CellError(f"column {name!r}: holds a {type(cell).__name__} ({cell!r}), not a number")
            raw = as_text(cell)
            if is_missing(raw, self.missing_values):
                values.append(math.nan)
            elif not raw:
                raise CellError(f"column {name!r}: empty target; fill it in, remove the row, or list '' in "
                                "data.missing_values to leave rows without a target out (counted)")
            else:
                values.append(parse_number(raw, name))
        return tuple(values)

    def group_of(self, row: dict) -> str | None:
        return as_text(row[self.group_column]) if self.group_column else None

    def labels_of(self, row: dict) -> tuple[str, ...]:
        """task: multilabel: the row's label set, in the order written (repeats dropped): the 0/1
        cells of data.label_columns, a JSON list, a cell split at data.label_delimiter, or one
        label; an empty cell (or JSON null, or []) is the empty set. CellError on anything else."""
        if self.label_columns:
            return tuple(name for name in self.label_columns if _flag(row[name], name))
        raw = row[self.label_column]
        if isinstance(raw, dict):
            raise CellError(f"{self.label_column} holds a JSON object ({raw!r}); give a list of labels")
        if isinstance(raw, (list, tuple)):
            items = [as_text(v) for v in raw]
            if any(isinstance(v, (list, tuple, dict)) for v in raw) or not all(items):
                raise CellError(f"{self.label_column} holds {raw!r}: a list of labels holds non-empty "
                                "strings (or numbers) only")
        else:
            text = as_text(raw)
            if self.label_delimiter is not None:
                items = [v.strip() for v in text.split(self.label_delimiter) if v.strip()]
            else:
                items = [text] if text else []
        return tuple(dict.fromkeys(items))


TRUE_CELLS, FALSE_CELLS = ("1", "true"), ("0", "false")


def _flag(value, column: str) -> bool:
    """A 0/1 cell of data.label_columns: 0, 1, true, false (any case; 1.0 and 0.0 from numeric
    tables too)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    text = as_text(value).lower()
    if text in TRUE_CELLS or text in FALSE_CELLS:
        return text in TRUE_CELLS
    raise CellError(f"column {column!r} (data.label_columns) holds {as_text(value)!r}; a label column "
                    "holds 0/1 or true/false: fix the cell")


def label_key(labels: tuple[str, ...]) -> str:
    """One string per label set, whatever its order: what deduplication compares (two rows with
    the same text and the same set are duplicates, with different sets conflicting)."""
    return json.dumps(sorted(labels), ensure_ascii=False)


def detect_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    if is_saved_dataset(path):
        return "hf_dataset"
    _not_a_directory(path)
    suffix = _data_suffix(path)
    found = SUFFIX_FORMAT.get(suffix)
    if suffix in SPREADSHEETS:
        raise DataError(f"{path}: {SPREADSHEETS[suffix]} workbook is not read; save the sheet as CSV (UTF-8) "
                        "and give that file (its column names become data.text_column / data.label_column)")
    if found is None:
        raise DataError(
            f"{path}: cannot tell the format from the suffix {suffix!r}; "
            f"set data.format to one of: {', '.join(FORMATS)}"
        )
    return found


def _not_a_directory(path: Path) -> None:
    if path.is_dir():
        raise DataError(f"{path}: a directory, not a data file; give the file itself (directories are read as "
                        "a saved Hugging Face dataset, with state.json, or by task: ner as a corpus folder)")


def _data_suffix(path: Path) -> str:
    """`.csv` for both `d.csv` and `d.csv.gz`: compression does not change the format."""
    inner = path.with_suffix("") if path.suffix.lower() == ".gz" else path
    return inner.suffix.lower()


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it is gzip-compressed (by its magic bytes, not its name)."""
    _not_a_directory(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found ({where_to_look(path)})")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read the file ({e.strerror or e})") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: a damaged or truncated gzip file ({e}); download it again, or "
                        "gunzip it to see how far it reads") from None


UTF8_BOM = b"\xef\xbb\xbf"


def read_text(path: Path, encoding: str) -> str:
    """Decode a whole file; on bad bytes, name the line and suggest data.encoding.

    A byte-order mark is not text: it is dropped whatever the encoding. A file that starts with the
    UTF-8 one is UTF-8 even where a single-byte encoding is asked for (phrasebank's latin-1 default
    would read the mark as 'ï»¿' and the rest as mojibake), unless it does not decode as UTF-8."""
    raw = read_bytes(path)
    if raw.startswith(UTF8_BOM) and not _is_utf8(encoding):
        try:
            return raw[len(UTF8_BOM):].decode("utf-8")
        except UnicodeDecodeError:
            raw = raw[len(UTF8_BOM):]  # not UTF-8 after all: read the rest as asked
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(
            f"{path} line {line}: bytes {raw[e.start:e.end]!r} are not valid {encoding}; "
            "set data.encoding to the file's encoding (e.g. latin-1 or cp1252)"
        ) from None
    except LookupError:
        raise DataError(f"data.encoding: unknown encoding {encoding!r}") from None
    return text.removeprefix("\ufeff")


def _is_utf8(encoding: str) -> bool:
    import codecs

    try:
        return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")
    except LookupError:
        raise DataError(f"data.encoding: unknown encoding {encoding!r}") from None


def read_examples(path: Path, fmt: str, fields: TextFields, encoding: str | None = None,
                  delimiter: str | None = None) -> list[Example]:
    """One example per row of a csv / tsv / jsonl / phrasebank file (wide tables: data/wide.py)."""
    fmt = detect_format(path, fmt)
    if fmt in TABLE_FORMATS:
        return _read_table(path, fmt, fields)
    text = read_text(path, encoding or DEFAULT_ENCODING[fmt])
    check_not_empty(path, text, fmt)
    if fmt == "phrasebank":
        return _read_phrasebank(path, text)
    if fmt == "jsonl":
        return _read_jsonl(path, text, fields)
    return _read_delimited(path, text, fields, delimiter or ("," if fmt == "csv" else "\t"))


def check_not_empty(path: Path, text: str, fmt: str) -> None:
    """An empty (or blank) file is said to be one, not reported as a file without columns."""
    if not text.strip():
        raise DataError(f"{path}: the file is empty (read as data.format {fmt}), so it holds no examples; "
                        "check data.path / data.train")


def _check_columns(path: Path, columns: list[str], fields: TextFields, where: str = "") -> None:
    for name, setting in fields.needed_columns().items():
        if name not in columns:
            raise DataError(
                f"{path}{where}: no column {name!r}; columns are: {', '.join(map(str, columns)) or '(none)'}. "
                f"Set {setting} to one of them.{_delimiter_hint(columns)}"
            )
        at = [i for i, column in enumerate(columns, start=1) if column == name]
        if len(at) > 1:  # csv reads the last of them, silently
            raise DataError(f"{path}{where}: the header names column {name!r} {len(at)} times (columns "
                            f"{', '.join(map(str, at))}), and {setting} reads it; rename all but one")


def _delimiter_hint(columns: list[str]) -> str:
    # One header cell full of another separator: the file is not split the way it is read.
    if len(columns) == 1:
        for sep in (";", "\t", ",", "|"):
            if sep in str(columns[0]):
                return f" The header looks {sep!r}-separated: set data.delimiter: {sep!r}."
    return ""


def _example(path: Path, line: int, row: dict, fields: TextFields) -> Example:
    try:
        text = fields.text_of(row)
        values = fields.values_of(row) if fields.target_columns else None
    except CellError as e:
        raise DataError(f"{path} line {line}: {e}") from None
    if fields.multilabel:
        try:
            labels = fields.labels_of(row)
        except CellError as e:
            raise DataError(f"{path} line {line}: {e}") from None
        return Example(text, label_key(labels), str(path), line, None, fields.group_of(row), labels=labels,
                       pair=_pair(path, line, row, fields))
    if values is not None:
        return Example(text, "", str(path), line, None, fields.group_of(row), values=values,
                       pair=_pair(path, line, row, fields))
    label = row[fields.label_column]
    if isinstance(label, (list, tuple, dict)):
        raise DataError(f"{path} line {line}: {fields.label_column} holds a {type(label).__name__} ({label!r}); "
                        "task: classification takes one label per example. For several labels per example "
                        "set task: multilabel (it reads a JSON list, a cell split at data.label_delimiter, "
                        "or 0/1 columns named in data.label_columns)")
    return Example(text, as_text(label), str(path), line, fields.reference_of(row), fields.group_of(row),
                   pair=_pair(path, line, row, fields))


def _pair(path: Path, line: int, row: dict, fields: TextFields) -> str | None:
    try:
        return fields.pair_of(row)
    except CellError as e:
        raise DataError(f"{path} line {line}: {e}") from None


def _read_delimited(path: Path, text: str, fields: TextFields, delimiter: str) -> list[Example]:
    columns, rows = delimited_rows(path, text, delimiter)
    _check_columns(path, columns, fields)
    return [_example(path, line, row, fields) for line, row in rows]


def delimited_rows(path: Path, text: str, delimiter: str):
    """(header, iterator of (line where the row starts, row dict)); ragged rows and csv errors
    raise DataError naming the line."""
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    return list(reader.fieldnames or []), _rows(path, reader, delimiter)


def _rows(path: Path, reader: csv.DictReader, delimiter: str):
    line = 2  # line 1 is the header
    try:
        for row in reader:
            if None in row:  # more cells than header columns
                raise DataError(
                    f"{path} line {line}: {len(row) - 1 + len(row[None])} cells but the header has "
                    f"{len(row) - 1}; quote cells that contain {delimiter!r}"
                )
            yield line, row
            line = reader.line_num + 1
    except csv.Error as e:
        raise DataError(f"{path} line {reader.line_num}: {e}") from None


def _read_table(path: Path, fmt: str, fields: TextFields) -> list[Example]:
    """Parquet / a saved `datasets` directory: row N is reported as line N (1-based)."""
    columns, rows = table_rows(path, fmt)
    if not rows:
        raise DataError(f"{path}: holds no rows (read as data.format {fmt})")
    _check_columns(path, columns, fields)
    return [_example(path, n, row, fields) for n, row in enumerate(rows, start=1)]


def _read_jsonl(path: Path, text: str, fields: TextFields) -> list[Example]:
    examples = []
    for line, row in json_records(text, str(path)):
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
