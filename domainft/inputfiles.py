"""The files `domainft predict` and `generate` read with --input: plain text (one input a line),
JSON Lines, or (predict) a CSV / TSV table; gzip-compressed or not. Torch-free (a serving host's
predict reads them too). Every failure names the file, the line and the form expected."""
from __future__ import annotations

from pathlib import Path

from domainft.errors import DomainftError, where_to_look
from domainft.jsonl import jsonl_records


def read_inputs(path: Path, keys: tuple[str, ...] = ("text",),
                expected: str = 'a JSON string, {"text": ...} or a list of words',
                words: bool = False, rows=None) -> list:
    """--input: a .txt file (one text a line, blank lines skipped), JSONL (per line a JSON string or
    list, or an object holding one under the first of `keys`) or, for predict, a CSV / TSV table;
    gzip-compressed or not (.gz). A list holds words (`words`: predict, ner) or chat messages {"role",
    "content"} (generate). `rows` (records.Records): the model builds its texts from columns, so an object
    or a table row is kept whole, for the model to render."""
    text = _input_text(path)
    kind = path.name.removesuffix(".gz").rpartition(".")[2].lower()
    if kind == "txt":
        items = [line.strip() for line in text.split("\n") if line.strip()]  # not splitlines: \f stays
    elif kind in ("csv", "tsv") and words:  # predict: a table, one input per row
        items = _table_inputs(path, text, kind, rows)
    else:
        items = _input_records(path, text, keys, expected, words, rows)
    if not items:
        raise DomainftError(f"--input: {path} holds no lines to read; give one {expected} per line")
    return items


def _input_text(path: Path) -> str:
    if path.is_dir():
        raise DomainftError(f"--input: {path} is a directory; give a .txt or JSONL file, one text per line")
    if not path.is_file():
        raise DomainftError(f"--input: {path} does not exist ({where_to_look(path)})")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        import gzip

        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DomainftError(f"--input: {path} is not a complete gzip file ({e}); compress it again, or "
                                "give it uncompressed without the .gz") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DomainftError(f"--input: {path} line {line}: bytes {raw[e.start:e.end]!r} are not valid UTF-8; "
                            "save the file as UTF-8") from None


def _table_inputs(path: Path, text: str, kind: str, rows) -> list:
    """A CSV / TSV table's rows: whole (a model that renders rows), else its text (and text_pair) column."""
    import csv
    import io

    sample = text[:4096].split("\n", 1)[0]
    try:  # the header says the separator (',' ';' tab '|'): spreadsheets in many locales write ';'
        delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = "\t" if kind == "tsv" else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    columns = reader.fieldnames or []
    if rows is None and "text" not in columns:
        raise DomainftError(f"--input: {path} has no 'text' column (columns: {', '.join(columns) or 'none'}); "
                            "name the column of the texts 'text' (and a second text 'text_pair')")
    items = []
    for row in reader:
        row = {k: v for k, v in row.items() if k is not None}
        if rows is not None:
            items.append(row)
        else:
            items.append({"text": row["text"], "text_pair": row["text_pair"]} if "text_pair" in row else row["text"])
    return items


def _input_records(path: Path, text: str, keys: tuple[str, ...], expected: str, words: bool,
                   rows=None) -> list:
    items = []
    try:
        records = list(jsonl_records(text, f"--input: {path}"))
    except DomainftError as e:
        if "not valid JSON" in str(e):  # most often plain text in a file not named .txt
            raise DomainftError(f"{e}; a file of plain texts, one per line, is read as such when its name "
                                "ends in .txt") from None
        raise
    for n, value in records:
        if isinstance(value, dict) and words and "text_pair" in value:  # a text pair, {"text", "text_pair"}
            if not (isinstance(value.get("text"), str) and isinstance(value["text_pair"], str)):
                raise DomainftError(f"--input: {path} line {n}: a text pair needs two strings, "
                                    '{"text": ..., "text_pair": ...}')
            items.append({"text": value["text"], "text_pair": value["text_pair"]})
            continue
        if rows is not None and rows.is_record(value):  # a row the model renders
            items.append(value)
            continue
        if isinstance(value, dict):
            value = next((value[k] for k in keys if k in value), None)
        if not isinstance(value, (str, list)) or isinstance(value, list) and not _list_item_ok(value, words):
            raise DomainftError(f"--input: {path} line {n}: expected {expected}")
        items.append(value)
    return items


def _list_item_ok(value: list, words: bool) -> bool:
    if words:
        return all(isinstance(v, str) for v in value)
    return bool(value) and all(isinstance(m, dict) and isinstance(m.get("role"), str)
                               and isinstance(m.get("content"), str) for m in value)
