"""Token-tagged data for NER: CoNLL column files and JSONL, tag schemes converted to IOB2.

CoNLL: one token per line with its tag in a chosen column (default: the last), a blank line between
sentences, `-DOCSTART-` lines ignored. JSONL: one sentence per line, `{"tokens": [...], "tags": [...]}`,
or a text with character-offset entity spans as annotation tools export them (doccano, Prodigy /
spaCy): `{"text": ..., "spans": [[start, end, label], ...]}`, split into words the way prediction
splits a text (wordwindows.WORD), so a model trained on spans answers in the same offsets.
Schemes IOB1, IOB2 (BIO), BIOES and BILOU are read and converted to IOB2, the scheme the model is
trained on and seqeval scores in strict mode. Malformed tags are errors naming file and line; the
repairs offered (`data.repair_tags`: an I-X that opens an entity becomes B-X; a span that cuts a word
grows to whole words) are counted in the report.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from domainft.data.readers import read_text
from domainft.errors import DataError
from domainft.jsonl import json_records

if TYPE_CHECKING:
    from domainft.data.spec import DataSpec

SCHEMES = ("iob2", "iob1", "bioes", "bilou")
NER_FORMATS = ("conll", "jsonl", "token_table")
# File names looked for when data.path is a directory (NCBI-disease / CoNLL-2003 conventions).
# Split words in corpus file names; testa / testb are CoNLL-2003's development and test files.
SPLIT_NAMES = {"train": ("train", "training"), "validation": ("devel", "dev", "valid", "validation", "val", "testa"),
               "test": ("test", "testb")}
DOC_SUFFIXES = (".md", ".rst", ".pdf", ".html", ".py", ".sh")  # files beside a corpus that are not data


@dataclass
class Sentence:
    words: list[str]
    tags: list[str]
    source: str
    line: int  # 1-based line of the first token (CoNLL) or of the record (JSONL)
    token_per_line: bool = True
    from_spans: bool = False  # tagged from character spans: IOB2 already, whatever data.scheme says

    def where(self, token: int = 0) -> str:
        if self.token_per_line:
            return f"{self.source} line {self.line + token}"
        return f"{self.source} line {self.line} (token {token + 1})"


@dataclass
class NerBundle:
    train: list[Sentence]
    validation: list[Sentence]
    test: list[Sentence]
    labels: list[str]  # IOB2 tags, "O" first
    report: dict = field(default_factory=dict)

    def splits(self) -> dict[str, list[Sentence]]:
        return {"train": self.train, "validation": self.validation, "test": self.test}


# --- readers ---------------------------------------------------------------------------------

def read_conll(path: Path, tag_index: int = -1, encoding: str = "utf-8") -> list[Sentence]:
    text = read_text(path, encoding)
    sentences: list[Sentence] = []
    words: list[str] = []
    tags: list[str] = []
    start = 0
    width = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("-DOCSTART-"):
            if words:
                sentences.append(Sentence(words, tags, str(path), start))
            words, tags = [], []
            continue
        cols = line.split("\t") if "\t" in line else line.split()
        if len(cols) < 2:
            raise DataError(f"{path} line {lineno}: expected a token and a tag separated by a tab or "
                            f"spaces, found {raw!r}; every non-blank line needs its tag")
        if width is None:
            width = len(cols)
        elif len(cols) != width:
            raise DataError(f"{path} line {lineno}: {len(cols)} columns, but the file's first token "
                            f"line has {width}; check for stray spaces inside a token or a missing tag")
        try:
            tag = cols[tag_index]
        except IndexError:
            raise DataError(f"{path} line {lineno}: no column {tag_index} (data.conll_tag_index); "
                            f"the line has {len(cols)}") from None
        if not words:
            start = lineno
        words.append(cols[0])
        tags.append(tag)
    if words:
        sentences.append(Sentence(words, tags, str(path), start))
    if not sentences:
        raise DataError(f"{path}: no sentences found (expected `token<TAB>tag` lines separated by blank lines)")
    return sentences


def read_token_table(path: Path, spec: DataSpec, encoding: str = "utf-8") -> list[Sentence]:
    """A token-per-row CSV / TSV (FiNER-ORD: gold_label, gold_token, doc_idx, sent_idx): consecutive
    rows sharing data.sentence_columns' values are one sentence; tags (often integers) are named
    by data.label_names."""
    from domainft.data.readers import delimited_rows

    delimiter = spec.delimiter or ("\t" if path.suffix.lower() == ".tsv" else ",")
    columns, rows = delimited_rows(path, read_text(path, encoding), delimiter)
    needed = {spec.tokens_column: "data.tokens_column", spec.tags_column: "data.tags_column",
              **{c: "data.sentence_columns" for c in spec.sentence_columns}}
    for column, setting in needed.items():
        if column not in columns:
            raise DataError(f"{setting}: {path} has no column {column!r} (its columns: {', '.join(columns)})")
    names = spec.label_names
    sentences: list[Sentence] = []
    key = None
    for line, row in rows:
        tag = (row[spec.tags_column] or "").strip()
        if names is not None:
            if tag not in names:
                raise DataError(f"data.label_names: {path} line {line}: tag {tag!r} has no name there (it names "
                                f"{', '.join(map(repr, names))})")
            tag = names[tag]
        this = tuple(row[c] for c in spec.sentence_columns)
        if this != key:
            sentences.append(Sentence([], [], str(path), line))
            key = this
        sentences[-1].words.append(row[spec.tokens_column] or "")
        sentences[-1].tags.append(tag)
    return sentences


def read_ner_jsonl(path: Path, tokens_key: str, tags_key: str, encoding: str = "utf-8",
                   spans: SpanKeys | None = None) -> list[Sentence]:
    """Sentences from JSONL: tokens and tags per record, or (`spans`) a text and its entity spans."""
    spans = spans or SpanKeys()
    sentences = []
    for lineno, record in json_records(read_text(path, encoding), str(path)):
        if not isinstance(record, dict):
            raise DataError(f"{path} line {lineno}: expected a JSON object such as "
                            f'{{"{tokens_key}": [...], "{tags_key}": [...]}}, got {type(record).__name__}')
        if tokens_key not in record and spans.of(record) is not None:
            sentences.append(_span_sentence(record, spans, f"{path} line {lineno}", str(path), lineno))
            continue
        for key in (tokens_key, tags_key):
            if key not in record:
                raise DataError(f"{path} line {lineno}: no {key!r} key (keys: {', '.join(record)}); set "
                                "data.tokens_column / data.tags_column to the names your file uses, or give "
                                f'a text and its entity spans: {{"{spans.text}": ..., "spans": [[start, end, '
                                'label], ...]}')
        words, tags = record[tokens_key], record[tags_key]
        if not isinstance(words, list) or not isinstance(tags, list) or len(words) != len(tags):
            raise DataError(f"{path} line {lineno}: {tokens_key!r} and {tags_key!r} must be lists of "
                            f"the same length (got {_length(words)} and {_length(tags)})")
        if any(not isinstance(t, str) for t in tags):
            raise DataError(f"{path} line {lineno}: tags must be strings such as 'B-Disease' "
                            "(integer tag ids need the label names; map them first)")
        if words:
            sentences.append(Sentence([str(w) for w in words], list(tags), str(path), lineno, False))
    if not sentences:
        raise DataError(f"{path}: no sentences found")
    return sentences


def _length(value) -> str:
    return str(len(value)) if isinstance(value, list) else type(value).__name__


# --- character spans -------------------------------------------------------------------------

SPAN_KEYS = ("spans", "entities", "label")  # Prodigy / spaCy, doccano (new), doccano (classic)


@dataclass
class SpanKeys:
    """Where a span record keeps its text and spans (data.text_column, data.spans_column; by default
    the first of SPAN_KEYS the record has), and whether a span that cuts a word grows to whole words."""
    text: str = "text"
    spans: str | None = None
    repair: bool = False
    expanded: int = 0  # spans grown to whole words (data.repair_tags), for the report

    def of(self, record: dict) -> str | None:
        if not isinstance(record.get(self.text), str):
            return None
        keys = [self.spans] if self.spans else SPAN_KEYS
        return next((k for k in keys if isinstance(record.get(k), list)), None)


def _span_sentence(record: dict, keys: SpanKeys, where: str, source: str, line: int) -> Sentence:
    from domainft.wordwindows import words_with_offsets

    text = record[keys.text]
    words, starts, _ = words_with_offsets(text)
    ends = [st + len(w) for st, w in zip(starts, words)]
    tags = ["O"] * len(words)
    for n, item in enumerate(record[keys.of(record)], start=1):
        start, end, label = _span(item, text, f"{where} (span {n})")
        # Stripped of spaces, a span holds a word: every other character is one (WORD).
        first = next(i for i, e in enumerate(ends) if e > start)
        last = max(i for i, st in enumerate(starts) if st < end)
        if starts[first] < start or ends[last] > end:  # the span cuts a word
            if not keys.repair:
                raise DataError(f"{where} (span {n}): {text[start:end]!r} ({start}-{end}) cuts the word(s) "
                                f"{text[starts[first]:ends[last]]!r}; spans are read in whole words (split at "
                                "spaces and punctuation): fix its offsets, or set data.repair_tags: true to "
                                "grow such spans to whole words (counted)")
            keys.expanded += 1
        if any(t != "O" for t in tags[first:last + 1]):
            raise DataError(f"{where} (span {n}): {text[start:end]!r} overlaps another span; IOB2 tags hold "
                            "one entity per word: remove one of them")
        tags[first:last + 1] = [f"B-{label}"] + [f"I-{label}"] * (last - first)
    if not words:
        raise DataError(f"{where}: the text holds no words; remove the line or give it text")
    return Sentence(words, tags, source, line, False, from_spans=True)


def _span(item, text: str, where: str) -> tuple[int, int, str]:
    """(start, end, label) of one span, stripped of the spaces annotation tools often include."""
    if isinstance(item, dict):
        start = item.get("start", item.get("start_offset"))
        end = item.get("end", item.get("end_offset"))
        label = item.get("label")
    elif isinstance(item, list) and len(item) == 3:
        start, end, label = item
    else:
        start = end = label = None
    if not (isinstance(start, int) and isinstance(end, int) and isinstance(label, str)) or not label.strip():
        raise DataError(f"{where}: expected [start, end, label] or {{\"start\": ..., \"end\": ..., "
                        f"\"label\": ...}} with character offsets and a label, got {json.dumps(item)[:80]}")
    if not 0 <= start < end <= len(text):
        raise DataError(f"{where}: offsets {start}-{end} are not inside the text (0-{len(text)}) with start "
                        "before end; offsets count characters, end exclusive")
    stripped = len(text[start:end].lstrip())
    start, end = end - stripped, end - stripped + len(text[end - stripped:end].rstrip())
    if start == end:
        raise DataError(f"{where}: the span holds only spaces; remove it")
    return start, end, label.strip()


# --- schemes ---------------------------------------------------------------------------------

def _split_tag(tag: str, where: str) -> tuple[str, str | None]:
    if tag == "O":
        return "O", None
    prefix, sep, etype = tag.partition("-")
    if not sep or not etype or prefix not in {"B", "I", "E", "S", "L", "U"}:
        raise DataError(f"{where}: tag {tag!r} is not O or PREFIX-TYPE (B-Disease, I-Disease, ...)")
    return prefix, etype


def to_iob2(sentence: Sentence, scheme: str, repair: bool) -> tuple[list[str], int]:
    """The sentence's tags in IOB2, and how many I- tags were repaired to B-."""
    out: list[str] = []
    repaired = 0
    prev_prefix, prev_type = "O", None
    for i, tag in enumerate(sentence.tags):
        where = sentence.where(i)
        prefix, etype = _split_tag(tag, where)
        if scheme in ("bioes", "bilou"):
            prefix = {"E": "I", "L": "I", "S": "B", "U": "B"}.get(prefix, prefix)
        elif prefix in {"E", "S", "L", "U"}:
            raise DataError(f"{where}: tag {tag!r} belongs to BIOES/BILOU, but data.scheme is {scheme}; "
                            "set data.scheme to bioes or bilou")
        inside = prev_prefix in ("B", "I") and prev_type == etype
        if prefix == "I" and not inside:
            if scheme == "iob1":
                prefix = "B"  # IOB1: I- opens an entity unless it follows one of the same type
            elif repair:
                prefix, repaired = "B", repaired + 1
            else:
                before = "O" if prev_prefix == "O" else f"{prev_prefix}-{prev_type}"
                raise DataError(
                    f"{where}: {tag!r} follows {before!r} (or opens the sentence); in {scheme.upper()} an "
                    f"entity starts with B-. If the file is IOB1, set data.scheme: iob1; to turn such "
                    f"tags into B-{etype}, set data.repair_tags: true (the count is reported)")
        out.append("O" if prefix == "O" else f"{prefix}-{etype}")
        prev_prefix, prev_type = prefix, etype
    return out, repaired


