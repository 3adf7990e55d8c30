"""REST serving with MLflow itself: `mlflow models serve` on the champion chain, real HTTP round trips, good and bad."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import mlflow
import numpy as np
import pytest
from conftest import mirror_dir, offline_env
from tracking_server import free_port

from pipeline.images.datasets import load_split
from pipeline.serving.chain_input import MAX_IMAGES

pytestmark = pytest.mark.slow  # builds or runs a pipeline, or starts a server

MODEL = "models:/digit-restore-mnist@champion"
START_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def server(tiny_repo, tmp_path_factory):
    """`mlflow models serve` on 127.0.0.1 and a free port, against the tiny run's store; stopped afterwards."""
    port = free_port()
    log = (tmp_path_factory.mktemp("serve") / "server.log").open("w")
    env = offline_env(MLFLOW_TRACKING_URI=f"sqlite:///{tiny_repo / 'mlflow.db'}")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            MODEL,
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            "1",
        ],
        cwd=tiny_repo,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert process.poll() is None, f"the server exited ({process.returncode}); see {log.name}"
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, f"no answer on {url}/ping after {START_TIMEOUT_S} s; see {log.name}"
                time.sleep(1)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # its own session: the server and its uvicorn worker
        process.wait(timeout=30)
        log.close()


def test_invocations_answer_with_the_restoration_and_the_digits(server, tiny_repo, monkeypatch):
    """The default chain is blind: it gets the damaged image alone (no mask) and finds the damage itself."""
    images = load_split(mirror_dir() / "mnist", "test", 4)[0].copy()
    images[:, 10:18, 10:18] = 0  # damaged, and nobody says where
    body = json.dumps({"inputs": {"image": images.tolist()}}).encode()
    request = urllib.request.Request(f"{server}/invocations", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.load(response)["predictions"]

    restored = np.array(answer["restored"])
    assert restored.shape == (4, 28, 28) and restored.min() >= 0 and restored.max() <= 255
    damage = np.array(answer["damage"])
    assert np.array_equal(damage == 255, np.abs(restored - images.astype(int)) > 25)  # what it found and filled
    probabilities = np.array(answer["probabilities"])
    assert probabilities.shape == (4, 10) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    assert answer["digit"] == list(probabilities.argmax(axis=1))
    assert np.allclose(answer["confidence"], probabilities.max(axis=1))

    # The same model loaded here reads the same digits: the server runs the registered chain, nothing else.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tiny_repo / 'mlflow.db'}")
    local = mlflow.pyfunc.load_model(MODEL).predict({"image": images})
    assert answer["digit"] == local["digit"].tolist()
    assert np.array_equal(restored, local["restored"])


def post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(f"{url}/invocations", body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def inputs(**fields) -> bytes:
    return json.dumps({"inputs": {name: np.asarray(value).tolist() for name, value in fields.items()}}).encode()


BLANK = np.zeros((2, 28, 28), np.uint8)
BAD_REQUESTS = {  # the default chain is blind: its one field is `image`, so a missing `mask` is no error
    "malformed JSON": (b'{"inputs": {"image": [[0, 1', "Ensure that input is a valid JSON formatted string"),
    "no image": (inputs(mask=BLANK), "missing field(s) image: this chain restores blind and takes image"),
    "wrong side": (inputs(image=BLANK[:, :27]), "image: expected shape (n, 28, 28), got (2, 27, 28)"),
    "one image, not a batch": (inputs(image=BLANK[0]), "got (28, 28) (one image is a batch of one: wrap it in a list)"),
    "ragged rows": (json.dumps({"inputs": {"image": [[[0] * 28] * 27 + [[0] * 5]]}}).encode(), "inhomogeneous shape"),
    "above 255": (
        inputs(image=BLANK.astype(int) + np.eye(28, dtype=int) * 300),
        "image: pixel values must be 0..255, got values from 0 to 300",
    ),
    "below 0": (inputs(image=BLANK.astype(int) - 1), "image: pixel values must be 0..255, got values from -1 to -1"),
    "fractions": (inputs(image=BLANK + 0.5), "image: pixel values must be whole numbers 0..255, got fractions"),
    "empty batch": (inputs(image=[]), "image: the batch is empty; send at least one 28x28 image"),
    "oversized": (
        inputs(image=np.zeros((MAX_IMAGES + 1, 28, 28), np.uint8)),
        f"image: {MAX_IMAGES + 1} images in one request; at most {MAX_IMAGES}, send the rest in another",
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_a_bad_request_is_answered_400_with_what_is_wrong(server, case):
    body, problem = BAD_REQUESTS[case]
    status, answer = post(server, body)
    assert status == 400 and problem in answer["message"], answer
    assert len(answer["message"]) < 300  # the problem alone, not the request's arrays echoed back


def test_the_server_still_answers_after_the_bad_requests(server, tiny_repo, monkeypatch):
    images = load_split(mirror_dir() / "mnist", "test", 10)[0]
    status, answer = post(server, inputs(image=images))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tiny_repo / 'mlflow.db'}")
    assert (
        status == 200
        and answer["predictions"]["digit"]
        == mlflow.pyfunc.load_model(MODEL).predict({"image": images})["digit"].tolist()
    )
