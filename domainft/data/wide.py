"""Wide tables of excerpt lists (`data.format: wide_lists`), the layout of CUAD's master_clauses.csv.

One row per document; each category column holds the excerpts found for that category, written as a
Python list literal (`['The Agreement shall ...', 'Neither party ...']`; `[]` or an empty cell: none).
Every excerpt becomes one example labelled with its column's name. Columns that are not categories
(the document id, answer summaries, categories left out on purpose) are named in `data.wide`.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from domainft.cells import as_text
from domainft.data.readers import Example, delimited_rows, label_key
from domainft.errors import DataError

if TYPE_CHECKING:
    from domainft.data.spec import WideSpec


def read_wide(path: Path, text: str, spec: WideSpec, group_column: str | None,
              delimiter: str) -> list[Example]:
    """One Example per (row, category, excerpt), in row then column order (`first` relies on it)."""
    from domainft.data.spec import WideSpec

    spec = spec or WideSpec()
    header, rows = delimited_rows(path, text, delimiter)
    categories = category_columns(path, header, spec, group_column)
    examples = []
    for line, row in rows:
        group = as_text(row[group_column]) if group_column else None
        for name in categories:
            for excerpt in parse_excerpts(row[name], path, line, name):
                examples.append(Example(excerpt, name, str(path), line, group=group))
    return examples


def category_columns(path: Path, header: list[str], spec: WideSpec, group_column: str | None) -> list[str]:
    """Header columns minus the group column, `exclude` and `skip_suffix`; names checked to exist."""
    named = [(group_column, "data.split.group_column")] if group_column else []
    named += [(name, "data.wide.exclude") for name in spec.exclude]
    for name, setting in named:
        if name not in header:
            raise DataError(f"{path}: no column {name!r} (named in {setting}); columns are: "
                            f"{_listing(header)}")
    skip = {group_column, *spec.exclude}
    categories = [c for c in header if c not in skip
                  and not (spec.skip_suffix and c.endswith(spec.skip_suffix))]
    if len(categories) < 2:
        raise DataError(f"{path}: {len(categories)} category column(s) left ({_listing(categories)}) after "
                        "data.split.group_column, data.wide.exclude and data.wide.skip_suffix; "
                        "format wide_lists needs a column of excerpt lists per category")
    return categories


def parse_excerpts(cell: str | None, path: Path, line: int, column: str) -> list[str]:
    """A list-literal cell -> its non-empty excerpts, stripped; anything else is a DataError."""
    raw = as_text(cell)
    if not raw:
        return []
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = None
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        shown = raw if len(raw) <= 60 else raw[:57] + "..."
        raise DataError(
            f"{path} line {line}: column {column!r} holds {shown!r}, not a list of excerpts such as "
            "['The Agreement shall ...']. If this column is not a category (an id, a summary), add it "
            "to data.wide.exclude, or name it in data.split.group_column"
        )
    return [v.strip() for v in value if v.strip()]


def resolve_multi_category(examples: list[Example], policy: str) -> tuple[list[Example], dict]:
    """An excerpt listed under several categories of one row has no single label: `drop` removes
    every copy, `first` keeps the copy from the leftmost column, `keep` (task: multilabel) makes
    every excerpt of a row one example whose label set is all its categories, in column order. Also
    collapses an excerpt listed twice under one category of a row. Counts go to the data report."""
    labels: dict[tuple, list[str]] = defaultdict(list)
    for ex in examples:
        labels[(ex.source, ex.line, ex.text)].append(ex.label)
    multi = {key for key, found in labels.items() if len(set(found)) > 1}
    kept, seen = [], set()
    for ex in examples:
        key = (ex.source, ex.line, ex.text)
        if key in seen or (key in multi and policy == "drop"):
            continue
        seen.add(key)
        if policy == "keep":
            found = tuple(dict.fromkeys(labels[key]))
            ex = replace(ex, label=label_key(found), labels=found)
        kept.append(ex)
    report = {"policy": policy, "rows_read": len(examples), "excerpts": len(multi),
              "rows_removed": len(examples) - len(kept),
              "category_pairs": _top_pairs(labels[k] for k in multi)}
    return kept, report


def _top_pairs(found_lists, n: int = 10) -> dict[str, int]:
    """The commonest category combinations among multi-category excerpts ('A + B': count)."""
    counts: dict[str, int] = defaultdict(int)
    for found in found_lists:
        counts[" + ".join(sorted(set(found)))] += 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n])


def _listing(names: list[str]) -> str:
    return ", ".join(map(repr, names)) or "(none)"
