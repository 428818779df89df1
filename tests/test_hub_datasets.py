"""data.hub: a Hugging Face Hub dataset by id and split names, read as a saved `datasets` directory
(datasets.load_dataset is replaced here by a local DatasetDict: tests never touch the network)."""
import pytest

from domainft import run
from domainft.errors import DataError, RecipeError
from domainft.recipe import Recipe

from conftest import SAMPLE


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """datasets.load_dataset answering for one id with the finance sample as train / dev / test
    (ClassLabel labels, as Hub datasets give them); the calls it got."""
    import datasets

    rows = [line.rpartition("@") for line in SAMPLE.read_text(encoding="latin-1").splitlines()]
    names = ["negative", "neutral", "positive"]
    features = datasets.Features({"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=names)})
    data = {"sentence": [t.strip() for t, _, _ in rows], "label": [names.index(x.strip()) for _, _, x in rows]}
    full = datasets.Dataset.from_dict(data, features=features)
    dd = datasets.DatasetDict({"train": full.select(range(0, 240)), "dev": full.select(range(240, 270)),
                               "test": full.select(range(270, len(full)))})
    calls = []

    def load_dataset(id, config=None, revision=None, **kw):
        calls.append((id, config, revision))
        if id != "someone/finance":
            raise FileNotFoundError(f"Dataset '{id}' doesn't exist on the Hub or cannot be accessed.")
        return dd

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setenv("DOMAINFT_CACHE", str(tmp_path / "cache"))
    return calls


def recipe(tiny_base, tmp_path, **hub):
    return Recipe.from_dict({"base": str(tiny_base), "data": {"hub": {"id": "someone/finance", **hub},
                                                             "text_column": "sentence", "max_length": 64},
                             "train": {"epochs": 1, "batch_size": 16, "lr": 5e-4, "seed": 7},
                             "output": {"dir": str(tmp_path / "run")}})


def test_a_hub_dataset_trains_with_its_split_names(hub, tiny_base, tmp_path):
    r = recipe(tiny_base, tmp_path, revision="v1", splits={"validation": "dev"})
    result = run(r, progress=False, echo=lambda *a: None)
    m = result.metrics["data"]
    assert m["counts"] == {"train": 240, "validation": 30, "test": 32}
    assert m["labels"] == ["negative", "neutral", "positive"]  # the ClassLabel names, not 0 / 1 / 2
    assert hub == [("someone/finance", None, "v1")]
    saved = sorted(p.name.split("-")[0] for p in (tmp_path / "cache" / "hub_datasets" / "someone--finance").iterdir())
    assert saved == ["dev", "test", "train"]
    # A second read finds the saved splits (the same fingerprints): nothing written twice.
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("state.json")}
    from domainft.prepare import read_data
    from domainft.tasks import get_task

    read_data(get_task("classification"), r)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("state.json")} == before


def test_an_unknown_split_name_lists_the_splits(hub, tiny_base, tmp_path):
    from domainft.prepare import read_data
    from domainft.tasks import get_task

    with pytest.raises(DataError, match=r"data.hub.splits.validation: someone/finance has no split 'validation'; "
                                        r"its splits are train, dev, test"):
        read_data(get_task("classification"), recipe(tiny_base, tmp_path))


def test_an_unreachable_dataset_says_how_to_work_offline(hub, tiny_base, tmp_path):
    from domainft.prepare import read_data
    from domainft.tasks import get_task

    r = Recipe.from_dict({"base": str(tiny_base), "data": {"hub": {"id": "someone/missing"}}})
    with pytest.raises(DataError, match=r"data.hub.id: could not load 'someone/missing' .*save_to_disk"):
        read_data(get_task("classification"), r)


def test_hub_with_files_or_on_ner_is_refused(tiny_base):
    with pytest.raises(RecipeError, match="`hub` names the dataset"):
        Recipe.from_dict({"base": str(tiny_base), "data": {"hub": {"id": "a/b"}, "path": "x.csv"}})
    with pytest.raises(RecipeError, match="data.hub.*applies to tasks"):
        Recipe.from_dict({"task": "ner", "base": str(tiny_base), "data": {"hub": {"id": "a/b"}}})
