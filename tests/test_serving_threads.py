"""The torch-free predictor shared between threads: no errors, the single-threaded outputs, and a
text's result the same whatever batch size and whatever other texts share its batch; for a
classification and an NER bundle, fp32 and int8."""
import threading
from pathlib import Path

import numpy as np
import pytest

from domainft.serving import load as load_bundle

import contract
from compare import TOL, assert_same

NORMAL = ["Kallio Group said its net sales rose to EUR 80.1 mn from EUR 60.2 mn .",
          "Tundra Mining will cut 300 jobs as demand weakens .",
          "Patients with cystic fibrosis and breast cancer were enrolled ;",
          "No history of ataxia-telangiectasia in the family."]
LONG = " ".join(["Operating profit of the breast cancer unit fell sharply in the second quarter ;"] * 130)[:10_000]
MIXED = ["", NORMAL[0], LONG, "Profit 📈 rose 🚀 at Nokia 😀 .", "Shares\x00 fell\x07 \x1b[31m sharply\r\n\t.",
         NORMAL[1], "   ", NORMAL[2], "\u200b\ufeff", NORMAL[3]]


def trained_bundle(tiny_base, tmp_path_factory, task: str) -> Path:
    """The bundle (`export: {enabled: true}`) of a tiny run, trained once per test session: the
    test files that need one share it."""
    out = tmp_path_factory.getbasetemp() / f"serving_{task}" / "run"
    bundle = out / "onnx"
    if not (bundle / "domainft.json").is_file():
        contract.quiet_run(contract.recipe(task, "full", tiny_base, out, export={"enabled": True}))
    return bundle


@pytest.fixture(scope="module")
def bundles(tiny_base, tmp_path_factory):
    return {task: trained_bundle(tiny_base, tmp_path_factory, task) for task in ("classification", "ner")}


@pytest.fixture(scope="module", params=[(t, p) for t in ("classification", "ner") for p in ("fp32", "int8")],
                ids=lambda tp: "-".join(tp))
def predictor(request, bundles):
    task, precision = request.param
    p = load_bundle(bundles[task], precision, threads=1)
    assert p.precision == precision and p.task == task
    return p


def test_a_texts_result_does_not_depend_on_its_batch(predictor):
    alone = [predictor.predict([t])[0] for t in MIXED]
    for batch_size in (1, 3, 32):
        assert_same(predictor.predict(MIXED, batch_size=batch_size), alone, where=f"batch_size {batch_size}")
    # Other companions: reversed, and among copies of the long text (which pads every batch to the max).
    assert_same(predictor.predict(MIXED[::-1], batch_size=3), alone[::-1], where="reversed")
    crowded = [LONG, *MIXED, LONG, LONG]
    assert_same(predictor.predict(crowded, batch_size=32)[1:-2], alone, where="with long companions")
    if predictor.task == "classification":  # the logits themselves, one padded batch against each text alone
        rows = np.concatenate([predictor.logits([t]) for t in MIXED])
        np.testing.assert_allclose(predictor.logits(MIXED), rows, atol=TOL, rtol=0)
    else:  # token logits of word rows, padded together against each row alone (real tokens only)
        rows = [predictor.tokenizer.encode(t).ids[:40] for t in MIXED]
        batch = predictor.run(rows)
        for k, r in enumerate(rows):
            np.testing.assert_allclose(batch[k, :len(r)], predictor.run([r])[0], atol=TOL, rtol=0)
        assert alone[0] == {"entities": [], "words": [], "tags": []}
        assert len(alone[2]["tags"]) == len(LONG.split())  # every word of the long text tagged


def test_predictor_shared_by_8_threads(predictor):
    calls = [(MIXED[k:] + MIXED[:k], (1, 3, 32)[k % 3]) for k in range(8)]
    expected = [predictor.predict(texts, batch_size=bs) for texts, bs in calls]  # single-threaded
    results, errors = {}, []
    start = threading.Barrier(8)

    def worker(i):
        try:
            start.wait()
            for repeat in range(3):
                texts, bs = calls[(i + repeat) % 8]
                results[i, repeat] = predictor.predict(texts, batch_size=bs)
        except Exception as e:  # every failure is reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert len(results) == 24
    for (i, repeat), out in results.items():
        assert out == expected[(i + repeat) % 8]  # exactly what one thread alone gets
