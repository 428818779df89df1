"""ONNX export: parity with PyTorch for every task and tuning method (and a lexicon-extended
vocabulary), the int8 gate, atomic failure, the torch-free predictor, the CLI, Optimum loading."""
import gzip
import json
import subprocess
import sys
import textwrap
from typing import get_args

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from domainft import load, run
from domainft.cli import app
from domainft.errors import DomainftError, RecipeError
from domainft.export import QUANTIZATION_PRESETS, export_run, quantize
from domainft.recipe import ExportSpec, Recipe
from domainft.serving import FP32_FILE, INT8_FILE, session
from domainft.serving import load as load_bundle

import contract
from cards import card, run_snippet, snippets
from conftest import ROOT, SAMPLE

runner = CliRunner()
METHODS = contract.methods_for("classification")  # every registered method an encoder task takes
TEXTS = ["Kallio Group said its net sales rose to EUR 80.1 mn from EUR 60.2 mn .",
         "Tundra Mining will cut 300 jobs as demand weakens .",
         "The annual general meeting will be held in Espoo in April ."]
# Long enough for several windows at max_length 32: words come back from their best window.
NER_TEXTS = [" ".join(["Patients with cystic fibrosis and breast cancer were enrolled ;"] * 6),
             "No history of ataxia-telangiectasia in the family.", ""]


def recipe_for(tiny_base, out, task="classification", method="full", **sections):
    if task == "ner":
        raw = {"task": "ner", "data": {"format": "conll", "path": str(ROOT / "data" / "medical_ner"),
                                       "max_length": 32, "stride": 8},
               "train": {"epochs": 1, "batch_size": 16, "lr": 1e-3, "seed": 3}}
    else:
        raw = {"data": {"format": "phrasebank", "path": str(SAMPLE), "max_length": 64},
               "train": {"epochs": 1, "batch_size": 16, "lr": 5e-4, "seed": 7}}
    raw.update(name="export_test", base=str(tiny_base), tuning={"method": method},
               output={"dir": str(out)}, **sections)
    return Recipe.from_dict(raw)


def quiet_run(recipe):
    return run(recipe, progress=False, echo=lambda *a: None)


@pytest.fixture(scope="module")
def exported(tiny_base, tmp_path_factory):
    """(task, method) -> RunResult of a run with `export: {enabled: true}`, trained once per module."""
    cache = {}

    def get(task, method):
        if (task, method) not in cache:
            out = tmp_path_factory.mktemp(f"{task}_{method}") / "run"
            cache[task, method] = quiet_run(recipe_for(tiny_base, out, task, method, export={"enabled": True}))
        return cache[task, method]

    return get


def manifest_of(bundle):
    return json.loads((bundle / "domainft.json").read_text())


