"""From the recipe's `data` section to checked train/validation/test examples and a report."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from domainft.data.readers import Example, TextFields, read_examples
from domainft.data.splits import deduplicate, stratified_split
from domainft.errors import DataError

if TYPE_CHECKING:
    from domainft.recipe import DataSpec


@dataclass
class DataBundle:
    train: list[Example]
    validation: list[Example]
    test: list[Example]
    labels: list[str]
    report: dict = field(default_factory=dict)

    def splits(self) -> dict[str, list[Example]]:
        return {"train": self.train, "validation": self.validation, "test": self.test}


def prepare_examples(spec: "DataSpec") -> DataBundle:
    fields = TextFields.of(spec)
    read = lambda p: _checked(read_examples(Path(p), spec.format, fields, spec.encoding,  # noqa: E731
                                            spec.delimiter))
    report: dict = {}
    if spec.path is not None:
        examples = read(spec.path)
        report["rows_read"] = len(examples)
        if spec.dedup:
            examples, dedup = deduplicate(examples)
            report.update(duplicates_removed=dedup.duplicates_removed,
                          conflicting_texts_removed=dedup.conflicting_texts,
                          conflicting_rows_removed=dedup.conflicting_rows_removed)
        s = spec.split
        train, validation, test = stratified_split(examples, s.validation, s.test, s.seed, s.stratify)
        report["split"] = f"seeded stratified split of {spec.path} (seed {s.seed})"
    else:
        train = read(spec.train)
        if spec.validation is not None:
            validation = read(spec.validation)
        else:  # carve validation out of train, keep the given test file untouched
            s = spec.split
            train, validation, _ = stratified_split(train, s.validation, 0.0, s.seed, s.stratify)
        test = read(spec.test) if spec.test is not None else []
        report["overlap_train_test"] = len({e.text for e in train} & {e.text for e in test})
    labels = _label_set(spec.labels, train, validation + test)
    report["counts"] = {name: len(exs) for name, exs in
                        {"train": train, "validation": validation, "test": test}.items()}
    report["train_label_counts"] = dict(sorted(Counter(e.label for e in train).items()))
    return DataBundle(train, validation, test, labels, report)


def _checked(examples: list[Example]) -> list[Example]:
    if not examples:
        raise DataError("a data file holds no examples")
    for ex in examples:
        if not ex.text:
            raise DataError(f"{ex.where}: empty text; fill it in or remove the row")
        if not ex.label:
            raise DataError(f"{ex.where}: empty label; fill it in or remove the row")
    return examples


def _label_set(declared: list[str] | None, train: list[Example], others: list[Example]) -> list[str]:
    """The label order stored with the model: as declared, else sorted; every label checked."""
    seen = set(e.label for e in train)
    if declared is not None:
        for ex in train + others:
            if ex.label not in declared:
                raise DataError(
                    f"{ex.where}: label {ex.label!r} is not in data.labels ({', '.join(declared)}); "
                    "add it there or fix the row"
                )
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
