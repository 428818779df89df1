"""`domainft serve`: an exported bundle behind an HTTP JSON API (FastAPI on uvicorn).

    POST /predict   {"texts": [...]} -> {"predictions": [...]}, the objects `domainft predict` prints
    GET  /info      the bundle: task, labels, precision, limits
    GET  /health    the process is up;  GET /ready  the model is loaded and answering
    GET  /metrics   Prometheus: requests, latency, batch sizes, errors
    GET  /docs      OpenAPI documentation (/openapi.json the schema)

Concurrent requests' texts are micro-batched (domainft.microbatch); a text's answer is the one
`domainft predict` gives it, whatever it is batched with. Limits (texts per request, characters per
text, body bytes) are checked before anything is queued and answered with a 4xx JSON error naming
the problem. On SIGTERM / Ctrl-C uvicorn stops accepting connections and the requests in flight
are finished before the process ends. Needs only the `serve` extra: no torch.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Union

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from domainft.errors import DomainftError
from domainft.jsonl import lone_surrogate, shown
from domainft.serving import Predictor, bundle_of

SETTINGS_ENV = "DOMAINFT_SERVE_SETTINGS"  # how `--workers N` hands the settings to each worker process
WARM_UP_TEXT = "A short sentence to warm the model up."


@dataclass
class ServeSettings:
    bundle: str
    precision: Literal["auto", "fp32", "int8"] = "auto"
    threads: Optional[int] = None  # the engine's threads per model call (default: cores / inference threads)
    inference_threads: Optional[int] = None  # model calls at once, each on its own batch (default: 4 per core)
    # Texts per model call. 1 by default: on the CPUs measured (bench/serve_load.py), batches of
    # concurrent requests' texts computed fewer texts per second than one-text calls side by side
    # (padding to the longest text; the int8 kernels are no faster per text in a batch).
    max_batch_size: int = 1
    max_wait_ms: float = 0.0  # how long a batch waits for more texts once its first has arrived
    max_texts: int = 64  # texts per request
    max_chars: int = 20_000  # characters per text (a list of words: all its words)
    max_body_bytes: int = 2 * 2**20

    def calls_at_once(self) -> int:
        """Inference threads: more than the cores, so that while some run Python (tokenizing, decoding,
        under the GIL) the engine's calls of the others keep every core busy."""
        return self.inference_threads or 4 * _cores()

    def engine_threads(self) -> int:
        """ONNX Runtime's threads per model call: the cores shared out between the calls running at once
        (one each by default: concurrent single-threaded calls beat one call spread over the cores)."""
        return self.threads or max(1, _cores() // self.calls_at_once())

    def check(self) -> None:
        for name in ("inference_threads", "max_batch_size", "max_texts", "max_chars", "max_body_bytes"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise DomainftError(f"serve --{name.replace('_', '-')}: must be at least 1 "
                                    f"(got {getattr(self, name)})")
        if self.max_wait_ms < 0:
            raise DomainftError(f"serve --max-wait-ms: must not be negative (got {self.max_wait_ms:g})")
        if self.threads is not None and self.threads < 1:
            raise DomainftError(f"serve --threads: must be at least 1 (got {self.threads})")


class RequestProblem(Exception):
    """A request the server refuses: HTTP status, one-line message, and the problems by field."""

    def __init__(self, status: int, message: str, problems: list[dict] | None = None):
        super().__init__(message)
        self.status, self.message, self.problems = status, message, problems or []


def error_body(status: int, message: str, problems: list[dict] | None = None) -> bytes:
    return json.dumps({"error": {"status": status, "message": message, "problems": problems or []}},
                      ensure_ascii=False).encode("utf-8")


# --- what a client sends and gets (also the OpenAPI schema) -------------------------------------------

class TextPair(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    text_pair: str


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"texts": ["Operating profit rose to EUR 13.1 mn from EUR 8.7 mn ."]}]})
    texts: List[Union[str, List[str], TextPair, Dict[str, Union[str, int, float, None]]]] = Field(
        ..., description="Texts to predict: strings; for an NER model also lists of words; for a model "
                         'trained on text pairs {"text": ..., "text_pair": ...} objects; for a model trained '
                         "on texts built from columns (data.text_template) also rows, {column: value} objects.")


class PredictResponse(BaseModel):
    predictions: List[dict] = Field(..., description="One object per text, in order, as `domainft predict` "
                                                     "prints it: {label, score, scores} (classification), "
                                                     "{labels, scores} (multilabel), {value} / {values} "
                                                     "(regression), {entities, words, tags} (ner).")


