"""`domainft export --format triton`: the model repository checked structurally (config.pbtxt read
with Triton's own ModelConfig protobuf, against the ONNX graph), and its README's client run against
a stand-in for Triton's KServe v2 HTTP endpoint that feeds the tensors to ONNX Runtime: the client
reproduces domainft.serving's predictions. No Triton server runs here."""
import filecmp
import importlib.util
import json
import os
import shutil
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import onnx
import pytest
from test_export import recipe_for
from typer.testing import CliRunner

from domainft import run
from domainft.cli import app
from domainft.errors import DomainftError
from domainft.recipe import Recipe
from domainft.serving import FP32_FILE, INT8_FILE, session
from domainft.serving import load as load_bundle
from domainft.triton import MARKER, TritonSpec, export_triton

from cards import run_snippet, snippets

runner = CliRunner()
TEXTS = ["Kallio Group said its net sales rose to EUR 80.1 mn from EUR 60.2 mn .",
         "Tundra Mining will cut 300 jobs as demand weakens .",
         "The annual general meeting will be held in Espoo in April .",
         "Shares fell .", "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn ."]
NER_TEXTS = [" ".join(["Patients with cystic fibrosis and breast cancer were enrolled ;"] * 6),
             "No history of ataxia-telangiectasia in the family.", ""]
ONNX_TYPES = {onnx.TensorProto.INT64: "TYPE_INT64", onnx.TensorProto.FLOAT: "TYPE_FP32"}


