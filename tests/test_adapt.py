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


def test_reloading_the_best_checkpoint_does_not_warn_of_the_tied_decoder(tiny_base, tmp_path, monkeypatch, caplog):
    """The decoder tied to the embeddings is stored once: Trainer's reload of the best checkpoint says
    nothing of it; a key that is really missing still warns."""
    import logging

    from transformers import AutoModelForMaskedLM

    from domainft.adapt import TRAINER_MISSING_KEYS, tied_keys_not_reported_missing

    monkeypatch.setenv("DOMAINFT_CACHE", str(tmp_path / "cache"))  # adapted here, not read from the cache
    contract.quiet_run(recipe(tiny_base, tmp_path / "run", adapt={**ADAPT, "epochs": 2}))
    assert not [r for r in caplog.records if "missing keys" in r.getMessage()]

    model = AutoModelForMaskedLM.from_pretrained(tiny_base)
    said = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())
    logger = logging.getLogger("transformers.trainer")
    logger.addHandler(handler)
    try:
        with tied_keys_not_reported_missing(model):
            logger.warning(TRAINER_MISSING_KEYS + "['cls.predictions.decoder.weight', 'cls.predictions.decoder.bias'].")
            logger.warning(TRAINER_MISSING_KEYS + "['bert.encoder.layer.0.output.dense.weight'].")
        logger.warning(TRAINER_MISSING_KEYS + "['cls.predictions.decoder.weight'].")  # outside: as before
    finally:
        logger.removeHandler(handler)
    assert said == [TRAINER_MISSING_KEYS + "['bert.encoder.layer.0.output.dense.weight'].",
                    TRAINER_MISSING_KEYS + "['cls.predictions.decoder.weight']."]


def test_the_cache_knows_a_base_and_corpus_by_content_not_path(tiny_base, tmp_path):
    """A corpus copied elsewhere, a base reached through a link or installed again (the same bytes,
    later file times) reuses the adapted base; a base folder whose weights changed does not."""
    import os
    import shutil

    from domainft.adapt import AdaptationTexts, _cache_key
    from domainft.bases import ResolvedBase

    texts = AdaptationTexts(["a text", "another"], ["held out"], {})
    a, b = tmp_path / "a" / "news.txt", tmp_path / "b" / "news.txt"
    for path in (a, b):
        path.parent.mkdir()
        path.write_text("a text\nanother\nheld out\n", encoding="utf-8")
    base = tmp_path / "base"
    shutil.copytree(tiny_base, base)
    link = tmp_path / "link"
    link.symlink_to(base)

    def key(folder, corpus):
        r = contract.recipe("classification", "full", folder, tmp_path / "run",
                            adapt={**ADAPT, "corpus": [str(corpus)]})
        return _cache_key(ResolvedBase(str(folder), str(folder), "folder"), r, texts)

    before = key(base, a)
    assert before == key(base, b) == key(link, a)
    reinstalled = tmp_path / "reinstalled"  # the same bytes elsewhere, written later (a venv rebuilt)
    shutil.copytree(base, reinstalled)
    for f in reinstalled.iterdir():
        os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))
    assert key(reinstalled, a) == before
    weights = base / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # trained again: other weights, same size
    weights.write_bytes(bytes(data))
    assert key(base, a) != before


def test_a_new_head_warms_up_alone_then_everything_trains(tiny_base, tmp_path, monkeypatch, capfd, recwarn):
    """head_warmup_steps: the fresh MLM head trains alone (the encoder unchanged), then the whole model;
    the report gives the held-out loss after the warm-up; nothing is printed as a dict."""
    import torch

    from domainft import adapt

    seen = {}
    warm_up = adapt._warm_up_head

    def spy(trainer, head, steps):
        before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
        flags = {n: p.requires_grad for n, p in trainer.model.named_parameters()}
        report = warm_up(trainer, head, steps)
        after = dict(trainer.model.named_parameters())
        changed = {n for n, v in before.items() if not torch.equal(v, after[n])}
        seen["encoder_unchanged"] = not {n for n in changed if not n.startswith("cls.")}
        seen["head_changed"] = "cls.predictions.transform.dense.weight" in changed
        seen["flags_back"] = flags == {n: p.requires_grad for n, p in trainer.model.named_parameters()}
        return report

    monkeypatch.setattr(adapt, "_warm_up_head", spy)
    result = contract.quiet_run(recipe(tiny_base, tmp_path / "run",
                                       adapt={**ADAPT, "head_warmup_steps": 4, "max_steps": 2}))
    w = result.metrics["adapt"]["head_warmup"]
    assert w["steps"] == 4 and np.isfinite(w["loss_after"])
    assert seen == {"encoder_unchanged": True, "head_changed": True, "flags_back": True}
    printed = capfd.readouterr()
    assert "{'loss'" not in printed.out
    assert not [w for w in recwarn if "hub_token" in str(w.message)]  # no placeholder token passed on


