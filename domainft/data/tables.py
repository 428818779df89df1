"""Column stores as classification data: Parquet files and Hugging Face `datasets` directories
(`Dataset.save_to_disk`), read into the same rows a CSV gives. A `datasets` ClassLabel column's
integer values come back as its names. A DatasetDict's splits are given one by one, as data.train /
data.validation / data.test (its split directories)."""
from __future__ import annotations

from pathlib import Path

from domainft.errors import DataError, where_to_look

TABLE_FORMATS = ("parquet", "hf_dataset")


def is_saved_dataset(path: Path) -> bool:
    """A directory `Dataset.save_to_disk` (or DatasetDict.save_to_disk) wrote."""
    return path.is_dir() and any((path / name).is_file() for name in ("state.json", "dataset_dict.json"))


def table_rows(path: Path, fmt: str) -> tuple[list[str], list[dict]]:
    """(column names, rows as dicts) of a Parquet file or a saved `datasets` directory."""
    if fmt == "parquet":
        return _parquet_rows(path)
    return _dataset_rows(path)


def _parquet_rows(path: Path) -> tuple[list[str], list[dict]]:
    import pyarrow.parquet as pq

    if not path.is_file():
        raise DataError(f"{path}: file not found ({where_to_look(path)})")
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow's ArrowInvalid and friends: not a Parquet file
        raise DataError(f"{path}: not a readable Parquet file ({type(e).__name__}: {e})") from None
    return table.column_names, table.to_pylist()


def _dataset_rows(path: Path) -> tuple[list[str], list[dict]]:
    from datasets import ClassLabel, DatasetDict, load_from_disk

    if not is_saved_dataset(path):
        raise DataError(f"{path}: not a saved Hugging Face dataset (no state.json or dataset_dict.json); "
                        "give the directory Dataset.save_to_disk wrote")
    dataset = load_from_disk(str(path))
    if isinstance(dataset, DatasetDict):
        splits = ", ".join(dataset)
        raise DataError(f"{path}: a DatasetDict with splits {splits}; point data.train, data.validation and "
                        f"data.test at its split directories (e.g. data.train: {path / next(iter(dataset))})")
    rows = dataset.to_list()
    for name, feature in dataset.features.items():
        if isinstance(feature, ClassLabel):  # integer ids -> the names the dataset gives them
            for row in rows:
                if row[name] is not None and row[name] >= 0:
                    row[name] = feature.int2str(row[name])
    return list(dataset.column_names), rows
