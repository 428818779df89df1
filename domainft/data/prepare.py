"""From the recipe's `data` section to checked train/validation/test examples and a report."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from domainft.data.layout import read_and_split
from domainft.data.readers import (
    DEFAULT_ENCODING,
    Example,
    TextFields,
    check_not_empty,
    detect_format,
    read_examples,
    read_text,
)
from domainft.data.splits import deduplicate, group_split, normalized_text, shared_groups, stratified_split
from domainft.data.wide import read_wide, resolve_multi_category
from domainft.errors import DataError

if TYPE_CHECKING:
    from domainft.data.spec import DataSpec


@dataclass
class DataBundle:
    train: list[Example]
    validation: list[Example]
    test: list[Example]
    labels: list[str]
    report: dict = field(default_factory=dict)

    def splits(self) -> dict[str, list[Example]]:
        return {"train": self.train, "validation": self.validation, "test": self.test}


def prepare_examples(spec: DataSpec) -> DataBundle:
    fields = TextFields.of(spec)
    same = normalized_text if spec.duplicates == "normalized" else str  # which texts count as one
    report: dict = {"duplicates": spec.duplicates}
    s = spec.split
    kind = f"group split by {s.group_column!r}" if s.group_column else "split"
    train, validation, test, layout = read_and_split(
        spec, read=lambda p: _checked(read_file(p, spec, fields, report), p, spec),
        split=lambda exs, val, test: _split(exs, spec, val, test), key=lambda e: example_key(e, same),
        dedup=lambda exs: _deduplicate(exs, same), split_kind=f"{'stratified ' if s.stratify else ''}{kind}")
    report.update(layout)
    labels = _label_set(spec.labels, train, validation + test)
    if spec.labels is None and spec.label_names is not None:  # the names' order, as the mapping lists them
        order = list(spec.label_names.values())
        labels = sorted(labels, key=order.index)
    report["train_label_counts"] = dict(sorted(Counter(e.label for e in train).items()))
    if s.group_column:
        report["groups"] = _group_counts(s.group_column, train, validation, test)
    return DataBundle(train, validation, test, labels, report)


def example_key(ex: Example, same=str):
    """What makes two examples the same input: the text, and the second text of a pair."""
    return same(ex.text) if ex.pair is None else (same(ex.text), same(ex.pair))


def _deduplicate(examples: list[Example], same=str) -> tuple[list[Example], dict]:
    examples, dedup = deduplicate(examples, lambda ex: example_key(ex, same))
    return examples, {"duplicates_removed": dedup.duplicates_removed,
                      "conflicting_texts_removed": dedup.conflicting_texts,
                      "conflicting_rows_removed": dedup.conflicting_rows_removed}


def read_file(path: Path, spec: DataSpec, fields: TextFields, report: dict, multi_category: str = "drop"
              ) -> list[Example]:
    """One file's examples; `multi_category`: what a wide table's excerpt under several categories
    becomes unless data.wide.multi_category says (single-label: dropped; multilabel: kept)."""
    if spec.format != "wide_lists":
        return read_examples(path, spec.format, fields, spec.encoding, spec.delimiter)
    text = read_text(path, spec.encoding or DEFAULT_ENCODING["wide_lists"])
    check_not_empty(path, text, "wide_lists")
    examples = read_wide(path, text, spec.wide, fields.group_column, spec.delimiter or ",")
    # Never silent, always counted.
    examples, counts = resolve_multi_category(examples, spec.wide.multi_category or multi_category)
    report.setdefault("multi_category", {})[str(path)] = counts  # per file read
    return examples


def _split(examples: list[Example], spec: DataSpec, validation: float, test: float):
    s = spec.split
    splitter = group_split if s.group_column else stratified_split
    return splitter(examples, validation, test, s.seed, s.stratify)


def _group_counts(column: str, *splits: list[Example]) -> dict:
    """Groups per split and how many sit in two splits (0 unless given files share some)."""
    names = ("train", "validation", "test")
    return {"column": column, **{n: len({e.group for e in exs}) for n, exs in zip(names, splits)},
            "shared_between_splits": len(shared_groups(*splits))}


def _checked(examples: list[Example], path: Path, spec: DataSpec) -> list[Example]:
    """Each file's examples as read, before any split: none empty, each label one data.labels lists
    (checked here, so that an unknown label is not reported as a split problem)."""
    check_inputs(examples, path, spec)
    if spec.label_names is not None:
        examples = [_named(ex, spec.label_names) for ex in examples]
    declared = spec.labels
    for ex in examples:
        if not ex.label:
            raise DataError(f"{ex.where}: empty label; fill it in or remove the row")
        if declared is not None and ex.label not in declared:
            raise undeclared(ex, declared)
    return examples


def check_inputs(examples: list[Example], path: Path, spec: DataSpec) -> None:
    """What every task over texts needs of a file's examples: some, and each with its text (and the
    second text of a pair) filled in; a DataError naming the file or line otherwise."""
    if not examples:
        fmt = detect_format(path, spec.format)
        raise DataError(f"{path}: holds no examples (read as data.format {fmt}{EXPECTED.get(fmt, '')}); "
                        "check data.path / data.train and data.format")
    for ex in examples:
        if not ex.text:
            raise DataError(f"{ex.where}: empty text; fill it in or remove the row")
        if ex.pair == "":
            raise DataError(f"{ex.where}: empty second text (data.text_pair_*); fill it in or remove the row")


def _named(ex: Example, names: dict[str, str]) -> Example:
    """The example with its label (and reference rater's label) replaced by data.label_names' name."""
    if ex.label not in names:
        raise DataError(f"data.label_names: {ex.where}: label {ex.label!r} has no name there (it names "
                        f"{', '.join(map(repr, names))}); add it, or fix the row")
    reference = names.get(ex.reference, ex.reference) if ex.reference is not None else None
    return replace(ex, label=names[ex.label], reference=reference)


EXPECTED = {"phrasebank": ": `sentence@label` lines", "csv": ": a header row, then one row per example",
            "tsv": ": a header row, then one row per example", "jsonl": ": one JSON object per line",
            "wide_lists": ": a header row, then one row per document"}


def undeclared(ex: Example, declared: list[str], label: str | None = None) -> DataError:
    """A label (default: the example's) that data.labels does not list."""
    label = ex.label if label is None else label
    fix = "add it there or fix the row"
    same = [name for name in declared if name.casefold() == str(label).strip().casefold()]
    if same:  # 'Negative' for 'negative': labels are compared exactly
        fix = (f"it differs from {same[0]!r} only in letter case or spaces, and labels are compared "
               "exactly; write the data's labels as data.labels does, or list them there as the data does")
    elif str(label).lstrip("-").isdigit():  # ids where the recipe names classes: a mapping is missing
        example = ", ".join(f"{i}: {name}" for i, name in enumerate(declared))
        fix = (f"if the data's numbers stand for those labels, name them with data.label_names, e.g. "
               f"{{{example}}} (in the data's own order); otherwise {fix}")
    return DataError(f"data.labels: {ex.where}: label {label!r} is not in data.labels "
                     f"({', '.join(declared)}); {fix}")


def _label_set(declared: list[str] | None, train: list[Example], others: list[Example]) -> list[str]:
    """The label order stored with the model: as declared, else sorted; every label checked."""
    seen = set(e.label for e in train)
    if declared is not None:
        for ex in train + others:
            if ex.label not in declared:
                raise undeclared(ex, declared)
        missing = [label for label in declared if label not in seen]
        if missing:
            raise DataError(f"data.labels: {', '.join(map(repr, missing))} never occur in the training data")
        return list(declared)
    for ex in others:
        if ex.label not in seen:
            raise DataError(
                f"{ex.where}: label {ex.label!r} never occurs in the training data, so the model cannot "
                "learn it; fix the label, add training examples, or remove the row"
            )
    if len(seen) < 2:
        raise DataError(f"the training data has only one label ({', '.join(seen)}); a classifier needs two or more")
    return sorted(seen)