def check_texts(texts: list, predictor: Predictor, settings: ServeSettings) -> list:
    """The request's texts as the predictor takes them, or a RequestProblem naming each bad one."""

    if not texts:
        raise RequestProblem(422, "texts: the list is empty; send at least one text",
                             [{"field": "texts", "message": "empty list"}])
    if len(texts) > settings.max_texts:
        raise RequestProblem(413, f"texts: {len(texts)} texts in one request, more than this server takes "
                                  f"({settings.max_texts}, --max-texts); split them over several requests",
                             [{"field": "texts", "message": f"{len(texts)} > {settings.max_texts}"}])
    problems, inputs = [], []
    pairs = predictor.inputs["text_pair"]
    for i, item in enumerate(texts):
        item = item.model_dump() if hasattr(item, "model_dump") else item
        message = _text_problem(item, predictor.task, pairs, settings.max_chars)
        if message is None:
            try:
                item = item if predictor.task == "ner" else predictor.as_inputs([item])[0]
            except DomainftError as e:
                message = str(e).removeprefix("input 1: ")
        if message is not None:
            problems.append({"field": f"texts[{i}]", "message": message})
        inputs.append(item)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise RequestProblem(422, f"{first['field']}: {first['message']}{more}", problems)
    return inputs


def _text_problem(item: Any, task: str, pairs: bool, max_chars: int) -> str | None:
    if isinstance(item, list) and task != "ner" and not pairs:
        return "a list of words is for NER models; send the text as a string"
    bad = lone_surrogate(item)
    if bad is not None:
        return f"{shown(bad)} holds a lone surrogate (not valid UTF-8 text); send UTF-8 text"
    length = sum(len(str(x)) for x in (item.values() if isinstance(item, dict) else item) if x is not None) \
        if isinstance(item, (list, dict)) else len(item)
    if length > max_chars:
        return (f"{length} characters, more than this server takes per text ({max_chars}, --max-chars); "
                "shorten or split the text")
    return None


# --- metrics -----------------------------------------------------------------------------------------