@pytest.mark.parametrize("how", ["SIGTERM", "KeyboardInterrupt"])
def test_an_interrupted_adaptation_continues_from_its_last_checkpoint(tiny_base, tmp_path, monkeypatch, how):
    """A kill (`kill`, Ctrl-C) after the step-4 checkpoint publishes nothing and leaves no temporary
    directory, only the checkpoints; the next request for the same base continues from that checkpoint
    (not from the start), publishes it and removes its checkpoints."""
    import os
    import signal

    from domainft import adapt, callbacks
    from domainft.bases import ResolvedBase
    from domainft.prepare import read_data
    from domainft.tasks import get_task

    r = recipe(tiny_base, tmp_path / "run", adapt={**ADAPT, "max_steps": 6, "eval_every": 2, "patience": 10})
    task = get_task("classification")
    data = read_data(task, r)
    base = ResolvedBase(str(tiny_base), str(tiny_base), "folder")
    save = callbacks.ProgressFile.on_save

    def killed_after_step_4(self, args, state, control, **kwargs):
        save(self, args, state, control, **kwargs)
        if state.global_step == 4:
            if how == "SIGTERM":
                os.kill(os.getpid(), signal.SIGTERM)
            raise KeyboardInterrupt

    if how == "SIGTERM" and signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        pytest.skip("the test runner handles SIGTERM itself")
    monkeypatch.setenv("DOMAINFT_CACHE", str(tmp_path / "cache"))  # each way of stopping adapts afresh
    monkeypatch.setattr(callbacks.ProgressFile, "on_save", killed_after_step_4)
    with pytest.raises(SystemExit if how == "SIGTERM" else KeyboardInterrupt):
        adapt.adapted_base(r, base, task, data, echo=lambda *a: None)
    adapted = adapt.cache_dir() / "adapted"
    partial, = (p for p in adapted.iterdir() if p.name.endswith(".partial"))
    assert {c.name for c in (partial / "checkpoints").glob("checkpoint-*")} >= {"checkpoint-4"}
    entry = partial.name[1:].removesuffix(".partial")
    assert sorted(p.name for p in adapted.iterdir() if entry in p.name) == [partial.name]  # its lock is gone
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

    monkeypatch.setattr(callbacks.ProgressFile, "on_save", save)
    said = []
    resumed, report = adapt.adapted_base(r, base, task, data, echo=said.append)
    assert report["resumed_from_step"] == 4 and report["steps"] == 6
    assert "continuing the interrupted adaptation from checkpoint-4" in said[0]
    assert not partial.exists() and (adapt.Path(resumed.path) / "config.json").is_file()
    again, _ = adapt.adapted_base(r, base, task, data, echo=said.append)
    assert again.path == resumed.path and said[-1].startswith("adapt: cached")


def test_one_process_adapts_a_base_and_the_ranks_of_one_job_do_not_wait(tmp_path, monkeypatch):
    import fcntl
    import threading

    from domainft.adapt import _only_one_adapting
    from domainft.locks import lock_file

    out = tmp_path / "adapted" / "model-abc"
    out.parent.mkdir()
    entered = threading.Event()

    def second_process():
        with _only_one_adapting(out):
            entered.set()

    with open(lock_file(out), "w") as held:  # another process is adapting it
        fcntl.flock(held, fcntl.LOCK_EX)
        waiting = threading.Thread(target=second_process)
        waiting.start()
        assert not entered.wait(0.3)  # waits for it
        monkeypatch.setenv("WORLD_SIZE", "2")  # a rank of a torchrun job: its peers hold no lock
        with _only_one_adapting(out):
            pass
        monkeypatch.delenv("WORLD_SIZE")
        fcntl.flock(held, fcntl.LOCK_UN)
    waiting.join(5)
    assert entered.is_set()