# --- parity -----------------------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("task", ["classification", "ner"])
def test_export_matches_pytorch_for_every_task_and_method(exported, task, method):
    result = exported(task, method)
    bundle = result.bundle_dir
    assert bundle == result.run_dir / "onnx"
    assert {FP32_FILE, INT8_FILE, "tokenizer.json", "tokenizer_config.json", "config.json",
            "domainft.json", "README.md"} <= {p.relative_to(bundle).as_posix() for p in bundle.rglob("*")}
    m = manifest_of(bundle)
    assert m["task"] == task and m["tuning"]["method"] == method and m["labels"] == result.metrics["data"]["labels"]
    assert m["inputs"] == ["input_ids", "attention_mask", "token_type_ids"] and m["outputs"] == ["logits"]
    assert m["parity"]["max_abs_diff"] <= 1e-4 and m["parity"]["examples"] > 0
    assert m["parity"]["fp32"] == m["parity"]["pytorch"]
    assert m["parity"]["int8"]["written"] and m["parity"]["int8"]["drop_points"] <= 1.0
    assert m["files"]["int8"]["mb"] < m["files"]["fp32"]["mb"] / 2
    # int8 is static: every projection multiplies by per-channel int8 weights (QDQ), with activation
    # ranges calibrated on the validation set, nothing quantized per batch (fused-graph dynamic int8,
    # export.int8_mode: dynamic, is checked in test_int8_batching.py) ...
    settings = m["parity"]["int8"]["quantization"]
    assert settings["mode"] == "static" and settings["calibration_examples"] == min(m["parity"]["examples"], 512)
    graph = onnx.load(str(bundle / INT8_FILE)).graph
    int8_weights = {i.name for i in graph.initializer if i.data_type == onnx.TensorProto.INT8}
    dequantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in int8_weights}
    assert sum(n.op_type == "MatMul" and n.input[1] in dequantized for n in graph.node) >= 12  # 2 layers x 6
    assert not {n.op_type for n in graph.node} & {"DynamicQuantizeLinear", "MatMulInteger", "QAttention"}
    # ... while the fp32 graph stays plain ONNX for any runtime.
    assert {n.domain for n in onnx.load(str(bundle / FP32_FILE)).graph.node} <= {"", "ai.onnx"}
    assert {"onnxruntime", "torch", "transformers"} <= set(m["versions"])
    assert result.metrics["export"]["parity"] == m["parity"]  # and in metrics.json
    config = json.loads((bundle / "config.json").read_text())
    assert config["id2label"] == {str(i): label for i, label in enumerate(m["labels"])}

    weights = {i.name for i in onnx.load(str(bundle / FP32_FILE)).graph.initializer}
    assert not any("lora" in w for w in weights)  # LoRA merged into the plain weights
    assert any(".adapters." in w for w in weights) == (method == "adapter")  # adapters stay in the graph

    # The torch-free predictor on the fp32 graph gives what the PyTorch model gives.
    torch_model, onnx_model = load(result.run_dir), load_bundle(bundle, "fp32")
    if task == "ner":
        ours, theirs = onnx_model.predict(NER_TEXTS), torch_model.predict(NER_TEXTS[:2]) + [None]
        for a, b in zip(ours[:2], theirs[:2]):
            assert a["tags"] == b["tags"] and len(a["entities"]) == len(b["entities"])
        assert ours[2] == {"entities": [], "words": [], "tags": []}
    else:
        np.testing.assert_allclose(onnx_model.logits(TEXTS), torch_model.logits(TEXTS), atol=1e-4)
        assert [p["label"] for p in onnx_model.predict(TEXTS)] == [p["label"] for p in torch_model.predict(TEXTS)]


def test_lexicon_extended_vocabulary_exports_intact(tiny_base, tmp_path):
    lexicon = tmp_path / "lex.txt"
    lexicon.write_text("Pharma\nSaaristo\nPohjola | Pohjolan\nKallio\n", encoding="utf-8")
    recipe = recipe_for(tiny_base, tmp_path / "run", method="lora", lexicon=[str(lexicon)],
                        export={"enabled": True})
    result = quiet_run(recipe)
    bundle = result.bundle_dir
    added = {t["content"] for t in json.loads((bundle / "tokenizer.json").read_text())["added_tokens"]}
    assert {"pohjola", "pharma", "saaristo", "kallio", "pohjolan"} <= added
    predictor = load_bundle(bundle, "fp32")
    ids = predictor.tokenizer.encode("Pohjola Pharma", add_special_tokens=False).ids
    assert ids == result.model.tokenizer.convert_tokens_to_ids(["pohjola", "pharma"])
    texts = ["Pohjola Pharma said its operating profit rose .", "Saaristo will cut jobs at Kallio ."]
    np.testing.assert_allclose(predictor.logits(texts), load(result.run_dir).logits(texts), atol=1e-4)
    m = manifest_of(bundle)
    assert m["lexicon"]["terms_added"] == 5 and m["lexicon"]["vocab_size"] == len(result.model.tokenizer)
    # The model card's peft code grows the base's embedding and puts the added rows back, as domainft does.
    plain = snippets(result.model_dir / "README.md")[-1]
    assert "resize_token_embeddings" in plain
    ns = run_snippet(plain.replace('["Your text here."]', repr(texts)), result.model_dir)
    np.testing.assert_allclose(ns["logits"], load(result.run_dir).logits(texts), atol=1e-5)


def matmul_weight_types(path) -> set[int]:
    """Element types of the weights that an int8 graph's integer MatMul / QAttention nodes multiply by
    (its embedding tables are uint8 under every preset)."""
    graph = onnx.load(str(path)).graph
    weights = {n.input[1] for n in graph.node if n.op_type in ("MatMulInteger", "QAttention")}
    return {i.data_type for i in graph.initializer if i.name in weights}