class Metrics:
    """Prometheus metrics of one server; under `--workers N` every worker writes to
    PROMETHEUS_MULTIPROC_DIR and /metrics sums them."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = None if self.multiprocess else CollectorRegistry()
        kw = {"registry": self.registry} if self.registry is not None else {}
        self.requests = Counter("domainft_requests", "HTTP requests answered", ["path", "status"], **kw)
        self.latency = Histogram("domainft_request_duration_seconds", "Time to answer a request", ["path"],
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10), **kw)
        self.batch_size = Histogram("domainft_batch_size", "Texts per model call",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), **kw)
        self.batch_seconds = Histogram("domainft_batch_duration_seconds", "Model time per batch",
                                       buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5), **kw)
        self.texts = Counter("domainft_texts", "Texts predicted", **kw)
        self.errors = Counter("domainft_errors", "Requests refused or failed", ["kind"], **kw)
        gauge = {"multiprocess_mode": "livesum"} if self.multiprocess else {}
        self.in_flight = Gauge("domainft_requests_in_flight", "Requests being answered", **gauge, **kw)

    def on_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)
        self.texts.inc(size)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

        registry = self.registry
        if registry is None:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST


# A body over the limit is read and dropped up to this size before the 413 is sent: a client that is
# still sending when the answer comes gets a reset connection instead of the message.
DRAIN_LIMIT = 64 * 2**20
KNOWN_PATHS = {"/predict", "/info", "/health", "/ready", "/metrics", "/docs", "/openapi.json"}


class Guard:
    """ASGI middleware: refuses bodies over max_body_bytes (413, before or while reading them),
    counts every HTTP request and its latency, answers an unexpected failure with a JSON 500."""

    def __init__(self, app, metrics: Metrics, max_body_bytes: int):
        self.app, self.metrics, self.max_body = app, metrics, max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"] if scope["path"] in KNOWN_PATHS else "other"
        started, status, sent = time.perf_counter(), [500], [False]

        async def send_counted(message):
            if message["type"] == "http.response.start":
                status[0], sent[0] = message["status"], True
            await send(message)

        self.metrics.in_flight.inc()
        try:
            receive = await self._read_body(scope, receive)
            if receive is None:
                await self._refuse_size(send_counted)
            else:
                await self.app(scope, receive, send_counted)
        except Exception as e:  # noqa: BLE001 - the client gets JSON, the server keeps serving
            self.metrics.errors.labels("internal").inc()
            if not sent[0]:
                await _send_json(send_counted, 500, error_body(500, f"internal error ({type(e).__name__}); the "
                                                                    "server keeps serving, see its log"))
            raise
        finally:
            self.metrics.in_flight.dec()
            self.metrics.requests.labels(path, str(status[0])).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - started)

    async def _read_body(self, scope, receive):
        """The body read whole, up to max_body_bytes (a Content-Length above it is refused unread), and
        a `receive` that hands it to the application; None when it is too large. Reading it here
        covers chunked bodies too, which announce no length."""
        length = dict(scope.get("headers") or []).get(b"content-length")
        announced = int(length) if length is not None and length.isdigit() else None
        if announced is not None and announced > DRAIN_LIMIT:
            return None  # answered unread: the client may see the connection reset instead of the 413
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                return _replay([message], receive)
            size += len(message.get("body", b""))
            if size <= self.max_body:
                chunks.append(message.get("body", b""))
            elif size > DRAIN_LIMIT:
                return None
            more = message.get("more_body", False)
        if size > self.max_body:  # read to the end and dropped, so that the client reads the 413
            return None
        return _replay([{"type": "http.request", "body": b"".join(chunks), "more_body": False}], receive)

    async def _refuse_size(self, send):
        self.metrics.errors.labels("too_large").inc()
        await _send_json(send, 413, error_body(
            413, f"request body: more than this server takes ({self.max_body} bytes, --max-body-bytes); "
                 "send fewer or shorter texts per request"))


def _replay(messages: list, receive):
    async def replayed():
        return messages.pop(0) if messages else await receive()

    return replayed


async def _send_json(send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


# --- the application ---------------------------------------------------------------------------------

def create_app(settings: ServeSettings, predictor: Predictor | None = None):
    """The ASGI application serving `settings.bundle` (or an already loaded `predictor`)."""
    from domainft import __version__
    from domainft.microbatch import MicroBatcher

    settings.check()
    metrics = Metrics()
    state: dict[str, Any] = {"ready": False, "predictor": predictor}

    @asynccontextmanager
    async def lifespan(app):
        model = state["predictor"] or Predictor(settings.bundle, settings.precision, settings.engine_threads())
        state["predictor"] = model
        model.predict([_warm_up_input(model)])  # the first call allocates the engine's buffers
        batcher = MicroBatcher(lambda inputs: model.predict(inputs, batch_size=len(inputs)),
                               settings.max_batch_size, settings.max_wait_ms / 1000, metrics.on_batch,
                               settings.calls_at_once())
        await batcher.start()
        state["batcher"], state["ready"] = batcher, True
        try:
            yield
        finally:
            state["ready"] = False
            await batcher.stop()  # after uvicorn has let the requests in flight finish

    app = FastAPI(title="domainft serve", version=__version__, lifespan=lifespan,
                  description="Predictions of an exported domainft bundle.")

    def json_response(status: int, body: bytes) -> Response:
        return Response(body, status_code=status, media_type="application/json")

    def problem_response(problem: RequestProblem, kind: str) -> Response:
        metrics.errors.labels(kind).inc()
        return json_response(problem.status, error_body(problem.status, problem.message, problem.problems))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        return problem_response(_validation_problem(exc.errors()), "invalid")

    @app.post("/predict", response_model=PredictResponse, openapi_extra=_request_body(PredictRequest), responses={
        400: {"description": "the body is not JSON (or not UTF-8)"},
        413: {"description": "too many texts, or the body is too large"},
        422: {"description": "wrong types, an empty list, a text too long"}})
    async def predict(request: Request):
        if not state["ready"]:
            return json_response(503, error_body(503, "the model is not ready; retry shortly"))
        try:  # parsed here, whatever the Content-Type: curl -d sends form-encoded headers
            body = PredictRequest.model_validate_json(await request.body())
        except ValidationError as e:
            return problem_response(_validation_problem(e.errors()), "invalid")
        model = state["predictor"]
        try:
            inputs = check_texts(body.texts, model, settings)
        except RequestProblem as problem:
            return problem_response(problem, "invalid")
        try:
            predictions = await state["batcher"].predict(inputs)
        except DomainftError as e:  # e.g. a pair whose first text leaves no room for windows
            return problem_response(RequestProblem(422, str(e)), "invalid")
        except Exception as e:  # noqa: BLE001
            metrics.errors.labels("prediction").inc()
            return json_response(500, error_body(500, f"prediction failed ({type(e).__name__}: {e})"))
        return json_response(200, json.dumps({"predictions": predictions}, ensure_ascii=False).encode("utf-8"))

    @app.get("/info")
    async def info():
        model = state["predictor"]
        if model is None:
            return json_response(503, error_body(503, "the model is not loaded yet"))
        manifest = model.manifest
        return {"bundle": str(model.dir), "task": model.task, "labels": model.labels, "precision": model.precision,
                "max_length": manifest.get("max_length"),
                "base": manifest.get("base_hub_id") or manifest.get("base"),
                "text_pairs": bool(model.inputs["text_pair"]),
                "batching": {"max_batch_size": settings.max_batch_size, "max_wait_ms": settings.max_wait_ms,
                             "inference_threads": settings.calls_at_once(),
                             "engine_threads": settings.engine_threads()},
                "limits": {k: v for k, v in asdict(settings).items()
                           if k in ("max_texts", "max_chars", "max_body_bytes")}}

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/ready")
    async def ready():
        if not state["ready"]:
            return json_response(503, json.dumps({"status": "not ready"}).encode())
        return {"status": "ready"}

    @app.get("/metrics")
    async def prometheus():
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    app.state.domainft = state
    return Guard(app, metrics, settings.max_body_bytes)


def _request_body(model) -> dict:
    """The OpenAPI requestBody of a route that parses its JSON itself, its sub-schemas inlined."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node):
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items()}
        return [inline(v) for v in node] if isinstance(node, list) else node

    return {"requestBody": {"required": True, "content": {"application/json": {"schema": inline(schema)}}}}


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use (containers, taskset)
    except AttributeError:
        return os.cpu_count() or 1


