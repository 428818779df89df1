"""Exact-duplicate removal and seeded, stratified train/validation/test splits."""
from __future__ import annotations

import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from domainft.data.readers import Example
from domainft.errors import DataError


@dataclass
class DedupReport:
    duplicates_removed: int  # same text, same label: all but the first dropped
    conflicting_texts: int  # same text with different labels: every copy dropped
    conflicting_rows_removed: int


def deduplicate(examples: list[Example], key: Callable[[Example], Hashable] = lambda ex: ex.text
                ) -> tuple[list[Example], DedupReport]:
    """Drop duplicates, and texts labelled in contradiction (no reliable ground truth); `key` says
    which examples are the same input (the exact text by default; normalized_text ignores case and
    punctuation; a text pair is both texts).

    Leaving either in would let a test sentence also sit in the training set.
    """
    labels_by_text: dict[Hashable, set[str]] = defaultdict(set)
    for ex in examples:
        labels_by_text[key(ex)].add(ex.label)
    conflicting = {t for t, labels in labels_by_text.items() if len(labels) > 1}
    seen: set[Hashable] = set()
    kept, duplicates, conflict_rows = [], 0, 0
    for ex in examples:
        k = key(ex)
        if k in conflicting:
            conflict_rows += 1
        elif k in seen:
            duplicates += 1
        else:
            seen.add(k)
            kept.append(ex)
    return kept, DedupReport(duplicates, len(conflicting), conflict_rows)


def normalized_text(text: str) -> str:
    """A text as near-duplicates share it: case folded, punctuation dropped, spacing collapsed
    ("Sales rose 5%." and "sales rose 5 %" are the same)."""
    kept = "".join(" " if unicodedata.category(c).startswith("P") else c for c in text.casefold())
    return " ".join(kept.split())


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


def group_split(examples: list[Example], validation: float, test: float, seed: int,
                stratify: bool = True) -> tuple[list[Example], list[Example], list[Example]]:
    """Split whole groups (`Example.group`: a contract, a patient) so none spans two splits.

    The fractions count groups. Stratified: StratifiedGroupKFold with round(1 / fraction) folds,
    one fold held out (label proportions kept as far as whole groups allow); otherwise
    GroupShuffleSplit. Leakage between splits is what a group split prevents, so it is checked.
    """
    blank = next((ex for ex in examples if not ex.group), None)
    if blank is not None:
        raise DataError(f"{blank.where}: empty data.split.group_column cell; every row needs its group "
                        "(e.g. the contract id)")
    n_groups = len({ex.group for ex in examples})
    if n_groups < 3:
        raise DataError(f"only {n_groups} group(s) in data.split.group_column: a group split needs at "
                        "least one group each for train, validation and test")
    index = list(range(len(examples)))
    rest, test_idx = _group_cut(index, examples, test, seed, stratify) if test > 0 else (index, [])
    train_idx, val_idx = _group_cut(rest, examples, validation / (1 - test), seed, stratify)
    pick = lambda idx: [examples[i] for i in sorted(idx)]  # noqa: E731 - file order inside a split
    parts = pick(train_idx), pick(val_idx), pick(test_idx)
    assert not shared_groups(*parts), "a group ended up in two splits"
    return parts


def _group_cut(index: list[int], examples: list[Example], fraction: float, seed: int, stratify: bool):
    """(kept, held out) positions of `index`, whole groups held out."""
    import warnings

    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

    labels = [examples[i].label for i in index]
    groups = [examples[i].group for i in index]
    try:
        if stratify:
            folds = StratifiedGroupKFold(n_splits=max(2, round(1 / fraction)), shuffle=True, random_state=seed)
            with warnings.catch_warnings():  # rare labels: fewer members than folds is expected
                warnings.simplefilter("ignore", UserWarning)
                kept, held = next(folds.split(index, labels, groups))
        else:
            cut = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
            kept, held = next(cut.split(index, labels, groups))
    except ValueError as e:  # e.g. more folds than groups
        raise DataError(f"cannot split {len(set(groups))} groups as data.split asks: {e}; lower "
                        "data.split.validation / test or add data") from None
    return [index[i] for i in kept], [index[i] for i in held]


def shared_groups(*splits: list[Example]) -> set[str]:
    """Groups found in more than one split (empty for a correct group split)."""
    seen: dict[str, int] = {}
    shared = set()
    for n, split in enumerate(splits):
        for group in {ex.group for ex in split}:
            if group in seen and seen[group] != n:
                shared.add(group)
            seen.setdefault(group, n)
    return shared