@pytest.mark.parametrize("preset", list(QUANTIZATION_PRESETS))
def test_every_quantization_preset_quantizes_and_keeps_predictions_close(exported, tmp_path, preset):
    # Each recipe value has a preset (the Literal and the table cannot drift apart) ...
    assert set(get_args(ExportSpec.model_fields["quantization"].annotation)) == set(QUANTIZATION_PRESETS)
    bundle = exported("classification", "full").bundle_dir
    settings = quantize(bundle / FP32_FILE, tmp_path / "int8.onnx", preset)
    # ... the default is ONNX Runtime's AVX2 format: int8 weights with 7 bits (no U8S8 saturation).
    if preset == "avx2":
        assert settings["weights"] == "QInt8" and settings["reduce_range"]
    expected = onnx.TensorProto.INT8 if settings["weights"] == "QInt8" else onnx.TensorProto.UINT8
    assert matmul_weight_types(tmp_path / "int8.onnx") == {expected}
    fp32, int8 = (session(p, 1) for p in (bundle / FP32_FILE, tmp_path / "int8.onnx"))
    feed = {"input_ids": np.array([[2, 40, 41, 42, 3]]), "attention_mask": np.ones((1, 5), dtype=np.int64),
            "token_type_ids": np.zeros((1, 5), dtype=np.int64)}
    names = [i.name for i in fp32.get_inputs()]
    np.testing.assert_allclose(int8.run(["logits"], {k: feed[k] for k in names})[0],
                               fp32.run(["logits"], {k: feed[k] for k in names})[0], atol=0.1)


# --- gates and atomic writes ------------------------------------------------------------------

def test_int8_that_loses_accuracy_is_not_written(exported, monkeypatch, tmp_path):
    """A quantizer that wrecks the head (always the rarest validation label) must fail the gate."""
    import domainft.export as export_module

    result = exported("classification", "full")
    labels = result.metrics["data"]["labels"]
    counts = result.metrics["validation"]["per_class"]
    rarest = labels.index(min(labels, key=lambda label: counts[label]["support"]))
    real_quantize = export_module.quantize

    def wrecking_quantize(src, dst, preset, **options):
        settings = real_quantize(src, dst, preset, **options)
        model = onnx.load(str(dst))
        bias = next(i for i in model.graph.initializer if i.name.endswith("classifier.bias"))
        forced = np.zeros(len(labels), dtype=np.float32)
        forced[rarest] = 1000.0
        bias.CopyFrom(onnx.numpy_helper.from_array(forced, bias.name))
        onnx.save(model, str(dst))
        return settings

    monkeypatch.setattr(export_module, "quantize", wrecking_quantize)
    lines = []
    out = export_run(result.run_dir, ExportSpec(max_int8_drop=1.0), out=tmp_path / "bundle", echo=lines.append)
    assert not out.int8 and not (out.dir / INT8_FILE).exists()
    info = manifest_of(out.dir)["parity"]["int8"]
    assert not info["written"] and info["drop_points"] > 1.0
    assert "export.max_int8_drop" in info["reason"]
    assert any(line.startswith("int8 not written: int8 lost") for line in lines)
    assert "not written" in (out.dir / "README.md").read_text()
    assert load_bundle(out.dir).precision == "fp32"  # auto falls back to what the bundle has
    with pytest.raises(DomainftError, match="no onnx/model_quantized.onnx .*int8 lost"):
        load_bundle(out.dir, "int8")


def test_parity_failure_writes_nothing_and_keeps_the_previous_bundle(exported, monkeypatch, tiny_base, tmp_path):
    import domainft.export as export_module

    result = exported("classification", "freeze")
    bundle = result.bundle_dir
    before = (bundle / "domainft.json").read_text()
    real_to_onnx = export_module.to_onnx

    def drifting_to_onnx(model, tokenizer, names, path, opset, per_token):
        real_to_onnx(model, tokenizer, names, path, opset, per_token)
        graph = onnx.load(str(path))
        bias = next(i for i in graph.graph.initializer if i.name.endswith("classifier.bias"))
        bias.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(bias) + 0.01, bias.name))
        onnx.save(graph, str(path))

    monkeypatch.setattr(export_module, "to_onnx", drifting_to_onnx)
    with pytest.raises(DomainftError, match=r"export refused: .*differ from PyTorch's by up to 0\.01"):
        export_run(result.run_dir, echo=lambda *a: None)
    assert (bundle / "domainft.json").read_text() == before  # the old bundle is untouched
    assert not (bundle.parent / ".onnx.tmp").exists()
    with pytest.raises(DomainftError, match="export refused"):
        export_run(result.run_dir, out=tmp_path / "new", echo=lambda *a: None)
    assert not (tmp_path / "new").exists() and not (tmp_path / ".new.tmp").exists()

    # From `run`: the trained model is kept, no bundle, and the message says how to retry.
    recipe = recipe_for(tiny_base, tmp_path / "run", export={"enabled": True})
    with pytest.raises(DomainftError, match=r"(?s)export refused.*domainft export .*retries"):
        quiet_run(recipe)
    assert (tmp_path / "run" / "model" / "domainft.json").is_file()
    assert not (tmp_path / "run" / "onnx").exists()


