"""Distillation (`distill:`): a student learns from a finished teacher run's soft targets, for
classification, multilabel and NER and every tuning method; teacher outputs are cached; transfer
texts that are validation / test texts are dropped; the student reloads, exports and names its
teacher; a teacher that does not fit is refused before anything is written."""
from __future__ import annotations

import json

import numpy as np
import pytest

from domainft import load
from domainft.errors import DomainftError, RecipeError

import contract


@pytest.fixture(scope="module", autouse=True)
def own_cache(tmp_path_factory):
    """Teacher outputs are cached under $DOMAINFT_CACHE: this file's, not the user's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DOMAINFT_CACHE", str(tmp_path_factory.mktemp("distill_cache")))
        yield


@pytest.fixture(scope="module")
def teachers(tiny_base, tmp_path_factory):
    """A finished tiny run per task, trained once for this file."""
    out = {}
    for task in ("classification", "multilabel", "ner"):
        run_dir = tmp_path_factory.mktemp(f"teacher_{task}") / "run"
        contract.quiet_run(contract.recipe(task, "full", tiny_base, run_dir))
        out[task] = run_dir
    return out


def student(task, method, tiny_base, out, teacher, sections=None, **distill):
    return contract.recipe(task, method, tiny_base, out, distill={"teacher": str(teacher), **distill},
                           **(sections or {}))


@pytest.mark.parametrize("task,method", [("classification", m) for m in contract.methods_for("classification")]
                         + [("multilabel", "full"), ("ner", "full"), ("ner", "lora")])
def test_a_student_learns_from_its_teacher_and_reloads_as_trained(teachers, tiny_base, tmp_path, task, method):
    result = contract.quiet_run(student(task, method, tiny_base, tmp_path / "run", teachers[task]))
    d = result.metrics["distill"]
    assert d["teacher"] == str(teachers[task]) and d["alpha"] == 0.5 and d["temperature"] == 2.0
    losses = [h["loss"] for h in result.metrics["train"]["history"] if "loss" in h]
    assert losses and all(np.isfinite(losses))
    texts = contract.TEXTS[task]
    before = result.model.predict(texts)
    after = load(result.run_dir).predict(texts)
    assert json.dumps(before, sort_keys=True) == json.dumps(after, sort_keys=True)


def test_teacher_outputs_are_cached_and_the_card_names_the_teacher(teachers, tiny_base, tmp_path, monkeypatch):
    monkeypatch.setenv("DOMAINFT_CACHE", str(tmp_path / "cache"))
    first = contract.quiet_run(student("classification", "full", tiny_base, tmp_path / "a", teachers["classification"],
                                       sections={"export": {"enabled": True}}))
    second = contract.quiet_run(student("classification", "full", tiny_base, tmp_path / "b",
                                        teachers["classification"]))
    assert first.metrics["distill"]["teacher_outputs_cached"] is False
    assert second.metrics["distill"]["teacher_outputs_cached"] is True
    assert second.metrics["distill"]["teacher_outputs_computed"] == 0
    assert list((tmp_path / "cache" / "teacher_targets").rglob("*.npz"))
    transfer = tmp_path / "headlines.txt"
    transfer.write_text("\n".join(f"Company {i} reports sales of EUR {i}.5 mn ." for i in range(7)) + "\n",
                        encoding="utf-8")
    third = contract.quiet_run(student("classification", "full", tiny_base, tmp_path / "c", teachers["classification"],
                                       transfer=[str(transfer)]))
    assert third.metrics["distill"]["teacher_outputs_computed"] == 7  # the new texts only, text by text
    for card in (first.model_dir / "README.md", first.bundle_dir / "README.md"):
        text = card.read_text(encoding="utf-8")
        assert "Distilled from" in text and str(teachers["classification"]) in text, card


def test_teacher_outputs_an_earlier_version_cached_for_a_whole_list_are_read(teachers, tmp_path, monkeypatch):
    """Before the per-text store, outputs were cached in one file per list of texts: such a file is
    read into the store instead of asking the teacher again."""
    import hashlib

    from domainft import distill

    monkeypatch.setenv("DOMAINFT_CACHE", str(tmp_path / "cache"))
    model_dir = distill.teacher_model_dir(teachers["classification"])
    items = ["Sales rose .", "Profit fell .", "Sales rose ."]
    key = hashlib.sha256(distill.teacher_fingerprint(model_dir).encode())
    key.update(b"text")
    key.update(json.dumps(items).encode())
    old = np.array([[1, 2, 3], [4, 5, 6], [1, 2, 3]], dtype=np.float32)
    (tmp_path / "cache" / "teacher_targets").mkdir(parents=True)
    np.savez(tmp_path / "cache" / "teacher_targets" / f"{key.hexdigest()[:32]}.npz", flat=old, lengths=np.array([3]))

    def never(xs):
        raise AssertionError("the teacher was asked again")

    rows, computed = distill.cached_targets(model_dir, items, never, "text")
    assert computed == 0 and np.array_equal(np.concatenate(rows), old)
    rows, _ = distill.cached_targets(model_dir, items[:2], never, "text")  # now from the per-text store
    assert np.array_equal(np.concatenate(rows), old[:2])


def test_transfer_texts_join_training_and_known_texts_are_dropped(teachers, tiny_base, tmp_path):
    sample = contract.ROOT / "data" / "finance_sentiment_sample.txt"
    lines = sample.read_text(encoding="latin-1").splitlines()
    known = [line.rsplit("@", 1)[0] for line in lines][:5]  # texts of the run's training / validation / test splits
    transfer = tmp_path / "headlines.txt"
    fresh = [f"Company {i} reports quarterly sales of EUR {i}.5 mn ." for i in range(40)]
    transfer.write_text("\n".join(fresh + [t.upper() for t in known] + [fresh[0], ""]) + "\n", encoding="utf-8")
    result = contract.quiet_run(student("classification", "full", tiny_base, tmp_path / "run",
                                        teachers["classification"], transfer=[str(transfer)]))
    t = result.metrics["distill"]["transfer"]
    assert t["texts"] == 40 and t["dropped_known_or_repeated"] == len(known) + 1
    gold_rows = contract.quiet_run(contract.recipe("classification", "full", tiny_base, tmp_path / "plain"))
    assert result.metrics["distill"]["train_rows"] == gold_rows.metrics["data"]["counts"]["train"] + 40


def test_ner_transfer_texts_are_labelled_per_word(teachers, tiny_base, tmp_path):
    transfer = tmp_path / "abstracts.jsonl.gz"
    import gzip

    with gzip.open(transfer, "wt", encoding="utf-8") as f:
        for i in range(20):
            f.write(json.dumps({"text": f"Patient {i} had familial hypercholesterolemia and ataxia ."}) + "\n")
    result = contract.quiet_run(student("ner", "full", tiny_base, tmp_path / "run", teachers["ner"],
                                        transfer=[str(transfer)]))
    assert result.metrics["distill"]["transfer"]["texts"] == 20


def test_augmented_copies_are_perturbed_fixed_and_never_a_known_text():
    from domainft.distill import augmented_texts

    texts = ["Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period in 2007 .",
             "Sales fell ."]
    copies = augmented_texts(texts, 4)
    assert len(copies) == 8 and copies == augmented_texts(texts, 4)  # fixed: one teacher call for every seed
    assert augmented_texts(texts, 0) == []
    for copy, source in zip(copies, [t for t in texts for _ in range(4)]):
        words, source_words = copy.split(), source.split()
        assert words and all(w in source_words for w in words)  # only the text's own words, in order
        assert len(words) <= len(source_words)
    assert any(c != texts[0] for c in copies[:4])


@pytest.mark.parametrize("task", ["classification", "ner"])
def test_augmented_copies_are_labelled_by_the_teacher_and_the_card_says_so(teachers, tiny_base, tmp_path, task):
    result = contract.quiet_run(student(task, "full", tiny_base, tmp_path / "run", teachers[task], augment=2,
                                        sections={"export": {"enabled": True}} if task == "classification" else None))
    a = result.metrics["distill"]["augment"]
    train = result.metrics["data"]["counts"]["train"]
    assert a["copies"] == 2 and a["texts"] + a["dropped_known_or_repeated"] == 2 * train
    assert 0 < a["texts"] and result.metrics["distill"]["train_rows"] >= train + a["texts"]
    assert result.metrics["distill"]["transfer"]["texts"] == 0
    card = (result.model_dir / "README.md").read_text(encoding="utf-8")
    assert f"{a['texts']} perturbed copies" in card
    texts = contract.TEXTS[task]
    assert json.dumps(result.model.predict(texts)) == json.dumps(load(result.run_dir).predict(texts))


def test_ner_targets_are_the_teachers_own_distribution_per_word(teachers, tiny_base, tmp_path):
    """The student's target at a word's first subword is the teacher's log-softmax for that word:
    exp of it sums to 1, and its argmax is the tag the teacher predicts."""
    from domainft.distill import TEACHER_COLUMN, with_teacher
    from domainft.prepare import prepare

    prepared = prepare(student("ner", "full", tiny_base, tmp_path / "run", teachers["ner"]), echo=lambda *a: None)
    train, _ = with_teacher(prepared, teachers["ner"], echo=lambda *a: None)
    teacher = load(teachers["ner"])
    labels = prepared.data.labels
    for row in range(5):
        sentence, word_index = train[row]["sentence"], train[row]["word_index"]
        words = list(prepared.data.train[sentence].words)
        tags = teacher.predict([words])[0]["tags"]
        for w, target in zip(word_index, train[row][TEACHER_COLUMN]):
            if w < 0:
                assert not any(target)  # no target: later subwords, special tokens
                continue
            probs = np.exp(np.asarray(target))
            assert probs.sum() == pytest.approx(1.0, abs=1e-5)
            assert labels[int(probs.argmax())] == tags[w]


def test_the_loss_mixes_gold_and_teacher_terms():
    import torch

    from domainft.distill import distillation_loss

    class Echo(torch.nn.Module):  # logits = the inputs themselves
        def forward(self, input_ids=None):
            return type("Out", (), {"logits": input_ids})()

    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, -100])  # the second row is a transfer text: no gold label
    same = distillation_loss("classification", 1.0, 2.0)(Echo(), {"input_ids": logits, "labels": labels,
                                                                   "teacher": logits.clone()})
    assert float(same) == pytest.approx(0.0, abs=1e-6)  # the teacher agrees: nothing to learn from it
    gold = distillation_loss("classification", 0.0, 2.0)(Echo(), {"input_ids": logits, "labels": labels,
                                                                   "teacher": logits.clone()})
    assert float(gold) == pytest.approx(float(torch.nn.functional.cross_entropy(logits[:1], labels[:1])))
    none = distillation_loss("classification", 0.0, 2.0)(Echo(), {"input_ids": logits, "labels": torch.tensor(
        [-100, -100]), "teacher": logits.clone()})
    assert float(none) == 0.0  # a batch of transfer texts only: no gold term, not NaN


def test_a_teacher_that_does_not_fit_is_refused_before_anything_is_written(teachers, tiny_base, tmp_path):
    with pytest.raises(DomainftError, match="ner run"):
        contract.quiet_run(student("classification", "full", tiny_base, tmp_path / "a", teachers["ner"]))
    assert not (tmp_path / "a").exists()
    with pytest.raises(RecipeError, match="distill.teacher"):
        student("classification", "full", tiny_base, tmp_path / "b", tmp_path / "nowhere")
    with pytest.raises(RecipeError, match="distill"):
        student("regression", "full", tiny_base, tmp_path / "c", teachers["classification"])
    with pytest.raises(RecipeError, match="distill.transfer"):
        contract.recipe("classification", "full", tiny_base, tmp_path / "d", distill={"transfer": ["x.txt"]})


def test_multilabel_transfer_texts_count_in_the_teacher_term_only(teachers, tiny_base, tmp_path):
    transfer = tmp_path / "clauses.txt"
    transfer.write_text("\n".join(f"Under section {i}.1 , the Licensee shall pay each invoice within {i} days ."
                                  for i in range(20)) + "\n", encoding="utf-8")
    result = contract.quiet_run(student("multilabel", "full", tiny_base, tmp_path / "run", teachers["multilabel"],
                                        transfer=[str(transfer)]))
    losses = [h["loss"] for h in result.metrics["train"]["history"] if "loss" in h]
    assert result.metrics["distill"]["transfer"]["texts"] == 20 and all(np.isfinite(losses))


def test_a_teacher_base_is_trained_first_then_shared_and_an_interrupted_one_resumes(tiny_base, tmp_path,
                                                                                 monkeypatch):
    from test_pipeline import Interrupt, StopAfterFirstSave

    from domainft import run
    from domainft.teacher import teacher_recipe

    monkeypatch.setenv("DOMAINFT_CACHE", str(tmp_path / "cache"))
    distill = {"teacher_base": str(tiny_base), "teacher_set": ["train.epochs=2", "train.seed=3"]}
    first_recipe = contract.recipe("classification", "full", tiny_base, tmp_path / "a", distill=distill,
                                   export={"enabled": True})
    teacher = teacher_recipe(first_recipe)
    assert teacher.train.seed == 3 and not teacher.distill.enabled and not teacher.export.enabled
    assert teacher.tuning.method == "full"
    with pytest.raises(Interrupt):  # a teacher whose training was stopped after its first checkpoint
        run(teacher, progress=False, echo=lambda *a: None, callbacks=[StopAfterFirstSave()])
    said = []
    first = run(first_recipe, progress=False, echo=lambda *a: said.append(" ".join(map(str, a))))
    assert any("training the teacher first" in line and "(resuming it)" in line for line in said)
    d = first.metrics["distill"]
    assert d["teacher"] == str(teacher.run_dir) and d["teacher_trained_here"] is True
    assert (teacher.run_dir / "metrics.json").is_file() and teacher.run_dir.parent == tmp_path / "cache" / "teachers"
    assert "Distilled from" in (first.bundle_dir / "README.md").read_text(encoding="utf-8")
    finished = (teacher.run_dir / "metrics.json").stat().st_mtime_ns
    second = contract.quiet_run(contract.recipe("classification", "lora", tiny_base, tmp_path / "b", distill=distill))
    assert second.metrics["distill"]["teacher"] == str(teacher.run_dir)  # the same teacher, not trained again
    assert second.metrics["distill"]["teacher_outputs_cached"] is True
    assert (teacher.run_dir / "metrics.json").stat().st_mtime_ns == finished
    other = teacher_recipe(contract.recipe("classification", "full", tiny_base, tmp_path / "c",
                                           distill={**distill, "teacher_set": ["train.epochs=3"]}))
    assert other.run_dir != teacher.run_dir  # another teacher recipe, another teacher


def test_a_trained_teacher_is_known_by_its_base_and_data_content_not_their_file_times(tiny_base, tmp_path):
    """A base folder trained again at the same path, or a dataset edited in place, gets another
    teacher; the same bytes unpacked again (new modification times) reuse the cached one."""
    import os
    import shutil

    from domainft.teacher import teacher_recipe

    base, data = tmp_path / "base", tmp_path / "sentences.txt"
    shutil.copytree(tiny_base, base)
    shutil.copy(contract.SAMPLES["classification"]["data"]["path"], data)

    def teacher_dir():
        r = contract.recipe("classification", "full", tiny_base, tmp_path / "run",
                            distill={"teacher_base": str(base)})
        return teacher_recipe(r.override({"data.path": str(data)})).run_dir

    first = teacher_dir()
    later = os.stat(data).st_mtime_ns + 10**9
    for f in (data, *base.iterdir()):  # unpacked again: the same bytes, later times
        os.utime(f, ns=(later, later))
    assert teacher_dir() == first
    weights = base / "model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[-1] ^= 1  # retrained at the same path: same size, other bytes
    weights.write_bytes(bytes(blob))
    retrained = teacher_dir()
    assert retrained != first
    data.write_bytes(data.read_bytes().replace(b"@neutral", b"@positive", 1))  # one label edited in place
    assert teacher_dir() not in (first, retrained)


def test_a_teacher_base_recipe_that_is_wrong_is_refused_with_its_field(tiny_base, tmp_path):
    def refused(distill, match):
        with pytest.raises(RecipeError, match=match):
            contract.recipe("classification", "full", tiny_base, tmp_path / "x", distill=distill)

    refused({"teacher_set": ["train.lr=3e-5"]}, "distill.teacher_set: overrides the teacher")
    refused({"teacher_base": "mpnet", "teacher": str(tmp_path)}, "distill.teacher_base: .* not both")
    refused({"teacher_base": "mpnet", "teacher_set": ["output.dir=elsewhere"]}, "not the teacher's to set")
    refused({"teacher_base": "mpnet", "teacher_set": ["train.lrr=1"]}, "train.lrr: unknown field")
    refused({"teacher_base": "mpnet", "teacher_set": ["train.lr"]}, "give FIELD=VALUE")
    assert not (tmp_path / "x").exists()


def test_a_student_waits_for_the_teacher_another_process_is_training(tiny_base, tmp_path, monkeypatch):
    """Two students of one teacher_base started at once: the second waits for the first's teacher
    training (the run lock on the teacher's directory), then uses it instead of training it again."""
    import os
    import subprocess
    import sys
    import threading

    from domainft.rundir import run_lock_target
    from domainft.teacher import teacher_recipe, teacher_run_dir

    monkeypatch.setenv("DOMAINFT_CACHE", str(tmp_path / "cache"))
    student = contract.recipe("classification", "full", tiny_base, tmp_path / "b",
                              distill={"teacher_base": str(tiny_base)})
    teacher = teacher_recipe(student).run_dir
    hold = ("import sys; from pathlib import Path; from domainft.locks import exclusive\n"
            "with exclusive(Path(sys.argv[1]), holder='the first student'):\n"
            "    print('held', flush=True); sys.stdin.readline()\n"
            "    (Path(sys.argv[2]) / 'metrics.json').write_text('{}')\n")  # its teacher, finished
    teacher.mkdir(parents=True)
    first = subprocess.Popen([sys.executable, "-c", hold, str(run_lock_target(teacher)), str(teacher)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    assert first.stdout.readline().strip() == "held"
    said, trained = [], []
    waiting = threading.Thread(target=lambda: said.append(teacher_run_dir(
        student, lambda *a, **k: trained.append(a), echo=lambda line: said.append(line))))
    waiting.start()
    waiting.join(1.0)
    assert waiting.is_alive() and "waiting for the domainft run that holds it (the first student)" in said[0]
    first.communicate("\n", timeout=30)
    waiting.join(30)
    assert said[-1] == teacher and trained == []  # the first one's teacher, not trained again
    assert "cached run" in said[-2]