# --- from the recipe to a bundle --------------------------------------------------------------

def split_files(directory: Path) -> dict[str, Path]:
    """train / validation / test files in a corpus directory, told by the split word in their names:
    train.tsv / devel.tsv / test.tsv, eng.train / eng.testa / eng.testb (CoNLL-2003), wnut17train.conll /
    emerging.dev.conll / emerging.test.annotated (WNUT-17), val.csv. Documentation files are skipped."""
    if not directory.is_dir():
        raise DataError(f"data.path: {directory} is not a directory")
    files = [f for f in sorted(directory.iterdir())
             if f.is_file() and not f.name.startswith(".") and f.suffix.lower() not in DOC_SUFFIXES]
    found: dict[str, list[Path]] = {}
    for f in files:
        split = split_of(f.name)
        if split is not None:
            found.setdefault(split, []).append(f)
    listing = ", ".join(f.name for f in files) or "no data files"
    for split, paths in found.items():
        if len(paths) > 1:
            raise DataError(f"data.path: {directory} holds several {split} files ({', '.join(p.name for p in paths)}); "
                            "name the files with data.train, data.validation and data.test instead")
    if "train" not in found:
        raise DataError(f"data.path: {directory} holds no train file (a name with 'train' in it, e.g. train.tsv; "
                        f"found: {listing}); give data.train (and data.validation, data.test) instead")
    return {split: paths[0] for split, paths in found.items()}