def _warm_up_input(model: Predictor):
    if model.inputs["text_pair"]:
        return {"text": WARM_UP_TEXT, "text_pair": WARM_UP_TEXT}
    return WARM_UP_TEXT


def _validation_problem(errors: list[dict]) -> RequestProblem:
    """FastAPI's validation errors as one message: malformed JSON (400), else each field's problem (422)."""
    for e in errors:
        if e.get("type") == "json_invalid":
            detail = (e.get("ctx") or {}).get("error") or e.get("msg")
            return RequestProblem(400, f"request body: not valid JSON ({detail}); send "
                                       '{"texts": ["..."]} as UTF-8 JSON', [{"field": "body", "message": str(detail)}])
    problems = []
    for e in errors:
        loc = [p for p in e.get("loc", ()) if p != "body"]
        field = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(loc))
        problems.append({"field": field or "body", "message": e.get("msg", "invalid")})
    problems = _one_per_field(problems)
    first = problems[0]
    hint = ' ({"texts": [...]}: strings, lists of words for NER, {"text", "text_pair"} for pairs)'
    return RequestProblem(422, f"{first['field']}: {first['message']}{hint}", problems)


def _one_per_field(problems: list[dict]) -> list[dict]:
    """A text of the wrong type fails every member of the union (str, list of words, pair): say it once."""
    seen, out = {}, []
    for p in problems:
        key = p["field"].split(".")[0].split("[list")[0]
        if key not in seen:
            seen[key] = True
            out.append({"field": key, "message": p["message"] if key == p["field"] else
                        "expected a string, a list of words (NER) or {\"text\", \"text_pair\"}"})
    return out


def app_from_env():
    """uvicorn's app factory under `--workers N`: each worker process builds its own app."""
    return create_app(ServeSettings(**json.loads(os.environ[SETTINGS_ENV])))


def check_address(host: str, port: int) -> None:
    """Refuse an address the server cannot listen on before the model is loaded: uvicorn says so
    only after its start-up, in a log line, with an exit status of its own."""
    import errno
    import socket

    not_here = (f"serve --host: {host} is not an address of this machine; use 127.0.0.1 (this machine only) "
                "or 0.0.0.0 (every interface)")
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as e:
        raise DomainftError(f"{not_here} ({e.strerror})") from None
    with socket.socket(family, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise DomainftError(f"serve --port: {host}:{port} is in use by another program; choose another "
                                    "--port, or stop that program") from None
            if e.errno == errno.EADDRNOTAVAIL:
                raise DomainftError(not_here) from None
            if e.errno == errno.EACCES:
                raise DomainftError(f"serve --port: listening on port {port} needs privileges here; choose a "
                                    "port from 1024 up") from None
            raise


def serve(path: str | Path, settings: ServeSettings, host: str = "127.0.0.1", port: int = 8000,
          workers: int = 1, graceful_timeout: float = 30.0, log_level: str = "info") -> None:
    """Run the server until SIGTERM / Ctrl-C; requests in flight then finish (up to graceful_timeout s)."""
    import tempfile

    import uvicorn

    settings.bundle = str(bundle_of(path))
    settings.check()
    if workers < 1:
        raise DomainftError(f"serve --workers: must be at least 1 (got {workers})")
    check_address(host, port)
    # A bad bundle fails here, once, with its message; one process serves the model loaded here, the
    # workers of several each load their own (a loaded engine does not cross a fork).
    predictor = Predictor(settings.bundle, settings.precision, settings.engine_threads() if workers == 1 else 1)
    options = {"host": host, "port": port, "log_level": log_level, "timeout_graceful_shutdown": graceful_timeout,
               "access_log": False}
    if workers == 1:
        uvicorn.run(create_app(settings, predictor), **options)
        return
    del predictor
    os.environ[SETTINGS_ENV] = json.dumps(asdict(settings))
    with tempfile.TemporaryDirectory(prefix="domainft-metrics-") as metrics_dir:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # workers' metrics, summed by /metrics
        uvicorn.run("domainft.server:app_from_env", factory=True, workers=workers, **options)
