"""Shared fixtures: a tiny random-weight BERT (fast), sample data, recipe builders."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "finance_sentiment_sample.txt"


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT with random weights and the packaged MiniLM tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from domainft.bases import resolve_base

    out = tmp_path_factory.mktemp("tiny_bert")
    tokenizer = AutoTokenizer.from_pretrained(resolve_base(["minilm"]).path)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture
def make_recipe(tiny_base, tmp_path):
    """Recipe on the tiny base and the finance sample, writing into tmp_path; kwargs override."""
    from domainft.recipe import Recipe

    def make(overrides: dict | None = None, **sections):
        raw = {
            "name": "test_run",
            "base": str(tiny_base),
            "data": {"format": "phrasebank", "path": str(SAMPLE), "max_length": 64},
            "train": {"epochs": 2, "batch_size": 16, "lr": 5e-4, "seed": 7,
                      "early_stopping": {"metric": "macro_f1", "patience": 2}},
            "output": {"dir": str(tmp_path / "run")},
            **sections,
        }
        return Recipe.from_dict(raw).override(overrides or {})

    return make
