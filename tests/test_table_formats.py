"""Parquet files and saved Hugging Face datasets read as classification data (ClassLabel ids as
their names); a DatasetDict points to its split directories."""
import pytest

from domainft import run
from domainft.data import prepare_examples
from domainft.errors import DataError
from domainft.recipe import DataSpec, Recipe

from conftest import SAMPLE


def sample_rows():
    rows = []
    for line in SAMPLE.read_text(encoding="latin-1").splitlines():
        text, _, label = line.rpartition("@")
        rows.append({"sentence": text, "label": label.strip()})
    return rows


NAMES = ["negative", "neutral", "positive"]


def saved_dataset(path, rows):
    from datasets import ClassLabel, Dataset, Features, Value

    features = Features({"sentence": Value("string"), "label": ClassLabel(names=NAMES)})
    Dataset.from_list([{**r, "label": NAMES.index(r["label"])} for r in rows], features=features).save_to_disk(path)
    return path


def test_a_parquet_file_reads_like_its_csv(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(sample_rows()), tmp_path / "d.parquet")
    bundle = prepare_examples(DataSpec(path=str(tmp_path / "d.parquet"), text_column="sentence"))
    assert bundle.labels == NAMES and sum(bundle.report["counts"].values()) > 250


def test_a_saved_dataset_trains_with_its_classlabel_names(tiny_base, tmp_path):
    rows = sample_rows()
    train = saved_dataset(tmp_path / "ds" / "train", rows[:240])
    test = saved_dataset(tmp_path / "ds" / "test", rows[240:])
    recipe = Recipe.from_dict({"base": str(tiny_base), "output": {"dir": str(tmp_path / "run")},
                               "data": {"train": str(train), "test": str(test), "text_column": "sentence",
                                        "max_length": 64},
                               "train": {"epochs": 1, "batch_size": 16, "lr": 5e-4, "seed": 7}})
    result = run(recipe, progress=False, echo=lambda *a: None)
    assert result.metrics["data"]["labels"] == NAMES and set(result.metrics["test"]["per_class"]) == set(NAMES)


def test_a_dataset_dict_points_to_its_split_directories(tmp_path):
    from datasets import DatasetDict, load_from_disk

    rows = sample_rows()
    split = load_from_disk(str(saved_dataset(tmp_path / "one", rows[:200])))
    DatasetDict({"train": split, "test": split}).save_to_disk(tmp_path / "dd")
    with pytest.raises(DataError, match=r"a DatasetDict with splits train, test; point data.train, "
                                        r"data.validation and data.test at its split directories"):
        prepare_examples(DataSpec(path=str(tmp_path / "dd"), text_column="sentence"))


def test_a_file_that_is_not_parquet_says_so(tmp_path):
    bad = tmp_path / "d.parquet"
    bad.write_text("not parquet")
    with pytest.raises(DataError, match=r"d.parquet: not a readable Parquet file"):
        prepare_examples(DataSpec(path=str(bad)))