def test_export_recipe_section_is_validated(tiny_base, tmp_path):
    assert recipe_for(tiny_base, tmp_path).export == ExportSpec()  # off by default
    with pytest.raises(RecipeError, match=r"export.quantization"):
        recipe_for(tiny_base, tmp_path, export={"quantization": "avx3"})
    with pytest.raises(RecipeError, match=r"export.max_int8_drop"):
        recipe_for(tiny_base, tmp_path, export={"max_int8_drop": -1})
    with pytest.raises(RecipeError, match=r"export.int9: unknown field; did you mean 'int8'"):
        recipe_for(tiny_base, tmp_path, export={"int9": True})


# --- CLI --------------------------------------------------------------------------------------

def test_cli_exports_a_run_and_predicts_from_the_bundle(tiny_base, tmp_path):
    result = quiet_run(recipe_for(tiny_base, tmp_path / "run"))
    assert result.bundle_dir is None and not (tmp_path / "run" / "onnx").exists()
    bundle = tmp_path / "bundle"
    cli = runner.invoke(app, ["export", str(result.run_dir), "--out", str(bundle), "--no-int8"])
    assert cli.exit_code == 0, cli.output
    assert "parity: fp32 ONNX vs PyTorch" in cli.output
    assert (bundle / FP32_FILE).is_file() and not (bundle / INT8_FILE).exists()

    cli = runner.invoke(app, ["predict", str(bundle), TEXTS[0], TEXTS[1]])
    assert cli.exit_code == 0, cli.output
    lines = [json.loads(line) for line in cli.output.splitlines()]
    expected = load(result.run_dir).predict(TEXTS[:2])
    assert [x["label"] for x in lines] == [x["label"] for x in expected] and lines[0]["text"] == TEXTS[0]

    inputs = tmp_path / "in.jsonl"
    inputs.write_text(json.dumps({"text": TEXTS[0]}) + "\n\n" + json.dumps(TEXTS[2]) + "\n", encoding="utf-8")
    cli = runner.invoke(app, ["predict", str(bundle), "--input", str(inputs)])
    assert cli.exit_code == 0, cli.output
    assert [json.loads(line)["text"] for line in cli.output.splitlines()] == [TEXTS[0], TEXTS[2]]

    # Plain text, one text a line (blank lines skipped), gzip or not: the same predictions as arguments.
    plain = tmp_path / "in.txt"
    plain.write_text(f"{TEXTS[0]}\n\n  {TEXTS[2]}\r\n", encoding="utf-8")
    (tmp_path / "in.txt.gz").write_bytes(gzip.compress(plain.read_bytes()))
    by_args = runner.invoke(app, ["predict", str(bundle), TEXTS[0], TEXTS[2]]).output
    for given in (plain, tmp_path / "in.txt.gz"):
        cli = runner.invoke(app, ["predict", str(bundle), "--input", str(given)])
        assert cli.exit_code == 0 and cli.output == by_args, cli.output
    cli = runner.invoke(app, ["predict", str(bundle), str(plain)])  # a file named as a text: said so
    assert cli.exit_code == 0 and f"to predict the texts in that file, pass --input {plain}" in cli.output

    cli = runner.invoke(app, ["export", str(result.run_dir), "--out", str(tmp_path / "plain"), "--no-fuse"])
    assert cli.exit_code == 0, cli.output
    assert manifest_of(tmp_path / "plain")["parity"]["int8"]["quantization"]["fused"] is None
    assert "Attention" not in {n.op_type for n in onnx.load(str(tmp_path / "plain" / INT8_FILE)).graph.node}

    cli = runner.invoke(app, ["export", str(result.run_dir), "--quantization", "avx3"])
    assert cli.exit_code == 2 and "export.quantization" in cli.output
    cli = runner.invoke(app, ["export", str(tmp_path)])
    assert cli.exit_code == 2 and "not a domainft run" in cli.output
    cli = runner.invoke(app, ["predict", str(bundle)])
    assert cli.exit_code == 2 and "--input" in cli.output
    with pytest.raises(DomainftError, match="exported ONNX bundle"):
        load(bundle)


# --- torch-free serving and Optimum -----------------------------------------------------------

