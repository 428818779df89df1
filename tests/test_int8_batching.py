"""int8 and batching: the bundle's int8 model gives a text the same logits whatever it is batched
with (static int8: calibrated activation ranges); dynamic int8 stays available, fused, and
domainft.serving runs it one text at a time; every preset quantizes statically; an interrupted
export leaves no temporary file behind."""
import json
import os
import signal
import tempfile

import numpy as np
import onnx
import pytest
from test_serving_threads import LONG, NORMAL, trained_bundle

from domainft.export import QUANTIZATION_PRESETS, export_run, quantize
from domainft.parity import Batches
from domainft.recipe import ExportSpec
from domainft.serving import FP32_FILE, INT8_FILE, pad, session
from domainft.serving import load as load_bundle

TEXTS = [*NORMAL, "Profit 📈 rose 🚀 .", "", LONG]


@pytest.fixture(scope="module")
def bundles(tiny_base, tmp_path_factory):
    return {task: trained_bundle(tiny_base, tmp_path_factory, task) for task in ("classification", "ner")}


def token_rows(bundle) -> list[list[int]]:
    """TEXTS with special tokens, truncated to the trained max length."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(json.loads((bundle / "domainft.json").read_text())["max_length"])
    return [e.ids for e in tokenizer.encode_batch(TEXTS)]


def feed(model_session, rows: list[list[int]]) -> dict:
    columns = {"input_ids": pad(rows, 0), "attention_mask": pad([[1] * len(r) for r in rows], 0),
               "token_type_ids": pad([[0] * len(r) for r in rows], 0)}
    return {i.name: columns[i.name] for i in model_session.get_inputs()}


@pytest.mark.parametrize("task", ["classification", "ner"])
def test_int8_logits_do_not_depend_on_batch_companions(bundles, task):
    """The shipped int8 graph itself, run as any server would batch it: each text alone, then
    in padded batches with different companions. Dynamic int8 (the scale of each MatMul's input
    computed over the whole batch, padding included) fails this."""
    model = session(bundles[task] / INT8_FILE, 1)
    rows = token_rows(bundles[task])
    alone = [model.run(["logits"], feed(model, [r]))[0][0] for r in rows]
    companions = {"all": list(range(len(rows))), "reversed": list(range(len(rows)))[::-1],
                  "short ones": [0, 1, 4, 5], "with the long one": [2, 6, 3]}
    for name, picks in companions.items():
        batch = model.run(["logits"], feed(model, [rows[i] for i in picks]))[0]
        for k, i in enumerate(picks):
            got = batch[k] if task == "classification" else batch[k][:len(rows[i])]  # real tokens only
            np.testing.assert_allclose(got, alone[i], atol=1e-5, rtol=0, err_msg=f"{task}, text {i} in {name!r}")


def test_static_int8_manifest_and_card(bundles):
    bundle = bundles["classification"]
    m = json.loads((bundle / "domainft.json").read_text())
    settings = m["parity"]["int8"]["quantization"]
    assert settings["mode"] == "static" and settings["format"] == "QDQ" and settings["per_channel"]
    assert settings["calibration_examples"] == min(m["parity"]["examples"], ExportSpec().calibration_examples)
    assert settings["fused"] is None  # static quantizes the plain graph; ORT fuses it at load
    assert not load_bundle(bundle, "int8").one_row_at_a_time  # batches as they come
    card = (bundle / "README.md").read_text()
    assert "int8 (static, avx2)" in card and f"calibrated (MinMax) on {settings['calibration_examples']}" in card


def test_dynamic_int8_is_fused_and_served_one_text_at_a_time(bundles, tmp_path):
    run_dir = bundles["classification"].parent
    out = export_run(run_dir, ExportSpec(int8_mode="dynamic"), out=tmp_path / "dynamic", echo=lambda *a: None)
    settings = out.manifest["parity"]["int8"]["quantization"]
    assert settings["mode"] == "dynamic" and "calibration_examples" not in settings
    # int8 is quantized from the fused graph (attention, LayerNorm, GELU as ORT kernels)
    assert settings["fused"]["SkipLayerNormalization"] >= 2 and settings["fused"]["Attention"] == 2
    assert "QAttention" in {n.op_type for n in onnx.load(str(out.dir / INT8_FILE)).graph.node}
    assert "int8 is dynamic" in (out.dir / "README.md").read_text()
    predictor = load_bundle(out.dir, "int8")
    assert predictor.one_row_at_a_time
    alone = np.concatenate([predictor.logits([t]) for t in TEXTS])
    np.testing.assert_array_equal(predictor.logits(TEXTS), alone)
    assert predictor.predict(TEXTS, batch_size=32) == [predictor.predict([t])[0] for t in TEXTS]


@pytest.mark.parametrize("preset", list(QUANTIZATION_PRESETS))
def test_every_quantization_preset_quantizes_statically(bundles, tmp_path, preset):
    bundle = bundles["classification"]
    fp32 = session(bundle / FP32_FILE, 1)
    rows = token_rows(bundle)
    calibration = Batches([feed(fp32, [r]) for r in rows])
    settings = quantize(bundle / FP32_FILE, tmp_path / "int8.onnx", preset, calibration=calibration)
    assert settings["mode"] == "static" and settings["calibration_examples"] == len(rows)
    graph = onnx.load(str(tmp_path / "int8.onnx")).graph
    produced_by = {n.output[0]: n for n in graph.node}
    weights = {i.name: i.data_type for i in graph.initializer}
    matmul_weights = {weights[produced_by[n.input[1]].input[0]] for n in graph.node
                      if n.op_type == "MatMul" and n.input[1] in produced_by
                      and produced_by[n.input[1]].op_type == "DequantizeLinear"
                      and produced_by[n.input[1]].input[0] in weights}
    expected = onnx.TensorProto.INT8 if settings["weights"] == "QInt8" else onnx.TensorProto.UINT8
    assert matmul_weights == {expected}
    # MatMuls of two activations (attention scores and context) have no weights to quantize: fp32
    two_activations = [n for n in graph.node if n.op_type == "MatMul"
                       and all(produced_by.get(i) is not None and produced_by[i].op_type != "DequantizeLinear"
                               for i in n.input)]
    assert len(two_activations) == settings["fp32_matmuls"] == 4  # 2 layers x (scores, context)
    int8 = session(tmp_path / "int8.onnx", 1)
    np.testing.assert_allclose(int8.run(["logits"], feed(int8, rows[:1]))[0],
                               fp32.run(["logits"], feed(fp32, rows[:1]))[0], atol=0.1)


@pytest.mark.parametrize("how", ["SIGTERM", "KeyboardInterrupt"])
def test_interrupted_export_leaves_no_temporary_files(bundles, tmp_path, monkeypatch, how):
    """Interrupted while quantizing (the fp32 graph, the scratch directory and ONNX Runtime's
    temporary files all written): nothing is left, neither beside the bundle nor in the temp dir."""
    import domainft.export as export_module

    if how == "SIGTERM" and signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        pytest.skip("the test runner handles SIGTERM itself")
    real_quantize, seen = export_module.quantize, {}

    def interrupted_quantize(src, dst, preset, **options):
        settings = real_quantize(src, dst, preset, **options)
        seen["tempdir"] = tempfile.gettempdir()
        staging = dst.parent.parent  # the graphs are under onnx/ in it
        seen["staging"] = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*"))
        if how == "SIGTERM":
            os.kill(os.getpid(), signal.SIGTERM)
        raise KeyboardInterrupt
        return settings

    monkeypatch.setattr(export_module, "quantize", interrupted_quantize)
    out = tmp_path / "bundle"
    with pytest.raises(SystemExit if how == "SIGTERM" else KeyboardInterrupt) as caught:
        export_run(bundles["classification"].parent, ExportSpec(), out=out, echo=lambda *a: None)
    if how == "SIGTERM":
        assert caught.value.code == 128 + signal.SIGTERM  # what the default action's exit status says
    assert {FP32_FILE, INT8_FILE, ".scratch"} <= set(seen["staging"])
    assert seen["tempdir"].startswith(str(tmp_path / ".bundle.tmp"))  # ONNX Runtime's temp files went there
    assert os.listdir(tmp_path) == []  # no bundle, no staging directory
    assert tempfile.gettempdir() != seen["tempdir"]  # restored
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
