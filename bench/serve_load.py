"""Benchmark: `domainft serve` under concurrent clients, beside a plain per-request server and the
bundle's own in-process ceiling, all on this machine in one run (loopback only).

For 1, 8, 32 and 128 concurrent clients (each sends one short text per request, waits for the answer,
sends the next: a closed loop), bounded by --requests per setting and --seconds: throughput
(texts/s), p50 / p99 latency, errors (must be 0), the batch-size distribution the server reports on
/metrics, and the server's peak RSS. Servers:
  - domainft: `domainft serve BUNDLE` with its defaults (int8 when the bundle has it; 4 inference
              threads per core on 1-thread engine calls; --max-batch-size 1), or as options say
  - plain:    the same predictor behind the same ASGI stack (Starlette on uvicorn), one model call per
              request in uvicorn's thread pool, no batching: what a user would write first
Ceiling: the bundle's Predictor called in-process at batch 32 (no HTTP), and, stricter, in-process
with 8 threads predicting one text at a time on a single-threaded session (the engine as the server
drives it on 2 cores, without HTTP).
Then the bad-request matrix (malformed JSON, wrong types, empty list, 10 MB body, 100k-character text,
non-UTF-8 bytes) against domainft serve: each must get a 4xx JSON message, and the server must keep
answering. Results: bench/results/serve_load.json; Markdown tables on stdout.

    python bench/serve_load.py [--bundle runs/finance_sentiment/onnx] [--clients 1 8 32 128]
        [--requests 3000] [--seconds 20] [--threads 2] [--max-wait-ms 0] [--max-batch-size N]
        [--inference-threads N] [--server-threads N]

Texts: Financial PhraseBank sentences (../shared/datasets, read at run time), else the sample in data/.
The client is a minimal asyncio HTTP/1.1 keep-alive client so that its own cost stays small: it
shares the machine's cores with the server.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FPB = ROOT.parent / "shared" / "datasets" / "financial_phrasebank" / "Sentences_50Agree.txt"
SAMPLE = ROOT / "data" / "finance_sentiment_sample.txt"
RESULTS = ROOT / "bench" / "results" / "serve_load.json"


def texts(n: int = 2000) -> list[str]:
    source = FPB if FPB.is_file() else SAMPLE
    lines = source.read_text(encoding="latin-1" if source == FPB else "utf-8").splitlines()
    out = [line.rsplit("@", 1)[0].strip() if source == FPB else line.split("\t")[-1].strip() for line in lines]
    return [t for t in out if t][:n]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- servers ---------------------------------------------------------------------------------------

def start_server(kind: str, bundle: str, port: int, args) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    if kind == "domainft":
        given = {"--max-batch-size": args.max_batch_size, "--inference-threads": args.inference_threads,
                 "--threads": args.server_threads}
        cmd = [sys.executable, "-m", "domainft", "serve", bundle, "--port", str(port), "--log-level", "warning",
               "--max-wait-ms", str(args.max_wait_ms), *(x for k, v in given.items() if v for x in (k, str(v)))]
    else:
        cmd = [sys.executable, __file__, "--plain-server", bundle, "--port", str(port), "--threads", str(args.threads)]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{kind} server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{kind} server not ready within 120 s")


def plain_server(bundle: str, port: int, threads: int) -> None:
    """The peer: one predictor call per request, in the thread pool, no batching."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from domainft.serving import load

    model = load(bundle, threads=threads)
    model.predict(["warm up"])

    async def predict(request: Request):
        body = await request.json()
        return JSONResponse({"predictions": await run_in_threadpool(model.predict, body["texts"])})

    async def ready(request: Request):
        return JSONResponse({"status": "ready"})

    app = Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/ready", ready)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024


def batch_histogram(port: int) -> dict[str, float] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    buckets = {m.group(1): float(m.group(2))
               for m in re.finditer(r'^domainft_batch_size_bucket\{le="([^"]+)"\} (\S+)$', text, re.M)}
    return buckets or None


def histogram_delta(before: dict | None, after: dict | None) -> dict[str, int] | None:
    """Batches per size range between two /metrics reads ("<=1", "2-2", ..., cumulative buckets undone)."""
    if not after:
        return None
    before = before or {}
    out, previous, low = {}, 0.0, 1
    for le in after:
        count = after[le] - before.get(le, 0.0)
        if count - previous:
            high = "inf" if le == "+Inf" else str(int(float(le)))
            out[f"{low}-{high}"] = int(count - previous)
        previous = count
        low = int(float(le)) + 1 if le != "+Inf" else low
    return out


# --- the client ------------------------------------------------------------------------------------

