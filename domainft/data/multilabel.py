"""task: multilabel's data: label sets read, checked, deduplicated and split.

A row's labels come from a JSON list, a cell split at `data.label_delimiter`, or one 0/1 column per
label (`data.label_columns`); wide excerpt tables (`format: wide_lists`) give each excerpt all the
categories it is listed under. The empty label set is a valid example (counted in the report).

Deduplication is single-label's: the same text with the same label set is a duplicate (one kept),
with different label sets a conflict (every copy dropped, counted): no set is reliable, and a union
would invent combinations no annotator gave.

Splits stratify on each example's rarest label (counted over the examples being split; the empty set
is a stratum of its own; strata under 3 examples are pooled): label combinations are mostly unique,
so stratifying on them is impossible, while the rarest label is what a random split most often
leaves out of validation or test. Group splits (data.split.group_column) stratify whole groups the
same way.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from domainft.data.layout import read_and_split
from domainft.data.prepare import (
    DataBundle,
    _deduplicate,
    _group_counts,
    check_inputs,
    example_key,
    read_file,
    undeclared,
)
from domainft.data.readers import Example, TextFields, detect_format
from domainft.data.splits import group_split, normalized_text, stratified_split
from domainft.errors import DataError

if TYPE_CHECKING:
    from domainft.data.spec import DataSpec

NO_LABELS = "(no labels)"  # the stratum of empty label sets
POOLED = "(rare)"  # strata under MIN_STRATUM examples, pooled
MIN_STRATUM = 3


def prepare_multilabel(spec: DataSpec) -> DataBundle:
    fields = TextFields.of(spec, multilabel=True)
    same = normalized_text if spec.duplicates == "normalized" else str
    report: dict = {"duplicates": spec.duplicates}
    s = spec.split
    kind = f"group split by {s.group_column!r}" if s.group_column else "split"
    train, validation, test, layout = read_and_split(
        spec, read=lambda p: _checked(_read(p, spec, fields, report), p, spec),
        split=lambda exs, val, tst: split_multilabel(exs, spec, val, tst), key=lambda e: example_key(e, same),
        dedup=lambda exs: _deduplicate(exs, same),
        split_kind=f"{'stratified (rarest label) ' if s.stratify else ''}{kind}")
    report.update(layout)
    labels = _label_set(spec, train, validation + test)
    counts = Counter(label for e in train for label in e.labels)
    report["train_label_counts"] = {label: counts[label] for label in labels}
    report["empty_label_sets"] = {name: sum(not e.labels for e in exs)
                                  for name, exs in (("train", train), ("validation", validation), ("test", test))}
    report["labels_per_example"] = round(sum(len(e.labels) for e in train) / max(len(train), 1), 3)
    if s.group_column:
        report["groups"] = _group_counts(s.group_column, train, validation, test)
    return DataBundle(train, validation, test, labels, report)


def _read(path: Path, spec: DataSpec, fields: TextFields, report: dict) -> list[Example]:
    if spec.format != "wide_lists" and detect_format(path, spec.format) == "phrasebank":
        raise DataError(f"{path}: read as data.format phrasebank (`sentence@label`, one label per "
                        "sentence); task: multilabel reads csv, tsv, jsonl, parquet, hf_dataset or "
                        "wide_lists: set data.format")
    # An excerpt under several categories of a contract is one example with all of them.
    return read_file(path, spec, fields, report, multi_category="keep")


def _checked(examples: list[Example], path: Path, spec: DataSpec) -> list[Example]:
    check_inputs(examples, path, spec)
    if spec.labels is not None:
        for ex in examples:
            unknown = [label for label in ex.labels if label not in spec.labels]
            if unknown:
                raise undeclared(ex, spec.labels, unknown[0])
    return examples


def _label_set(spec: DataSpec, train: list[Example], others: list[Example]) -> list[str]:
    """The label order stored with the model: data.label_columns', data.labels', else sorted. A
    label no training example has cannot be learnt: an error, as for single-label data."""
    seen = {label for e in train for label in e.labels}
    declared = list(spec.label_columns) or spec.labels
    if declared is not None:
        missing = [label for label in declared if label not in seen]
        if missing:
            setting = "data.label_columns" if spec.label_columns else "data.labels"
            raise DataError(f"{setting}: {', '.join(map(repr, missing))} never occur in the training data, "
                            "so the model cannot learn them; add training examples or leave them out")
        return list(declared)
    for ex in others:
        for label in ex.labels:
            if label not in seen:
                raise DataError(f"{ex.where}: label {label!r} never occurs in the training data, so the model "
                                "cannot learn it; fix the label, add training examples, or remove the row")
    if len(seen) < 2:
        raise DataError(f"the training data has {len(seen)} label(s) ({', '.join(sorted(seen)) or 'none'}); "
                        "a multi-label classifier needs two or more")
    return sorted(seen)


def strata(examples: list[Example]) -> list[str]:
    """Each example's stratum: its rarest label (ties: the first by name), NO_LABELS for the empty
    set; strata under MIN_STRATUM examples pooled (into the largest when the pool is that small)."""
    counts = Counter(label for e in examples for label in e.labels)
    keys = [min(e.labels, key=lambda label: (counts[label], label)) if e.labels else NO_LABELS for e in examples]
    sizes = Counter(keys)
    keys = [k if sizes[k] >= MIN_STRATUM else POOLED for k in keys]
    sizes = Counter(keys)
    if 0 < sizes[POOLED] < MIN_STRATUM and len(sizes) > 1:
        largest = max((k for k in sizes if k != POOLED), key=lambda k: (sizes[k], k))
        keys = [largest if k == POOLED else k for k in keys]
    return keys


def split_multilabel(examples: list[Example], spec: DataSpec, validation: float, test: float):
    """(train, validation, test): the recipe's splitter run on the examples' strata."""
    s = spec.split
    proxies = [replace(ex, label=key) for ex, key in zip(examples, strata(examples))]
    original = {id(p): ex for p, ex in zip(proxies, examples)}
    splitter = group_split if s.group_column else stratified_split
    parts = splitter(proxies, validation, test, s.seed, s.stratify)
    return tuple([original[id(p)] for p in part] for part in parts)
