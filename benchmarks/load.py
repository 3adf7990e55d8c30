"""Load test of the REST endpoint: `mlflow models serve` on the chain, N concurrent clients posting phone numbers.

    python benchmarks/load.py [--model models:/digit-restore-mnist@champion] [--clients 4] [--requests 400]
        [--time-limit 600] [--warmup 8] [--raw data/raw]

The model comes from the pipeline's store ($MLFLOW_TRACKING_URI, else the repository's mlflow.db). Starts
the server itself on 127.0.0.1 (one worker, as docs/serving.md's "Serve over REST" runs it) and sends it nothing but
loopback traffic. Each request is one 10-digit phone number: ten test images of --raw (the download stage's
output), each with an 8x8 piece lost at a random place (seed 0), no mask (the default chain is blind). After
--warmup requests (not counted), --clients threads send --requests requests in all, each client its next one
as soon as its last is answered; the run stops at --time-limit seconds whatever is left. Prints the machine,
the throughput (requests and digits per second), the latency p50 / p99, the failed requests, and the resident
memory of the server's processes after the warm-up, at each quarter and at the end. Exits 1 if a request
failed, was not answered with ten digits, or the time limit cut the run short. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
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

import numpy as np
import psutil

from pipeline.common import tracking
from pipeline.images.datasets import load_split

ROOT = Path(__file__).resolve().parents[1]

PHONE_DIGITS = 10
HOLE = 8
START_TIMEOUT_S = 180
REQUEST_TIMEOUT_S = 120


def phone_numbers(raw: Path, count: int, seed: int = 0) -> list[bytes]:
    """`count` request bodies, each ten distinct test digits with an 8x8 piece of each lost."""
    images = load_split(raw, "test")[0]
    rng = np.random.default_rng(seed)
    bodies = []
    for _ in range(count):
        batch = images[rng.choice(len(images), PHONE_DIGITS, replace=False)].copy()
        for image, (row, col) in zip(batch, rng.integers(4, 28 - HOLE - 4, (PHONE_DIGITS, 2))):
            image[row : row + HOLE, col : col + HOLE] = 0
        bodies.append(json.dumps({"inputs": {"image": batch.tolist()}}).encode())
    return bodies


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, port: int, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking.tracking_uri(),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "TF_CPP_MIN_LOG_LEVEL": "2",
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
                "1",
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
    parser.add_argument("--raw", type=Path, default=ROOT / "data/raw", help="folder of the MNIST .gz files")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds for the counted requests")
    parser.add_argument("--warmup", type=int, default=8)
    args = parser.parse_args()

    bodies = phone_numbers(args.raw, args.warmup + args.requests)
    port = free_port()
    url = f"http://127.0.0.1:{port}/invocations"
    server = start_server(args.model, port, Path(f"/tmp/digit-restore-load-{port}.log"))
    try:
        for body in bodies[: args.warmup]:
            post(url, body)
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
    print(
        f"{args.clients} clients, {done}/{len(counted)} requests of {PHONE_DIGITS} digits in {wall:.1f} s "
        f"(limit {args.time_limit:.0f} s); failed: {len(failures)}"
    )
    print(f"throughput: {done / wall:.2f} requests/s = {done * PHONE_DIGITS / wall:.1f} digits/s")
    print(f"latency: p50 {p50:.0f} ms, p99 {p99:.0f} ms, mean {statistics.fmean(latencies) * 1000:.0f} ms")
    print("server memory (RSS): " + ", ".join(f"{label} {mib:.0f} MiB" for label, mib in memory))
    if failures:
        print(f"failures: {sorted(set(failures))[:5]}")
    sys.exit(1 if failures or done < len(counted) else 0)


if __name__ == "__main__":
    main()
