"""Domain-adaptive pretraining (`adapt:`, `domainft adapt`): masked-LM training of the base on the
task's training texts and / or domain files before fine-tuning; a base without an MLM head gets one;
the adapted base is cached, reported (held-out perplexity before / after) and an ordinary
transformers directory any recipe can name; lexicon rows are learnt during it; validation and test
texts never enter it; fine-tuning and export work on it as on any base."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from domainft.errors import DomainftError, RecipeError

import contract

ADAPT = {"task_texts": True, "epochs": 1, "batch_size": 16, "max_length": 32}


@pytest.fixture(autouse=True)
def own_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DOMAINFT_CACHE", str(tmp_path_factory.getbasetemp() / "adapt_cache"))


def recipe(tiny_base, out, method="full", **sections):
    return contract.recipe("classification", method, tiny_base, out, **{"adapt": ADAPT, **sections})


def test_tapt_adapts_once_reports_perplexity_and_fine_tunes_and_exports(tiny_base, tmp_path):
    first = contract.quiet_run(recipe(tiny_base, tmp_path / "a", export={"enabled": True}))
    a = first.metrics["adapt"]
    assert a["new_head"] == ["cls"]  # the tiny BERT, like the packaged MiniLM, ships no MLM head
    assert a["texts"]["task_texts"] > 0 and a["texts"]["held_out_texts"] >= 10
    assert a["perplexity"]["after"] < a["perplexity"]["before"]
    from pathlib import Path

    assert json.loads((Path(a["dir"]) / "adapt.json").read_text())["steps"] > 0
    assert (first.bundle_dir / "domainft.json").is_file()  # the export's parity gate passed
    second = contract.quiet_run(recipe(tiny_base, tmp_path / "b", method="lora"))
    assert second.metrics["adapt"]["dir"] == a["dir"]  # cached: adapted once
    assert second.metrics["test"]


def test_validation_and_test_texts_never_enter_the_adaptation(tiny_base, tmp_path):
    lines = (contract.ROOT / "data" / "finance_sentiment_sample.txt").read_text(encoding="latin-1").splitlines()
    corpus = tmp_path / "news.txt"
    own = [line.rsplit("@", 1)[0] for line in lines]  # every text of the run, validation and test included
    fresh = [f"Firm {i} said quarterly sales rose to EUR {i} mn ." for i in range(60)]
    corpus.write_text("\n".join(fresh + own) + "\n", encoding="utf-8")
    r = contract.recipe("classification", "full", tiny_base, tmp_path / "run",
                        adapt={**ADAPT, "task_texts": False, "corpus": [str(corpus)]})
    from domainft.adapt import adaptation_texts
    from domainft.prepare import read_data
    from domainft.tasks import get_task

    task = get_task("classification")
    data = read_data(task, r)
    texts = adaptation_texts(r, task, data)
    held = {t for split in (data.validation, data.test) for t in (e.text for e in split)}
    assert not held & set(texts.train + texts.held_out)
    assert texts.report["dropped_validation_test_or_repeated"] >= len(held)


def test_lexicon_rows_are_learnt_during_adaptation(tiny_base, tmp_path):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    lexicon = tmp_path / "terms.txt"
    lexicon.write_text("hypercholesterolemia\nEBITDA\n", encoding="utf-8")
    r = recipe(tiny_base, tmp_path / "run", lexicon={"files": [str(lexicon)]})
    result = contract.quiet_run(r)
    adapted = result.metrics["adapt"]["dir"]
    tok = AutoTokenizer.from_pretrained(adapted)
    base_tok = AutoTokenizer.from_pretrained(tiny_base)
    weights = load_file(f"{adapted}/model.safetensors")
    emb = next(v for k, v in weights.items() if k.endswith("word_embeddings.weight"))
    base_emb = next(v for k, v in load_file(f"{tiny_base}/model.safetensors").items()
                    if k.endswith("word_embeddings.weight"))
    for term in ("hypercholesterolemia", "EBITDA"):
        ids = tok(term, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and ids[0] >= base_emb.shape[0]  # a token of its own
        new_id = ids[0]
        start = base_emb[base_tok(term, add_special_tokens=False)["input_ids"]].mean(0)  # its initial row
        assert not torch.allclose(emb[new_id], start, atol=1e-4)
    assert result.metrics["adapt"]["lexicon"]["terms_added"] == 2


def test_adapt_command_writes_a_base_a_recipe_can_name(tiny_base, tmp_path):
    from domainft.cli import app

    path = tmp_path / "recipe.yaml"
    r = recipe(tiny_base, tmp_path / "unused")
    path.write_text(r.to_yaml(), encoding="utf-8")
    out = tmp_path / "adapted_base"
    cli = CliRunner().invoke(app, ["adapt", str(path), "--out", str(out)])
    assert cli.exit_code == 0, cli.output
    assert cli.output.strip().splitlines()[-1] == str(out) and (out / "config.json").is_file()
    plain = contract.quiet_run(contract.recipe("classification", "full", out, tmp_path / "run"))
    assert np.isfinite(plain.metrics["test"]["accuracy"])
    again = CliRunner().invoke(app, ["adapt", str(path), "--out", str(out)])
    assert again.exit_code == 2 and "exists" in again.output


def test_bad_adaptation_settings_are_refused(tiny_base, tmp_path):
    with pytest.raises(RecipeError, match="adapt.corpus"):
        contract.recipe("classification", "full", tiny_base, tmp_path / "a",
                        adapt={"corpus": [str(tmp_path / "missing.txt")]})
    tiny = tmp_path / "three.txt"
    tiny.write_text("one\ntwo\nthree\n", encoding="utf-8")
    with pytest.raises(DomainftError, match="texts to adapt on"):
        contract.quiet_run(contract.recipe("classification", "full", tiny_base, tmp_path / "b",
                                           adapt={"corpus": [str(tiny)]}))
    assert not (tmp_path / "b").exists()