def test_adaptation_trains_in_the_precision_auto_measures_and_the_masks_stay_put(tiny_base, tmp_path, monkeypatch):
    """adapt.precision auto on a CPU with AMX times masked-LM steps (a batch with its labels) and
    adapts in bf16 where they are clearly faster; the adapted base is saved in fp32 and the report
    says which was used and why. Timing does not move the masking: where the measurement keeps fp32,
    the adapted weights equal those of a CPU that measures nothing. A precision set by hand is part
    of the cache key; auto is not (it decides once per machine)."""
    import torch
    from safetensors.torch import load_file

    from domainft import adapt
    from domainft import precision as precision_module
    from domainft.bases import ResolvedBase
    from domainft.prepare import read_data
    from domainft.tasks import get_task

    r = recipe(tiny_base, tmp_path / "run", adapt={**ADAPT, "max_steps": 2})
    task = get_task("classification")
    data = read_data(task, r)
    base = ResolvedBase(str(tiny_base), str(tiny_base), "folder")
    batches = []

    def adapted_on(flags: set, speedup: float | None, cache: str):
        def measure(model, batch):
            batches.append(sorted(batch))
            return speedup

        monkeypatch.setenv("DOMAINFT_CACHE", str(tmp_path / cache))
        monkeypatch.setattr(precision_module, "cpu_flags", lambda: flags)
        monkeypatch.setattr(precision_module, "measure_bf16_speedup", measure)
        resolved, report = adapt.adapted_base(r, base, task, data, echo=lambda *a: None)
        return report["precision"], load_file(f"{resolved.path}/model.safetensors")

    plain, plain_weights = adapted_on({"avx2"}, None, "plain")
    timed, timed_weights = adapted_on({"amx_bf16", "avx512_bf16"}, 1.0, "timed")
    fast, fast_weights = adapted_on({"amx_bf16", "avx512_bf16"}, 2.0, "fast")
    assert (plain["used"], timed["used"], fast["used"]) == ("fp32", "fp32", "bf16")
    assert fast["bf16_speedup"] == 2.0 and "2.00x" in fast["reason"]
    assert batches[0] == ["attention_mask", "input_ids", "labels", "token_type_ids"]
    assert all(torch.equal(plain_weights[k], timed_weights[k]) for k in plain_weights)
    assert all(v.dtype == torch.float32 for v in fast_weights.values())
    assert not all(torch.equal(plain_weights[k], fast_weights[k]) for k in plain_weights)

    texts = adapt.adaptation_texts(r, task, data)
    fp32 = recipe(tiny_base, tmp_path / "run", adapt={**ADAPT, "max_steps": 2, "precision": "fp32"})
    assert adapt._cache_key(base, fp32, texts) != adapt._cache_key(base, r, texts)


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


@pytest.mark.parametrize("arch", ["bert", "roberta", "mpnet"])
def test_masked_positions_only_gives_the_models_own_loss_and_gradients(arch):
    """Adaptation applies the MLM head to the masked positions only (the others' scores are never
    used); the loss and every gradient are the model's own, and the class's forward comes back."""
    import torch
    import transformers

    from domainft.adapt import predict_masked_positions_only

    config_cls, model_cls = {"bert": ("BertConfig", "BertForMaskedLM"),
                             "roberta": ("RobertaConfig", "RobertaForMaskedLM"),
                             "mpnet": ("MPNetConfig", "MPNetForMaskedLM")}[arch]
    config = getattr(transformers, config_cls)(vocab_size=120, hidden_size=32, num_hidden_layers=2,
                                               num_attention_heads=2, intermediate_size=64,
                                               max_position_embeddings=64)
    torch.manual_seed(0)
    model = getattr(transformers, model_cls)(config).eval()  # no dropout: both passes see the same net
    ids = torch.randint(5, 120, (3, 12))
    mask = torch.ones_like(ids)
    mask[2, 8:] = 0
    labels = torch.full_like(ids, -100)
    labels[0, 2], labels[1, 5], labels[1, 6], labels[2, 1] = 7, 9, 11, 13

    def loss_and_grads():
        model.zero_grad()
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    own_loss, own_grads = loss_and_grads()
    restore = predict_masked_positions_only(model)
    fast_loss, fast_grads = loss_and_grads()
    assert fast_loss == pytest.approx(own_loss, rel=1e-5)
    assert own_grads.keys() == fast_grads.keys()
    for name, grad in own_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    restore()
    assert model(input_ids=ids, attention_mask=mask).logits.shape == (3, 12, 120)  # its own forward again