async def client(port: int, bodies: list[bytes], next_index, stop_at: float, latencies: list, errors: list):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at:
            i = next_index()
            if i is None:
                return
            body = bodies[i % len(bodies)]
            started = time.perf_counter()
            writer.write(b"POST /predict HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            status, payload = await read_response(reader)
            latencies.append(time.perf_counter() - started)
            if status != 200 or b'"predictions"' not in payload:
                errors.append((status, payload[:200]))
    finally:
        writer.close()


async def read_response(reader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
    return status, await reader.readexactly(length)


async def load(port: int, clients: int, bodies: list[bytes], requests: int, seconds: float) -> dict:
    counter = iter(range(requests))
    latencies, errors = [], []
    started = time.perf_counter()
    await asyncio.gather(*(client(port, bodies, lambda: next(counter, None), started + seconds, latencies, errors)
                           for _ in range(clients)))
    wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {"clients": clients, "requests": len(latencies), "seconds": round(wall, 2),
            "texts_per_s": round(len(latencies) / wall, 1),
            "p50_ms": round(1000 * ordered[len(ordered) // 2], 1),
            "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1),
            "errors": len(errors), "first_error": repr(errors[0]) if errors else None}


def measure_server(kind: str, bundle: str, sentences: list[str], args) -> dict:
    port = free_port()
    proc = start_server(kind, bundle, port, args)
    bodies = [json.dumps({"texts": [t]}).encode() for t in sentences]
    rows = []
    try:
        asyncio.run(load(port, 8, bodies, 200, 10))  # warm-up: connections, the engine's buffers
        for clients in args.clients:
            before = batch_histogram(port)
            row = asyncio.run(load(port, clients, bodies, args.requests, args.seconds))
            row["batches"] = histogram_delta(before, batch_histogram(port))
            rows.append(row)
            print(f"  {kind:8} {clients:4} clients: {row['texts_per_s']:7.1f} texts/s, p50 {row['p50_ms']} ms, "
                  f"p99 {row['p99_ms']} ms, errors {row['errors']}, batches {row['batches']}", flush=True)
        rss = peak_rss_mb(proc.pid)
        bad = bad_requests(port) if kind == "domainft" else None
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return {"server": kind, "rows": rows, "peak_rss_mb": round(rss, 1), "bad_requests": bad}


def ceiling(bundle: str, sentences: list[str], threads: int, seconds: float) -> dict:
    """In-process: batch-1 latency and batch-32 throughput of the bundle's predictor (no HTTP)."""
    from domainft.serving import load as load_bundle

    model = load_bundle(bundle, threads=threads)
    model.predict(sentences[:32], batch_size=32)
    one = []
    for t in sentences[:300]:
        started = time.perf_counter()
        model.predict([t], batch_size=1)
        one.append(time.perf_counter() - started)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        chunk = [sentences[(done + k) % len(sentences)] for k in range(32)]
        model.predict(chunk, batch_size=32)
        done += 32
    wall = time.perf_counter() - started
    return {"precision": model.precision, "batch1_ms": round(1000 * statistics.median(one), 2),
            "batch1_texts_per_s": round(len(one) / sum(one), 1), "batch32_texts_per_s": round(done / wall, 1),
            "concurrent_texts_per_s": concurrent(bundle, sentences, seconds)}


def concurrent(bundle: str, sentences: list[str], seconds: float, workers: int = 8) -> float:
    """In-process, the engine as domainft serve runs it by default on 2 cores: 8 threads each predicting
    one text at a time on a single-threaded session."""
    import threading

    from domainft.serving import load as load_bundle

    model = load_bundle(bundle, threads=1)
    done, stop = [0] * workers, time.perf_counter() + seconds

    def work(k):
        i = k
        while time.perf_counter() < stop:
            model.predict([sentences[i % len(sentences)]], batch_size=1)
            done[k] += 1
            i += workers

    started = time.perf_counter()
    threads = [threading.Thread(target=work, args=(k,)) for k in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return round(sum(done) / (time.perf_counter() - started), 1)


# --- bad requests ----------------------------------------------------------------------------------

BAD_REQUESTS = {
    "malformed JSON": b'{"texts": ["unterminated',
    "wrong types": b'{"texts": [5, {"a": 1}]}',
    "texts not a list": b'{"texts": "one text"}',
    "empty list": b'{"texts": []}',
    "10 MB body": b'{"texts": ["' + b"a" * (10 * 2**20) + b'"]}',
    "100k-character text": json.dumps({"texts": ["word " * 20_000]}).encode(),
    "non-UTF-8 bytes": b'{"texts": ["caf\xe9 \xff\xfe"]}',
    "lone surrogate escape": b'{"texts": ["\\ud800"]}',
    "no texts field": b'{"text": "one text"}',
}


def post(port: int, body: bytes) -> tuple[int, dict | str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw[:200].decode("utf-8", "replace")


def bad_requests(port: int) -> list[dict]:
    rows = []
    for name, body in BAD_REQUESTS.items():
        status, answer = post(port, body)
        message = answer.get("error", {}).get("message") if isinstance(answer, dict) else answer
        after, _ = post(port, json.dumps({"texts": ["Sales rose 5 % ."]}).encode())
        rows.append({"request": name, "status": status, "message": message, "json": isinstance(answer, dict),
                     "still_serving": after == 200})
    return rows


# --- report ----------------------------------------------------------------------------------------

def report(result: dict) -> None:
    c = result["ceiling"]
    print(f"\nceiling (in-process {c['precision']}): batch 1 {c['batch1_ms']} ms ({c['batch1_texts_per_s']} texts/s), "
          f"batch 32 {c['batch32_texts_per_s']} texts/s; 8 threads one text at a time "
          f"{c['concurrent_texts_per_s']} texts/s\n")
    print("| server | clients | texts/s | % of ceiling | p50 ms | p99 ms | errors | batches (size: count) |")
    print("|---|---|---|---|---|---|---|---|")
    for server in result["servers"]:
        for row in server["rows"]:
            share = 100 * row["texts_per_s"] / c["batch32_texts_per_s"]
            print(f"| {server['server']} | {row['clients']} | {row['texts_per_s']} | {share:.0f}% | {row['p50_ms']} | "
                  f"{row['p99_ms']} | {row['errors']} | {row['batches'] or '-'} |")
    print("\n| server | peak RSS MB |\n|---|---|")
    for server in result["servers"]:
        print(f"| {server['server']} | {server['peak_rss_mb']} |")
    domainft = next((s for s in result["servers"] if s["server"] == "domainft"), None)
    if domainft and domainft["bad_requests"]:
        print("\n| bad request | status | still serving | message |\n|---|---|---|---|")
        for row in domainft["bad_requests"]:
            print(f"| {row['request']} | {row['status']} | {row['still_serving']} | {str(row['message'])[:110]} |")
    targets(result)


def targets(result: dict) -> None:
    servers = {s["server"]: {r["clients"]: r for r in s["rows"]} for s in result["servers"]}
    at32 = servers.get("domainft", {}).get(32)
    if not at32:
        return
    ceiling_tps = result["ceiling"]["batch32_texts_per_s"]
    plain = servers.get("plain", {}).get(32)
    errors = sum(r["errors"] for s in servers.values() for r in s.values())
    print("\ntargets at 32 clients:")
    share = at32["texts_per_s"] / ceiling_tps
    print(f"  >= 85% of the ceiling: {at32['texts_per_s']} / {ceiling_tps} = {100 * share:.0f}% -> "
          f"{'pass' if share >= 0.85 else 'FAIL'}")
    if plain:
        print(f"  beats the plain server: {at32['texts_per_s']} vs {plain['texts_per_s']} texts/s -> "
              f"{'pass' if at32['texts_per_s'] > plain['texts_per_s'] else 'FAIL'}")
    print(f"  p99 < 100 ms: {at32['p99_ms']} ms -> {'pass' if at32['p99_ms'] < 100 else 'FAIL'}")
    print(f"  errors 0 (every setting, both servers): {errors} -> {'pass' if errors == 0 else 'FAIL'}")
    bad = (next(s for s in result["servers"] if s["server"] == "domainft")["bad_requests"] or [])
    ok = all(400 <= r["status"] < 500 and r["json"] and r["still_serving"] for r in bad)
    print(f"  bad requests: every one a 4xx JSON answer, server still serving -> {'pass' if ok else 'FAIL'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default=str(ROOT / "runs" / "finance_sentiment" / "onnx"))
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--requests", type=int, default=3000, help="at most this many requests per setting")
    parser.add_argument("--seconds", type=float, default=20, help="at most this long per setting")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads (every server and the ceiling)")
    parser.add_argument("--max-wait-ms", type=float, default=0.0)
    parser.add_argument("--inference-threads", type=int, help="domainft serve's model calls at once (default: its own)")
    parser.add_argument("--server-threads", type=int, help="domainft serve --threads (default: its own)")
    parser.add_argument("--max-batch-size", type=int, help="domainft serve's (default: its own)")
    parser.add_argument("--servers", nargs="+", default=["domainft", "plain"], choices=["domainft", "plain"])
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--plain-server", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain_server:
        return plain_server(args.plain_server, args.port, args.threads)
    if not Path(args.bundle, "domainft.json").is_file():
        raise SystemExit(f"{args.bundle}: no bundle; run the finance recipe and `domainft export` it first")
    sentences = texts()
    print(f"{len(sentences)} texts; bundle {args.bundle}; {os.cpu_count()} CPUs; threads {args.threads}", flush=True)
    result = {"date": time.strftime("%Y-%m-%d"), "cpu": cpu_model(), "cpus": os.cpu_count(), "bundle": args.bundle,
              "threads": args.threads, "max_wait_ms": args.max_wait_ms, "max_batch_size": args.max_batch_size,
              "texts": "FPB 50Agree" if FPB.is_file() else "data sample",
              "ceiling": ceiling(args.bundle, sentences, args.threads, 10), "servers": []}
    for kind in args.servers:
        result["servers"].append(measure_server(kind, args.bundle, sentences, args))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    report(result)


def cpu_model() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown"


if __name__ == "__main__":
    main()