def model_config_pb2():
    """Triton's ModelConfig message, from the model_config_pb2 module the plain `tritonclient` wheel
    ships; loaded from its file, because tritonclient.grpc's __init__ needs grpcio (not a dependency)."""
    spec = importlib.util.find_spec("tritonclient")
    assert spec is not None, "tritonclient is a dev dependency: scripts/setup.sh --dev"
    path = Path(spec.submodule_search_locations[0]) / "grpc" / "model_config_pb2.py"
    module_spec = importlib.util.spec_from_file_location("triton_model_config_pb2", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def read_config(path: Path):
    from google.protobuf import text_format

    pb2 = model_config_pb2()
    return text_format.Parse(path.read_text(encoding="utf-8"), pb2.ModelConfig()), pb2


def recipe(tiny_base, out: Path, task: str, **sections) -> Recipe:
    return recipe_for(tiny_base, out, task, **sections)


@pytest.fixture(scope="module")
def ner_bundle(tiny_base, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ner") / "medical_ner"
    result = run(recipe(tiny_base, out, "ner", export={"enabled": True, "calibration_examples": 64}),
                 progress=False, echo=lambda *a: None)
    return result.bundle_dir


@contextmanager
def stand_in_triton(repository: Path, name: str):
    """Triton's KServe v2 `POST /v2/models/NAME/infer` for one model, checked against its
    config.pbtxt (names, datatypes, ranks, max_batch_size) and answered by ONNX Runtime on
    NAME/1/model.onnx, as Triton's onnxruntime backend would. Yields its URL and the requests."""
    config, pb2 = read_config(repository / name / "config.pbtxt")
    inputs = {i.name: i for i in config.input}
    model = session(repository / name / "1" / "model.onnx", 1)
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            assert self.path == f"/v2/models/{name}/infer", self.path
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            feeds = {}
            for tensor in body["inputs"]:
                declared = inputs[tensor["name"]]
                assert "TYPE_" + tensor["datatype"] == pb2.DataType.Name(declared.data_type)
                assert len(tensor["shape"]) == 1 + len(declared.dims) and tensor["shape"][0] <= config.max_batch_size
                feeds[tensor["name"]] = np.array(tensor["data"], dtype=np.int64).reshape(tensor["shape"])
            assert set(feeds) == set(inputs)
            logits = model.run(["logits"], feeds)[0]
            reply = json.dumps({"model_name": name, "model_version": "1", "outputs": [
                {"name": "logits", "datatype": "FP32", "shape": list(logits.shape),
                 "data": logits.ravel().tolist()}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def run_client(repository: Path, name: str, monkeypatch):
    """The README's client, executed from the repository against the stand-in server."""
    code = snippets(repository / "README.md")
    assert len(code) == 1
    with stand_in_triton(repository, name) as (url, seen):
        monkeypatch.setenv("TRITON_URL", url)
        client = run_snippet(code[0], repository)
        yield client, seen


def check_structure(repository: Path, name: str, bundle: Path, source_file: str) -> object:
    """config.pbtxt against the ONNX graph; the files beside it; the marker listing every file."""
    config, pb2 = read_config(repository / name / "config.pbtxt")
    model = repository / name / "1" / "model.onnx"
    assert filecmp.cmp(model, bundle / source_file, shallow=False)
    graph = onnx.load(str(model)).graph
    manifest = json.loads((bundle / "domainft.json").read_text())
    assert config.name == name and config.platform == "onnxruntime_onnx"
    assert [i.name for i in config.input] == [i.name for i in graph.input] == manifest["inputs"]
    for declared, actual in [*zip(config.input, graph.input), *zip(config.output, graph.output)]:
        shape = [d.dim_value or -1 for d in actual.type.tensor_type.shape.dim]
        assert declared.name == actual.name and shape[0] == -1  # the batch axis, which Triton adds
        assert list(declared.dims) == shape[1:]
        assert pb2.DataType.Name(declared.data_type) == ONNX_TYPES[actual.type.tensor_type.elem_type]
    assert all(pb2.DataType.Name(i.data_type) == "TYPE_INT64" and list(i.dims) == [-1] for i in config.input)
    assert [o.name for o in config.output] == ["logits"]
    assert [g.kind for g in config.instance_group] == [pb2.ModelInstanceGroup.KIND_CPU]
    assert sorted(p.name for p in (repository / name).iterdir() if p.is_dir()) == ["1"]  # one version
    assert (repository / name / "labels.txt").read_text().splitlines() == manifest["labels"]
    beside = {p.name for p in (repository / name / "1").iterdir()}
    assert {"model.onnx", "tokenizer.json", "tokenizer_config.json", "domainft.json", "config.json"} <= beside
    assert not {"README.md", Path(INT8_FILE).name} & beside
    marker = json.loads((repository / MARKER).read_text())
    assert marker["files"] == sorted(p.relative_to(repository).as_posix() for p in repository.rglob("*")
                                     if p.is_file())
    return config


@pytest.fixture(scope="module")
def fpb_run(tiny_base, tmp_path_factory):
    """A classification run without a bundle."""
    out = tmp_path_factory.mktemp("fpb") / "fpb"
    return run(recipe(tiny_base, out, "classification", export={"calibration_examples": 64}), progress=False,
               echo=lambda *a: None)


def test_run_without_bundle_becomes_a_repository_whose_client_predicts_as_serving(fpb_run, monkeypatch):
    result = fpb_run
    assert result.bundle_dir is None
    lines = []
    out = export_triton(result.run_dir, TritonSpec(max_batch_size=4, preferred_batch_sizes=[4, 2],
                                                   max_queue_delay_us=500, instances=2, threads=1),
                        echo=lines.append)
    bundle = result.run_dir / "onnx"  # exported first, then converted
    assert out.dir == result.run_dir / "triton" and out.name == "fpb" and out.precision == "int8"
    assert any(line.startswith("parity: fp32 ONNX vs PyTorch") for line in lines)
    config = check_structure(out.dir, "fpb", bundle, INT8_FILE)  # static int8 passed the gate
    assert config.max_batch_size == 4 and list(config.output[0].dims) == [3]
    assert config.output[0].label_filename == "labels.txt"
    assert list(config.dynamic_batching.preferred_batch_size) == [2, 4]
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    assert config.instance_group[0].count == 2
    assert config.parameters["intra_op_thread_count"].string_value == "1"

    expected = load_bundle(bundle).predict(TEXTS)
    with run_client(out.dir, "fpb", monkeypatch) as (client, seen):
        for pad_to in (None, 64):  # padded per batch, or to max_length for the dynamic batcher
            client["PAD_TO"] = pad_to
            got = client["predict"](TEXTS)
            assert [g["label"] for g in got] == [e["label"] for e in expected]
            for g, e in zip(got, expected):
                np.testing.assert_allclose(list(g["scores"].values()), list(e["scores"].values()), atol=1e-4)
                assert list(g["scores"]) == list(e["scores"])
        assert max(len(s["inputs"][0]["data"]) for s in seen) == 4 * 64  # 5 texts: requests of 4 and 1
        assert {t["datatype"] for s in seen for t in s["inputs"]} == {"INT64"}


def test_ner_bundle_through_the_cli_fp32_and_replaced_on_export_again(ner_bundle, tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    command = ["export", str(ner_bundle), "--format", "triton", "--out", str(repo), "--name", "disease",
               "--no-int8", "--max-batch-size", "8"]
    cli = runner.invoke(app, command)
    assert cli.exit_code == 0, cli.output
    config = check_structure(repo, "disease", ner_bundle, FP32_FILE)
    labels = json.loads((ner_bundle / "domainft.json").read_text())["labels"]
    assert list(config.output[0].dims) == [-1, len(labels)] and not config.output[0].label_filename
    assert config.max_batch_size == 8 and list(config.dynamic_batching.preferred_batch_size) == [8]

    expected = load_bundle(ner_bundle, "fp32").predict(NER_TEXTS)
    with run_client(repo, "disease", monkeypatch) as (client, _):
        got = client["predict"](NER_TEXTS)
        assert [g["tags"] for g in got] == [e["tags"] for e in expected]
        assert [[(x["type"], x["start"], x["end"]) for x in g["entities"]] for g in got] == \
            [[(x["type"], x["start"], x["end"]) for x in e["entities"]] for e in expected]

    cli = runner.invoke(app, command[:-2] + ["--max-batch-size", "16"])  # an earlier repository: replaced
    assert cli.exit_code == 0, cli.output
    assert read_config(repo / "disease" / "config.pbtxt")[0].max_batch_size == 16


def test_refuses_targets_it_did_not_write_and_bad_options(ner_bundle, tmp_path):
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    cli = runner.invoke(app, ["export", str(ner_bundle), "--format", "triton", "--out", str(kept)])
    assert cli.exit_code == 2 and "holds files domainft did not write" in cli.output and "--out" in cli.output
    assert [p.name for p in kept.iterdir()] == ["notes.txt"] and not (tmp_path / ".kept.tmp").exists()

    repo = export_triton(ner_bundle, out=tmp_path / "repo", echo=lambda *a: None).dir
    (repo / "extra.txt").write_text("added by hand")  # a repository someone added to is not ours alone
    with pytest.raises(DomainftError, match=r"extra\.txt"):
        export_triton(ner_bundle, out=repo, echo=lambda *a: None)
    assert (repo / "extra.txt").is_file() and (repo / MARKER).is_file()

    for out, match in [(ner_bundle, "must not replace"), (ner_bundle.parent, "must not replace"),
                       (repo / "extra.txt", "is a file")]:
        with pytest.raises(DomainftError, match=match):
            export_triton(ner_bundle, out=out, echo=lambda *a: None)
    for kwargs, match in [({"name": "a/b"}, "--name"), ({"spec": TritonSpec(max_batch_size=4,
                                                                            preferred_batch_sizes=[8])},
                                                          "--preferred-batch-size"),
                          ({"spec": TritonSpec(instances=0)}, "--instances")]:
        with pytest.raises(DomainftError, match=match):
            export_triton(ner_bundle, out=tmp_path / "other", echo=lambda *a: None, **kwargs)
    cli = runner.invoke(app, ["export", str(ner_bundle), "--format", "tensorrt"])
    assert cli.exit_code == 2 and "--format" in cli.output
    cli = runner.invoke(app, ["export", str(tmp_path), "--format", "triton"])
    assert cli.exit_code == 2 and "not a domainft run" in cli.output
    assert not (tmp_path / "other").exists() and os.listdir(kept) == ["notes.txt"]



# The classification graph's three logits read as another task's outputs: the client's decoding of
# each task (and of long inputs in windows) checked against domainft.serving, with no more training.
VARIANTS = {
    "multilabel": {"task": "multilabel", "thresholds": {"default": 0.4, "values": {"neutral": 0.6}}},
    "regression": {"task": "regression", "targets": {"names": ["valence", "arousal", "dominance"],
                                                     "mean": [0.1, 0.2, 0.3], "std": [2.0, 0.5, 1.0],
                                                     "standardized": True}},
    "windows": {"max_length": 12, "stride": 4, "text_inputs": {"long_inputs": "windows", "window_pooling": "max"}},
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_client_decodes_each_task_as_serving_does(fpb_run, variant, tmp_path, monkeypatch):
    if not (fpb_run.run_dir / "onnx" / "domainft.json").is_file():  # when run alone
        export_triton(fpb_run.run_dir, out=tmp_path / "first", echo=lambda *a: None)
    bundle = tmp_path / "bundle"
    shutil.copytree(fpb_run.run_dir / "onnx", bundle)
    manifest = {**json.loads((bundle / "domainft.json").read_text()), **VARIANTS[variant]}
    (bundle / "domainft.json").write_text(json.dumps(manifest))
    repo = export_triton(bundle, TritonSpec(max_batch_size=2), out=tmp_path / "repo", name="m", precision="fp32",
                         echo=lambda *a: None).dir
    config, _ = read_config(repo / "m" / "config.pbtxt")
    assert bool(config.output[0].label_filename) == (variant != "regression")
    expected = load_bundle(bundle, "fp32").predict(TEXTS)
    with run_client(repo, "m", monkeypatch) as (client, _):
        got = client["predict"](TEXTS)
    if variant == "regression":
        np.testing.assert_allclose([list(g["values"].values()) for g in got],
                                   [list(e["values"].values()) for e in expected], atol=1e-4)
        return
    assert [g.get("labels", g.get("label")) for g in got] == [e.get("labels", e.get("label")) for e in expected]
    np.testing.assert_allclose([list(g["scores"].values()) for g in got],
                               [list(e["scores"].values()) for e in expected], atol=1e-4)
