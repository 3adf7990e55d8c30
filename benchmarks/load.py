"""Load test of the REST endpoint: `mlflow models serve` on the chain, N concurrent clients posting phone numbers.

    python benchmarks/load.py [--model models:/digit-restore-mnist@champion] [--kind array|picture]
        [--clients 4] [--requests 400] [--workers 1] [--threads 2] [--time-limit 600] [--warmup 20] [--raw data/raw]

The model comes from the pipeline's store ($MLFLOW_TRACKING_URI, else the repository's mlflow.db). Each request
is one 10-digit phone number: ten test images of --raw (the download stage's output), each with an 8x8 piece
lost at a random place (seed 0), no mask (the default chain is blind). --kind array sends them framed, as
(10, 28, 28) pixels; --kind picture sends the number as the restaurant's app has it, one PNG (dark ink on
white, twice MNIST's size, the digits a little apart: 56x640), base64, with the param digits=10.

First the in-process floor: the chain loaded here, its predict on the first requests' inputs (no HTTP, no
JSON), and the networks alone on the same ten framed digits; the median of each. Then the server, started here
on 127.0.0.1 with --workers workers, each worker's TensorFlow limited to --threads threads (default: the cores
shared out), sent nothing but loopback traffic. After --warmup requests (not counted, sent by --clients clients
as the counted ones are: every worker serves some), --clients threads send
--requests requests in all, each client its next one as soon as its last is answered; the run stops at
--time-limit seconds whatever is left. Prints the machine, the throughput (requests and digits per second),
the latency p50 / p99, each beside its floor, the failed requests, and the resident memory of the server's
processes after the warm-up, at each quarter and at the end. Exits 1 if a request failed, was not answered
with ten digits, or the time limit cut the run short. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import mlflow
import numpy as np
import psutil
import tensorflow as tf

from pipeline.common import tracking
from pipeline.images.datasets import load_split
from pipeline.serving.chain import restore_and_read

ROOT = Path(__file__).resolve().parents[1]

PHONE_DIGITS = 10
HOLE = 8
START_TIMEOUT_S = 180
REQUEST_TIMEOUT_S = 120
# A picture's digits are written GAP pixels (of 28) further apart than MNIST's frames leave them: side by side,
# ~0.7% of these numbers hold two digits closer than the gap an 8x8 hole cuts into one, and are refused.
GAP = 2
FLOOR_CALLS = 30  # in-process calls timed for the floor, after FLOOR_WARMUP untimed
FLOOR_WARMUP = 3


def phone_numbers(raw: Path, count: int, seed: int = 0) -> list[np.ndarray]:
    """`count` phone numbers, each ten distinct test digits (uint8 (10, 28, 28)) with an 8x8 piece of each lost."""
    images = load_split(raw, "test")[0]
    rng = np.random.default_rng(seed)
    numbers = []
    for _ in range(count):
        batch = images[rng.choice(len(images), PHONE_DIGITS, replace=False)].copy()
        for image, (row, col) in zip(batch, rng.integers(4, 28 - HOLE - 4, (PHONE_DIGITS, 2))):
            image[row : row + HOLE, col : col + HOLE] = 0
        numbers.append(batch)
    return numbers


def request(digits: np.ndarray, kind: str) -> tuple[dict, dict]:
    """(inputs, params) of one request: the framed digits, or the number written out as one PNG."""
    if kind == "array":
        return {"image": digits}, {}
    spaced = np.hstack([np.pad(digit, ((0, 0), (GAP, GAP))) for digit in digits])
    written = 255 - cv2.resize(spaced, None, fx=2, fy=2)  # dark ink on paper, 56x640
    picture = base64.b64encode(cv2.imencode(".png", written)[1].tobytes()).decode("ascii")
    return {"picture": picture}, {"digits": PHONE_DIGITS}


def request_body(inputs: dict, params: dict) -> bytes:
    jsonable = {name: value.tolist() if isinstance(value, np.ndarray) else value for name, value in inputs.items()}
    return json.dumps({"inputs": jsonable, **({"params": params} if params else {})}).encode()


def median_ms(call, arguments: list) -> float:
    """Median wall time of `call(*a)` over `arguments`, after FLOOR_WARMUP untimed calls."""
    for a in arguments[:FLOOR_WARMUP]:
        call(*a)
    times = []
    for a in arguments[:FLOOR_CALLS]:
        started = time.perf_counter()
        call(*a)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def floor_ms(model: str, numbers: list[np.ndarray], kind: str, threads: int) -> tuple[float, float]:
    """In this process, before the server starts: (the chain's predict on the requests' inputs, the networks
    alone on the same framed digits), median ms. What a request costs without HTTP, JSON and queueing, on as
    many TensorFlow threads as a server worker has."""
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    chain = mlflow.pyfunc.load_model(model)
    inner = chain.unwrap_python_model()
    whole = median_ms(lambda r: chain.predict(r[0], params=r[1] or None), [(request(n, kind),) for n in numbers])
    networks = median_ms(
        lambda n: restore_and_read(inner.generator, inner.classifier, inner.train_fill, n), [(n,) for n in numbers]
    )
    return whole, networks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, port: int, log: Path, workers: int, threads: int) -> subprocess.Popen:
    """`mlflow models serve` with `workers` workers, each TensorFlow (and its oneDNN kernels) on `threads` threads."""
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking.tracking_uri(),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "TF_NUM_INTRAOP_THREADS": str(threads),
        "TF_NUM_INTEROP_THREADS": str(threads),
        "OMP_NUM_THREADS": str(threads),
    }
    with log.open("w") as out:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "models",
                "serve",
                "-m",
                model,
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-w",
                str(workers),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the server did not answer /ping on port {port}; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                return server
        except OSError:
            time.sleep(1)


def server_rss_mib(server: subprocess.Popen) -> float:
    """Resident memory of the server and its children (`mlflow models serve` runs uvicorn as a child)."""
    process = psutil.Process(server.pid)
    return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20


def post(url: str, body: bytes) -> tuple[float, str | None]:
    """(seconds, None) for an answer of ten digits, else (seconds, what went wrong)."""
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
            digits = json.load(response)["predictions"]["digit"]
        problem = None if len(digits) == PHONE_DIGITS else f"{len(digits)} digits"
    except (OSError, ValueError, KeyError) as exc:
        problem = repr(exc)
    return time.perf_counter() - started, problem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models:/digit-restore-mnist@champion")
    parser.add_argument("--kind", choices=("array", "picture"), default="array", help="what each request sends")
    parser.add_argument("--raw", type=Path, default=ROOT / "data/raw", help="folder of the MNIST .gz files")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds for the counted requests")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1, help="server processes (docs/serving.md: 1 on 2 cores)")
    parser.add_argument("--threads", type=int, help="TensorFlow threads per worker (default: cores // workers)")
    args = parser.parse_args()
    threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)

    mlflow.set_tracking_uri(tracking.tracking_uri())
    numbers = phone_numbers(args.raw, args.warmup + args.requests)
    floor, networks = floor_ms(args.model, numbers, args.kind, threads)
    bodies = [request_body(*request(n, args.kind)) for n in numbers]
    port = free_port()
    url = f"http://127.0.0.1:{port}/invocations"
    server = start_server(args.model, port, Path(f"/tmp/digit-restore-load-{port}.log"), args.workers, threads)
    try:
        with ThreadPoolExecutor(args.clients) as pool:  # as many at once as counted: every worker warms up
            list(pool.map(lambda body: post(url, body), bodies[: args.warmup]))
        memory = [("after warm-up", server_rss_mib(server))]
        counted = bodies[args.warmup :]
        latencies, failures, lock = [], [], threading.Lock()
        next_index = iter(range(len(counted)))
        started = time.perf_counter()
        deadline = started + args.time_limit

        def client() -> None:
            while time.perf_counter() < deadline:
                with lock:
                    index = next(next_index, None)
                if index is None:
                    return
                seconds, problem = post(url, counted[index])
                with lock:
                    latencies.append(seconds)
                    if problem:
                        failures.append(problem)
                    if len(latencies) % max(1, len(counted) // 4) == 0 and len(latencies) < len(counted):
                        memory.append((f"after {len(latencies)} requests", server_rss_mib(server)))

        with ThreadPoolExecutor(args.clients) as pool:
            for _ in range(args.clients):
                pool.submit(client)
        wall = time.perf_counter() - started
        memory.append(("at the end", server_rss_mib(server)))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    done = len(latencies)
    p50, p99 = (np.percentile(latencies, q) * 1000 for q in (50, 99))
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
            if line.startswith("Model name")
        ),
        "unknown",
    )
    print(f"machine: {cpu}, {os.cpu_count()} cores; model {args.model}")
    print(f"server: {args.workers} worker(s), {threads} TensorFlow thread(s) each; requests: {args.kind}s")
    print(
        f"in-process floor, same requests: the chain's predict {floor:.1f} ms (the networks alone {networks:.1f} ms) "
        f"= {PHONE_DIGITS * 1000 / floor:.0f} digits/s on one process"
    )
    print(
        f"{args.clients} clients, {done}/{len(counted)} requests of {PHONE_DIGITS} digits in {wall:.1f} s "
        f"(limit {args.time_limit:.0f} s); failed: {len(failures)}"
    )
    print(
        f"throughput: {done / wall:.2f} requests/s = {done * PHONE_DIGITS / wall:.1f} digits/s "
        f"({done * floor / wall / 1000:.2f} x the floor's)"
    )
    print(
        f"latency: p50 {p50:.0f} ms ({p50 / floor:.1f} x the floor), p99 {p99:.0f} ms ({p99 / floor:.1f} x), "
        f"mean {statistics.fmean(latencies) * 1000:.0f} ms"
    )
    print("server memory (RSS): " + ", ".join(f"{label} {mib:.0f} MiB" for label, mib in memory))
    if failures:
        print(f"failures: {sorted(set(failures))[:5]}")
    sys.exit(1 if failures or done < len(counted) else 0)


if __name__ == "__main__":
    main()