BLOCKED = textwrap.dedent("""
    import json, sys

    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "transformers"):
                raise ImportError(f"{name} is blocked in this test")

    sys.meta_path.insert(0, NoTorch())
    from domainft.serving import load

    clf, ner = load(sys.argv[1]), load(sys.argv[2], "fp32")
    print(json.dumps({"clf": clf.predict(json.loads(sys.argv[3]), batch_size=2), "precision": clf.precision,
                      "ner": ner.predict(json.loads(sys.argv[4]))}))
    loaded = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "transformers", "optimum", "peft"})
    assert not loaded, loaded
    sys.argv = ["domainft", "predict", sys.argv[1], "Shares fell ."]
    from domainft.cli import app
    app()
""")


def test_prediction_without_torch_in_a_fresh_interpreter(exported, tmp_path):
    clf, ner = exported("classification", "full"), exported("ner", "lora")
    script = tmp_path / "serve.py"
    script.write_text(BLOCKED, encoding="utf-8")
    proc = subprocess.run([sys.executable, str(script), str(clf.bundle_dir), str(ner.bundle_dir),
                           json.dumps(TEXTS), json.dumps(NER_TEXTS[:2])],
                          capture_output=True, text=True, cwd=str(ROOT), timeout=300)
    assert proc.returncode == 0, proc.stderr
    first, cli_line = proc.stdout.splitlines()[:2]
    out = json.loads(first)
    assert out["precision"] == "int8" and [p["label"] for p in out["clf"]] == \
        [p["label"] for p in load(clf.run_dir).predict(TEXTS)]
    expected = load(ner.run_dir).predict(NER_TEXTS[:2])
    assert [p["tags"] for p in out["ner"]] == [p["tags"] for p in expected]
    assert json.loads(cli_line)["text"] == "Shares fell ."


def test_bundle_loads_as_is_with_optimum(exported):
    from optimum.onnxruntime import ORTModelForSequenceClassification, ORTModelForTokenClassification
    from transformers import AutoTokenizer

    for task, cls in (("classification", ORTModelForSequenceClassification), ("ner", ORTModelForTokenClassification)):
        result = exported(task, "adapter" if task == "ner" else "lora")
        tokenizer = AutoTokenizer.from_pretrained(result.bundle_dir)
        batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
        reference = load(result.run_dir).model(**batch).logits.detach().numpy()
        model = cls.from_pretrained(result.bundle_dir)
        np.testing.assert_allclose(model(**batch).logits.numpy(), reference, atol=1e-4)
        assert model.config.id2label == dict(enumerate(result.metrics["data"]["labels"]))
        int8 = cls.from_pretrained(result.bundle_dir, file_name="model_quantized.onnx")
        assert int8(**batch).logits.shape == reference.shape


def test_bundle_cards_carry_hub_metadata_and_code_that_runs(exported):
    classification, ner = exported("classification", "lora"), exported("ner", "adapter")
    expected = load_bundle(classification.bundle_dir, "fp32").predict(TEXTS)
    data, _ = card(classification.bundle_dir / "README.md")
    assert data["tags"] == ["domainft", "classification", "lora", "onnx"] and "library_name" not in data
    onnxruntime, optimum = snippets(classification.bundle_dir / "README.md")[1:]
    for code in (optimum, onnxruntime):
        ns = run_snippet(code.replace('["Your text here."]', repr(TEXTS)), classification.bundle_dir)
        assert ns["predicted"] == [p["label"] for p in expected]
        np.testing.assert_allclose(ns["probs"], [list(p["scores"].values()) for p in expected], atol=1e-5)
    data, _ = card(ner.bundle_dir / "README.md")
    assert data["pipeline_tag"] == "token-classification"
    assert data["model-index"][0]["results"][0]["task"]["type"] == "token-classification"
    onnxruntime, optimum = snippets(ner.bundle_dir / "README.md")[1:]  # the windows written out; Optimum's pipeline
    assert isinstance(run_snippet(optimum, ner.bundle_dir)["entities"], list)
    found = run_snippet(onnxruntime.replace('["Your text here."]', repr(NER_TEXTS)), ner.bundle_dir)["results"]
    expected = load_bundle(ner.bundle_dir, "fp32").predict(NER_TEXTS)  # exactly: tests/test_clients.py
    assert [r["tags"] for r in found] == [p["tags"] for p in expected]
    # The saved model's card beside it: adapters, loaded without domainft.
    model_card = ner.model_dir / "README.md"
    assert card(model_card)[0]["library_name"] == "adapter-transformers"
    assert isinstance(run_snippet(snippets(model_card)[-1], ner.model_dir)["entities"], list)
