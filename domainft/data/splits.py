"""Exact-duplicate removal and seeded, stratified train/validation/test splits."""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from domainft.data.readers import Example
from domainft.errors import DataError


@dataclass
class DedupReport:
    duplicates_removed: int  # same text, same label: all but the first dropped
    conflicting_texts: int  # same text with different labels: every copy dropped
    conflicting_rows_removed: int


def deduplicate(examples: list[Example]) -> tuple[list[Example], DedupReport]:
    """Drop exact duplicates, and texts labelled in contradiction (no reliable ground truth).

    Leaving either in would let a test sentence also sit in the training set.
    """
    labels_by_text: dict[str, set[str]] = defaultdict(set)
    for ex in examples:
        labels_by_text[ex.text].add(ex.label)
    conflicting = {t for t, labels in labels_by_text.items() if len(labels) > 1}
    seen: set[str] = set()
    kept, duplicates, conflict_rows = [], 0, 0
    for ex in examples:
        if ex.text in conflicting:
            conflict_rows += 1
        elif ex.text in seen:
            duplicates += 1
        else:
            seen.add(ex.text)
            kept.append(ex)
    return kept, DedupReport(duplicates, len(conflicting), conflict_rows)


def stratified_split(
    examples: list[Example], validation: float, test: float, seed: int, stratify: bool = True
) -> tuple[list[Example], list[Example], list[Example]]:
    """Split into train/validation/test with the given fractions, class proportions preserved."""

    labels = [ex.label for ex in examples]
    if stratify:
        rare = [(label, n) for label, n in Counter(labels).items() if n < 3]
        if rare:
            label, n = rare[0]
            where = next(ex.where for ex in examples if ex.label == label)
            raise DataError(
                f"label {label!r} has only {n} example(s) (first at {where}); a stratified split needs "
                "at least 3 per label. Add examples, fix the label, or set data.split.stratify=false"
            )
    index = list(range(len(examples)))
    rest, test_idx = _split(index, labels, test, seed, stratify) if test > 0 else (index, [])
    rest_labels = [labels[i] for i in rest]
    train_idx, val_idx = _split(rest, rest_labels, validation / (1 - test), seed, stratify)
    pick = lambda idx: [examples[i] for i in idx]  # noqa: E731
    return pick(train_idx), pick(val_idx), pick(test_idx)


def _split(index, labels, fraction, seed, stratify):
    from sklearn.model_selection import train_test_split

    try:
        return train_test_split(
            index, test_size=fraction, random_state=seed, stratify=labels if stratify else None
        )
    except ValueError as e:  # e.g. fraction too small to hold one example per class
        raise DataError(f"cannot split the data as data.split asks: {e}") from None


def seeded_split(items: list, validation: float, test: float, seed: int) -> tuple[list, list, list]:
    """Shuffle with `seed` and cut: (train, validation, test). For items without one label
    (NER sentences), where stratifying does not apply."""
    import random

    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(validation * len(items))) if validation else 0
    n_test = max(1, round(test * len(items))) if test else 0
    if n_val + n_test >= len(items):
        raise DataError(f"only {len(items)} sentences: too few to carve validation and test sets from "
                        "them; give data.validation / data.test files or more data")
    pick = lambda idx: [items[i] for i in sorted(idx)]  # noqa: E731 - keep file order inside a split
    return (pick(order[n_val + n_test:]), pick(order[:n_val]), pick(order[n_val:n_val + n_test]))