def split_of(name: str) -> str | None:
    """The split a corpus file's name says: a whole word first (dev, testa...), else a word holding
    a split word of four or more letters (wnut17train, NCBItrainset); None for neither."""
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    for split, names in SPLIT_NAMES.items():
        if any(w in names for w in words):
            return split
    for split, names in SPLIT_NAMES.items():
        if any(n in w for w in words for n in names if len(n) >= 4):
            return split
    return None


def prepare_sentences(spec: DataSpec) -> NerBundle:
    from domainft.data.splits import seeded_split

    files: dict[str, Path] = {}
    if spec.path is not None:
        if Path(spec.path).is_dir():
            files = split_files(Path(spec.path))
        else:
            files = {"train": Path(spec.path)}
    else:
        files = {k: Path(v) for k, v in (("train", spec.train), ("validation", spec.validation),
                                           ("test", spec.test)) if v is not None}
    report: dict = {"files": {k: str(v) for k, v in files.items()}, "scheme": spec.scheme, "tags_repaired": 0}
    splits = {name: _read(path, spec, report) for name, path in files.items()}
    if "validation" not in splits:  # carve it from train, seeded; the test file stays untouched
        s = spec.split
        test_share = s.test if "test" not in splits and spec.path is not None else 0.0
        train, validation, test = seeded_split(splits["train"], s.validation, test_share, s.seed)
        splits.update(train=train, validation=validation)
        if test_share:
            splits["test"] = test
        report["split"] = f"validation{' and test' if test_share else ''} carved from train (seed {s.seed})"
    train, validation, test = splits["train"], splits["validation"], splits.get("test", [])
    labels = _label_set(spec.labels, train, validation + test)
    report["counts"] = {"train": len(train), "validation": len(validation), "test": len(test)}
    report["train_entity_counts"] = dict(sorted(Counter(
        t[2:] for s in train for t in s.tags if t.startswith("B-")).items()))
    return NerBundle(train, validation, test, labels, report)


