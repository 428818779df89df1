"""The recipe's file layout, shared by the tasks that read one item per row: either one `data.path`
(deduplicated, then split three ways) or `data.train` with optional validation and test files
(validation carved from train when not given; a given test file is never touched)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Hashable, TypeVar

from domainft.errors import DataError

if TYPE_CHECKING:
    from domainft.data.spec import DataSpec

T = TypeVar("T")
Splitter = Callable[[list[T], float, float], tuple[list[T], list[T], list[T]]]


def read_and_split(spec: DataSpec, read: Callable[[Path], list[T]], split: Splitter,
                   key: Callable[[T], Hashable], dedup: Callable[[list[T]], tuple[list[T], dict]],
                   split_kind: str = "split") -> tuple[list[T], list[T], list[T], dict]:
    """(train, validation, test, report). `split(items, validation_share, test_share)` cuts,
    `dedup(items)` returns the kept items and what it removed (for the report), `key` says which
    items are the same text (to report train/test overlap between given files)."""
    report: dict = {}
    if spec.path is not None:
        items = read(Path(spec.path))
        report["rows_read"] = len(items)
        if spec.dedup:
            items, removed = dedup(items)
            report.update(removed)
        s = spec.split
        try:
            train, validation, test = split(items, s.validation, s.test)
        except DataError as e:
            raise _after_dedup(e, report, len(items)) from None
        report["split"] = f"seeded {split_kind} of {spec.path} (seed {s.seed})"
    else:
        train = read(Path(spec.train))
        if spec.validation is not None:
            validation = read(Path(spec.validation))
        else:
            train, validation, _ = split(train, spec.split.validation, 0.0)
        test = read(Path(spec.test)) if spec.test is not None else []
        report["overlap_train_test"] = len({key(x) for x in train} & {key(x) for x in test})
    report["counts"] = {"train": len(train), "validation": len(validation), "test": len(test)}
    return train, validation, test, report


def _after_dedup(error: DataError, report: dict, kept: int) -> DataError:
    """A split that fails after deduplication removed rows says so: rows that share a text but not a
    label are all dropped, so a wrong text column (one value for every row) leaves nothing to split."""
    removed = report["rows_read"] - kept
    if not removed:
        return error
    why = f"{report.get('duplicates_removed', 0)} repeats"
    if "conflicting_rows_removed" in report:
        why += f" and {report['conflicting_rows_removed']} rows whose text also has another label"
    return DataError(f"{str(error).rstrip('.')}. Only {kept} of {report['rows_read']} rows are left after "
                     f"deduplication removed {why}: check that the text is read from the right column, or set "
                     "data.dedup: false")
