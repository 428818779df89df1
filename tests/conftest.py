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


# ChatML, the template SmolLM2 uses (without its default system message).
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
          "{% endif %}")


@pytest.fixture(scope="session")
def tiny_decoder(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide Llama with random weights and a 320-token byte-level BPE tokenizer trained
    on the finance sample, with ChatML markers and chat template; pad = end of turn, as SmolLM2."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tiny_llama")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    lines = SAMPLE.read_text(encoding="latin-1").splitlines() + ["system user assistant"]
    bpe.train_from_iterator(lines, trainers.BpeTrainer(
        vocab_size=320, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|im_end|>",
        unk_token="<|endoftext|>", chat_template=CHATML, model_input_names=["input_ids", "attention_mask"])
    torch.manual_seed(0)
    # hidden 64: on CPUs with AVX512-BF16, bitsandbytes repacks 4-bit weights for evaluation and
    # needs in_features >= its 64 blocksize and out_features a multiple of 32 (real models are).
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out