def _read(path: Path, spec: DataSpec, report: dict) -> list[Sentence]:
    fmt = spec.format
    if fmt == "auto":
        fmt = "jsonl" if path.suffix.lower() in (".jsonl", ".json") else "conll"
    if fmt not in NER_FORMATS:
        raise DataError(f"data.format: {fmt!r} is not a format for task ner; choose one of: "
                        f"{', '.join(NER_FORMATS)} (or auto)")
    encoding = spec.encoding or "utf-8"
    if fmt == "conll":
        sentences = read_conll(path, spec.conll_tag_index, encoding)
    elif fmt == "token_table":
        sentences = read_token_table(path, spec, encoding)
    else:
        spans = SpanKeys(spec.text_column, spec.spans_column, spec.repair_tags)
        sentences = read_ner_jsonl(path, spec.tokens_column, spec.tags_column, encoding, spans)
        report["spans_expanded"] = report.get("spans_expanded", 0) + spans.expanded
    for s in sentences:
        for i, w in enumerate(s.words):
            if not w.strip():
                raise DataError(f"{s.where(i)}: empty token; remove the line or give it text")
        s.tags, repaired = to_iob2(s, "iob2" if s.from_spans else spec.scheme, spec.repair_tags)
        report["tags_repaired"] += repaired
    return sentences


def _label_set(given: list[str] | None, train: list[Sentence], rest: list[Sentence]) -> list[str]:
    seen_train = {t for s in train for t in s.tags}
    if given is not None:
        allowed = set(given) | {"O"}
        for s in train + rest:
            for i, t in enumerate(s.tags):
                if t not in allowed:
                    raise DataError(f"{s.where(i)}: tag {t!r} is not in data.labels "
                                    f"({', '.join(given)}); add it there or fix the tag")
        labels = ["O", *[t for t in given if t != "O"]]
    else:
        # Every type needs its I- tag too, or an entity longer than one word cannot be predicted.
        tags = seen_train | {f"I-{t[2:]}" for t in seen_train if t.startswith("B-")}
        labels = ["O", *sorted(tags - {"O"}, key=lambda t: (t[2:], t[0]))]
    for t in list(labels):
        if t.startswith("B-") and f"I-{t[2:]}" not in labels:
            labels.append(f"I-{t[2:]}")
    for s in rest:
        for i, t in enumerate(s.tags):
            if t not in labels:
                raise DataError(f"{s.where(i)}: tag {t!r} never occurs in the training data, so the "
                                "model cannot learn it; add training examples or fix the tag")
    return labels
