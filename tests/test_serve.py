"""`domainft serve`: answers equal to the bundle's own predictor whatever the batch, concurrent
clients micro-batched, every bad request a 4xx JSON message that changes nothing, health /
readiness / Prometheus metrics / OpenAPI, graceful shutdown that finishes requests in flight.

Torch-free: a light install (`pip install ".[serve]"`) runs this file against bundles a full install
built (DOMAINFT_TEST_BUNDLES=DIR holding classification/ and ner/; test_light_install.py does so).
Without it the bundles are trained here on the tiny model.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from domainft.serving import load as load_bundle

from compare import assert_same

TASKS = ("classification", "ner")
TEXTS = ["Kallio Group said its net sales rose to EUR 80.1 mn from EUR 60.2 mn .",
         "Tundra Mining will cut 300 jobs as demand weakens .", "Shares fell .", "",
         " ".join(["Operating profit of the unit fell sharply in the second quarter ;"] * 40),
         "Profit 📈 rose 🚀 at Nokia 😀 .", "The board proposed a dividend of EUR 0.50 per share ."]
NER_TEXTS = ["Patients with cystic fibrosis and breast cancer were enrolled ;",
             ["No", "history", "of", "ataxia-telangiectasia", "."],
             " ".join(["familial hypercholesterolemia and colorectal adenomas ;"] * 30)]


@pytest.fixture(scope="module")
def bundles(request, tmp_path_factory) -> dict[str, Path]:
    given = os.environ.get("DOMAINFT_TEST_BUNDLES")
    if given:
        return {task: Path(given) / task for task in TASKS}
    from test_serving_threads import trained_bundle  # needs torch: the full install trains them

    tiny_base = request.getfixturevalue("tiny_base")
    return {task: trained_bundle(tiny_base, tmp_path_factory, task) for task in TASKS}


# --- in-process: the ASGI app through Starlette's test client ------------------------------------------

@pytest.fixture(scope="module")
def client(bundles):
    from fastapi.testclient import TestClient

    from domainft.server import ServeSettings, create_app

    settings = ServeSettings(bundle=str(bundles["classification"]), threads=1, max_texts=8, max_chars=5000,
                             max_body_bytes=64_000)
    with TestClient(create_app(settings)) as c:
        yield c


def test_predict_answers_as_the_bundle_predictor(client, bundles):
    expected = load_bundle(bundles["classification"], threads=1).predict(TEXTS)
    r = client.post("/predict", json={"texts": TEXTS})
    assert r.status_code == 200, r.text
    assert_same(r.json()["predictions"], expected)
    r = client.post("/predict", json={"texts": [{"text": t} for t in TEXTS]})  # as --input JSONL has them
    assert r.status_code == 200, r.text
    assert_same(r.json()["predictions"], expected)


def bad_requests():
    return {
        "malformed JSON": (b'{"texts": ["unterminated', 400, "not valid JSON"),
        "not an object": (b'["a text"]', 422, "body"),
        "no texts field": (b'{"text": "a text"}', 422, "texts"),
        "texts not a list": (b'{"texts": "a text"}', 422, "texts"),
        "wrong types": (b'{"texts": ["fine", 5]}', 422, "texts[1]"),
        "empty list": (b'{"texts": []}', 422, "empty"),
        "a pair to a single-text model": (b'{"texts": [{"text": "a", "text_pair": "b"}]}', 422, "texts[0]"),
        "words to a classifier": (b'{"texts": [["two", "words"]]}', 422, "texts[0]"),
        "a row to a model without a template": (b'{"texts": [{"title": "a"}]}', 422,
                                                "texts[0]: an object with keys 'title'; this model reads texts"),
        "too many texts": (json.dumps({"texts": ["a"] * 9}).encode(), 413, "--max-texts"),
        "a text too long": (json.dumps({"texts": ["fine", "w" * 5001]}).encode(), 422, "texts[1]: 5001 characters"),
        "body too large": (json.dumps({"texts": ["a" * 70_000]}).encode(), 413, "--max-body-bytes"),
        "non-UTF-8 bytes": (b'{"texts": ["caf\xe9 \xff"]}', 400, "not valid JSON"),
        "lone surrogate": (b'{"texts": ["\\ud800"]}', 400, "not valid JSON"),
    }


@pytest.mark.parametrize("name", list(bad_requests()))
def test_a_bad_request_gets_its_message_and_the_server_keeps_serving(client, name):
    body, status, says = bad_requests()[name]
    before = client.get("/metrics").text
    r = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["status"] == status and says in error["message"], error
    assert "Traceback" not in r.text
    assert texts_predicted(client.get("/metrics").text) == texts_predicted(before)  # nothing reached the model
    ok = client.post("/predict", json={"texts": ["Sales rose ."]})
    assert ok.status_code == 200 and len(ok.json()["predictions"]) == 1


def test_chunked_body_over_the_limit_is_refused(client):
    def chunks():
        for _ in range(10):
            yield b"x" * 10_000

    r = client.post("/predict", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "--max-body-bytes" in r.json()["error"]["message"]


def texts_predicted(metrics: str) -> float:
    line = next((x for x in metrics.splitlines() if x.startswith("domainft_texts_total ")), "x 0")
    return float(line.split()[1])


def test_health_ready_info_metrics_and_openapi(client, bundles):
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready"}
    info = client.get("/info").json()
    assert info["task"] == "classification" and info["labels"] == load_bundle(bundles["classification"]).labels
    assert info["limits"]["max_texts"] == 8
    assert info["batching"]["max_batch_size"] == 1 and info["batching"]["engine_threads"] >= 1
    client.post("/predict", json={"texts": ["Sales rose .", "Sales fell ."]})
    client.post("/predict", content=b"{", headers={"Content-Type": "application/json"})
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    for needle in ('domainft_requests_total{path="/predict",status="200"}',
                   'domainft_requests_total{path="/predict",status="400"}',
                   "domainft_request_duration_seconds_bucket", "domainft_batch_size_bucket",
                   'domainft_errors_total{kind="invalid"}', "domainft_texts_total"):
        assert needle in text, needle
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["texts"] and "anyOf" in body["properties"]["texts"]["items"]
    assert client.get("/docs").status_code == 200


# --- a real server: concurrency, NER, shutdown ---------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, path, *options):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "domainft", "serve", str(path), "--port", str(self.port),
                                      "--threads", "1", "--log-level", "warning", *options],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 90
        while time.time() < deadline:
            assert self.proc.poll() is None, self.proc.stderr.read()
            try:
                if get(self.url + "/ready")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("server not ready in 90 s")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.status, r.read().decode()


def post(url, payload):
    request = urllib.request.Request(url + "/predict", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def ner_server(bundles):
    server = Server(bundles["ner"], "--max-wait-ms", "50", "--max-batch-size", "32", "--inference-threads", "1")
    yield server
    server.stop()


def test_concurrent_clients_are_batched_and_each_gets_its_own_answer(ner_server, bundles):
    """16 clients at once, each its own mix of texts: batches form (the /metrics histogram says so),
    and every text's answer equals the predictor's for that text alone."""
    predictor = load_bundle(bundles["ner"], threads=1)
    alone = {json.dumps(t): predictor.predict([t])[0] for t in NER_TEXTS}
    answers, errors = {}, []

    def client(k):
        mine = [NER_TEXTS[(k + j) % len(NER_TEXTS)] for j in range(1 + k % 3)]
        status, body = post(ner_server.url, {"texts": mine})
        if status != 200:
            errors.append(body)
            return
        answers[k] = list(zip(mine, body["predictions"]))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(answers) == 16
    for pairs in answers.values():
        for text, prediction in pairs:
            assert_same(prediction, alone[json.dumps(text)], where=f"text {text!r}")
    metrics = get(ner_server.url + "/metrics")[1]
    count = float(next(x for x in metrics.splitlines() if x.startswith("domainft_batch_size_count")).split()[1])
    total = float(next(x for x in metrics.splitlines() if x.startswith("domainft_batch_size_sum")).split()[1])
    assert total == 31 and count < total, (count, total)  # every text, several per model call


def test_graceful_shutdown_finishes_requests_in_flight(bundles):
    """SIGTERM while requests wait in the batch queue: they are answered, then the process ends."""
    server = Server(bundles["classification"], "--max-wait-ms", "1500", "--max-batch-size", "32",
                    "--inference-threads", "1", "--graceful-timeout", "20")
    results = []
    threads = [threading.Thread(target=lambda: results.append(post(server.url, {"texts": TEXTS[:3]})))
               for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # the requests are in; their batch waits 1.5 s for more texts
    # uvicorn ends by re-raising the signal once the requests are answered: the conventional status
    assert server.stop() in (0, -signal.SIGTERM)
    for t in threads:
        t.join()
    assert [status for status, _ in results] == [200, 200, 200]
    assert all(len(body["predictions"]) == 3 for _, body in results)
    with pytest.raises(OSError):
        get(server.url + "/health")


def test_serve_a_run_directory_and_refuse_what_is_not_a_bundle(bundles, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "onnx").symlink_to(bundles["classification"].resolve())  # RUN_DIR/onnx: the run's own bundle
    server = Server(run_dir)
    try:
        status, body = post(server.url, {"texts": ["Sales rose ."]})
        assert status == 200 and body["predictions"][0]["label"] in load_bundle(bundles["classification"]).labels
    finally:
        server.stop()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    proc = subprocess.run([sys.executable, "-m", "domainft", "serve", str(other), "--port", str(free_port())],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no exported bundle" in proc.stderr and "domainft export" in proc.stderr
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    proc = subprocess.run([sys.executable, "-m", "domainft", "serve", str(bundles["classification"]),
                           "--max-wait-ms", "-1"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--max-wait-ms" in proc.stderr


def test_a_port_in_use_or_a_foreign_host_is_refused_before_the_model_loads(bundles):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "domainft", "serve", str(bundles["classification"]),
                               "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"serve --port: 127.0.0.1:{port} is in use by another program; choose another --port" in proc.stderr
    assert "startup" not in proc.stderr  # refused before the server (and its model) started
    proc = subprocess.run([sys.executable, "-m", "domainft", "serve", str(bundles["classification"]),
                           "--host", "192.0.2.1", "--port", str(free_port())], capture_output=True, text=True,
                          timeout=60)  # TEST-NET-1: an address no machine here holds
    assert proc.returncode == 2 and "serve --host: 192.0.2.1 is not an address of this machine" in proc.stderr


def test_workers_share_the_port_and_their_metrics_add_up(bundles):
    server = Server(bundles["classification"], "--workers", "2")
    try:
        for _ in range(6):
            assert post(server.url, {"texts": ["Sales rose .", "Sales fell ."]})[0] == 200
        metrics = get(server.url + "/metrics")[1]
        assert 'domainft_requests_total{path="/predict",status="200"} 6.0' in metrics
        assert "domainft_texts_total 12.0" in metrics
    finally:
        server.stop()
