"""`data.hub`: a dataset on the Hugging Face Hub, by id and split names, read like a local
`datasets` directory.

`datasets.load_dataset` downloads (or finds in its own cache) the named splits; each split is
saved once to the domainft cache (`Dataset.save_to_disk`, under its fingerprint, published
atomically), and the recipe's data section then reads those directories as `data.train` /
`data.validation` / `data.test` with `format: hf_dataset`, so every check, split and report is
the one a local dataset gets. Offline, a dataset `datasets` has not cached is an error naming the
id and the way round it.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from domainft.errors import DataError

if TYPE_CHECKING:
    from domainft.data.spec import DataSpec

SPLIT_FIELDS = ("train", "validation", "test")


def with_hub_splits(spec: DataSpec) -> DataSpec:
    """`spec` itself without data.hub; else a copy reading the Hub dataset's splits from the cache."""
    hub = spec.hub
    if hub is None:
        return spec
    splits = _load(hub)
    available = list(splits)
    paths = {}
    for role in SPLIT_FIELDS:
        name = getattr(hub.splits, role)
        if name is None:
            continue
        if name not in splits:
            raise DataError(f"data.hub.splits.{role}: {hub.id} has no split {name!r}; its splits are "
                            f"{', '.join(available)}. Set data.hub.splits.{role} to one of them"
                            + ("" if role == "train" else " (or null: validation is then carved from train)"))
        paths[role] = _saved(splits[name], hub, name)
    return spec.model_copy(update={"hub": None, "path": None, "format": "hf_dataset", **paths})


def _load(hub):
    import datasets

    try:
        loaded = datasets.load_dataset(hub.id, hub.config, revision=hub.revision)
    except Exception as e:  # offline, unknown id, gated, a config required: the library's message says which
        detail = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        raise DataError(f"data.hub.id: could not load {hub.id!r} from the Hugging Face Hub ({type(e).__name__}: "
                        f"{detail}). Check the id (and data.hub.config / revision) and the connection; offline, "
                        "save it where the Hub is reachable (load_dataset(...).save_to_disk(DIR)) and give "
                        "its split directories as data.train / data.validation / data.test") from None
    if not isinstance(loaded, datasets.DatasetDict):
        raise DataError(f"data.hub.id: {hub.id!r} loaded as one {type(loaded).__name__}, not named splits; "
                        "save it with save_to_disk and give the directory as data.path")
    return loaded


def _saved(dataset, hub, split: str) -> Path:
    """The split saved under the cache, once per fingerprint (the same data is never written twice,
    a half-written copy is never read)."""
    from domainft.atomic import published_once
    from domainft.gguf import cache_dir

    name = hub.id.replace("/", "--") + (f"--{hub.config}" if hub.config else "")
    final = cache_dir() / "hub_datasets" / name / f"{split}-{dataset._fingerprint}"
    if not (final / "state.json").is_file():
        with published_once(final) as tmp:
            dataset.save_to_disk(str(tmp))
    return final
