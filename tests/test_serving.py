"""REST serving with MLflow itself: `mlflow models serve` on the champion chain, real HTTP round trips, good and bad:
arrays of framed digits, and pictures of a whole written number as the app sends them."""

from __future__ import annotations

import base64
import csv
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import cv2
import keras
import mlflow
import numpy as np
import pytest
from conftest import mirror_dir, offline_env
from test_restore_cli import digit_restore
from tracking_server import free_port

from pipeline.images.datasets import load_split
from pipeline.serving import chain
from pipeline.serving.chain_input import MAX_IMAGES
from pipeline.serving.picture import MAX_BYTES, MAX_DIGITS, MAX_PIXELS

pytestmark = pytest.mark.slow  # a tiny pipeline run and a real server


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

    # The same model loaded here answers the same, bit for bit: the server runs the registered chain, nothing else.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tiny_repo / 'mlflow.db'}")
    local = mlflow.pyfunc.load_model(MODEL).predict({"image": images})
    assert answer["digit"] == local["digit"].tolist()
    for key in ("restored", "damage", "confidence", "probabilities"):
        np.testing.assert_array_equal(np.array(answer[key], local[key].dtype), local[key], err_msg=key)


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
    "fill value out of range": (
        json.dumps({"inputs": {"image": BLANK.tolist()}, "params": {"fill_value": 300}}).encode(),
        "fill_value: must be in 0..255 (or -1 for none), got 300",
    ),
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


def test_the_compiled_chain_answers_as_keras_predict_did(tiny_repo, monkeypatch):
    """The chain now runs the networks as compiled calls (pipeline/scoring/inference.py); on the same inputs it
    answers as the previous path, Keras's `predict`, did. 300 images: more than one of predict's batches."""
    generator, classifier = (
        keras.models.load_model(tiny_repo / f) for f in ("data/gan/generator.keras", "data/classifier/model.keras")
    )
    images = load_split(mirror_dir() / "mnist", "test", 300)[0].copy()
    images[:, 10:18, 10:18] = 0
    compiled = chain.restore_and_read(generator, classifier, -1.0, images)
    monkeypatch.setattr(chain, "forward", lambda model, x: model.predict(x, verbose=0))
    keras_predict = chain.restore_and_read(generator, classifier, -1.0, images)
    for key in ("restored", "damage", "digit"):
        np.testing.assert_array_equal(compiled[key], keras_predict[key], err_msg=key)
    np.testing.assert_allclose(compiled["probabilities"], keras_predict["probabilities"], rtol=0, atol=1e-6)


def png(image: np.ndarray, extension: str = ".png") -> bytes:
    return cv2.imencode(extension, image)[1].tobytes()


def picture_request(data: bytes | str, **params) -> bytes:
    text = data if isinstance(data, str) else base64.b64encode(data).decode()
    return json.dumps({"inputs": {"picture": text}, **({"params": params} if params else {})}).encode()


@pytest.fixture(scope="module")
def phone_picture():
    """The first ten MNIST test digits as a written number: dark ink on white, twice MNIST's size, 56x560."""
    images = load_split(mirror_dir() / "mnist", "test", 10)[0]
    return 255 - cv2.resize(np.hstack(images), None, fx=2, fy=2)


def test_a_picture_of_a_number_is_answered_as_the_command_reads_the_same_file(
    server, tiny_repo, tmp_path, phone_picture
):
    (tmp_path / "number.png").write_bytes(png(phone_picture))
    status, answer = post(server, picture_request((tmp_path / "number.png").read_bytes(), digits=10))
    assert status == 200, answer
    answer = answer["predictions"]

    cli = digit_restore(
        tmp_path / "number.png",
        "--phone",
        "--model",
        MODEL,
        "--out",
        tmp_path / "out",
        cwd=tiny_repo,
        MLFLOW_TRACKING_URI=f"sqlite:///{tiny_repo / 'mlflow.db'}",
    )
    assert cli.returncode == 0, cli.stderr
    with (tmp_path / "out/predictions.csv").open(newline="") as f:
        [row] = list(csv.DictReader(f))
    assert len(answer["number"]) == 10 and answer["number"] == row["prediction"]
    assert answer["digit"] == [int(d) for d in row["prediction"]]
    np.testing.assert_allclose(answer["confidence"], [float(c) for c in row["digit_confidences"].split()], atol=1e-4)
    restored = cv2.imdecode(np.frombuffer(base64.b64decode(answer["restored"]), np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(restored, cv2.imread(row["restored"], cv2.IMREAD_UNCHANGED))  # 28x280, same pixels

    # Light ink on dark reads the same; no expected length: as many digits as the picture holds.
    status, inverted = post(server, picture_request(png(255 - phone_picture)))
    assert status == 200 and inverted["predictions"] == answer, inverted
    status, jpeg = post(server, picture_request(png(phone_picture, ".jpg"), digits=10))
    assert status == 200 and len(jpeg["predictions"]["number"]) == 10, jpeg


def ink_columns(image: np.ndarray) -> np.ndarray:
    """A digit cut to the columns of its ink, so that two side by side touch."""
    columns = np.flatnonzero(image.any(axis=0))
    return image[:, columns[0] : columns[-1] + 1]


BAD_PICTURES = [
    "not base64",
    "not an image",
    "empty",
    "blank",
    "over the pixel limit",
    "over the byte limit",
    "no digit",
    "digits touching",
    "more digits than allowed",
    "another count than expected",
    "an expected length out of range",
]


@pytest.fixture(scope="module")
def bad_pictures() -> dict[str, tuple[bytes, str]]:
    """Each bad picture's request and what its 400 must say."""
    images = load_split(mirror_dir() / "mnist", "test", MAX_DIGITS + 1)[0]
    white = np.full((56, 560), 255, np.uint8)
    speck = white.copy()
    speck[26:29, 100:103] = 0
    side = int(MAX_PIXELS**0.5) + 1
    touching = np.hstack([ink_columns(images[0]), ink_columns(images[1]), *images[2:10]])
    return {
        "not base64": (picture_request("a phone number!"), "picture: not base64"),
        "not an image": (picture_request(b"hello, this is no picture"), "picture: not a readable PNG or JPEG image"),
        "empty": (picture_request(""), "picture: empty; send the PNG or JPEG file, base64-encoded"),
        "blank": (picture_request(png(white)), "picture: blank: no ink stands out from the background"),
        "over the pixel limit": (
            picture_request(png(np.full((side, side), 255, np.uint8))),
            f"picture: {side}x{side} pixels",
        ),
        "over the byte limit": (picture_request(bytes(MAX_BYTES + 1)), f"at most {MAX_BYTES}; send a smaller file"),
        "no digit": (picture_request(png(speck)), "picture: no digit found: the tallest mark is 3 pixels high"),
        "digits touching": (picture_request(png(255 - touching)), "digits touching"),
        "more digits than allowed": (
            picture_request(png(255 - np.hstack(images))),
            f"picture: {MAX_DIGITS + 1} digits found, at most {MAX_DIGITS}",
        ),
        "another count than expected": (
            picture_request(png(255 - np.hstack(images[:9])), digits=10),
            "picture: found 9 digits (runs of ink separated by blank columns), expected 10",
        ),
        "an expected length out of range": (
            picture_request(png(255 - np.hstack(images[:10])), digits=MAX_DIGITS + 1),
            f"digits: the number's expected length, 1..{MAX_DIGITS}",
        ),
    }


@pytest.mark.parametrize("case", BAD_PICTURES)
def test_a_bad_picture_is_answered_400_and_the_next_picture_is_read(server, bad_pictures, phone_picture, case):
    body, problem = bad_pictures[case]
    status, answer = post(server, body)
    assert status == 400 and problem in answer["message"], answer
    assert len(answer["message"]) < 300
    status, answer = post(server, picture_request(png(phone_picture), digits=10))
    assert status == 200 and len(answer["predictions"]["number"]) == 10, answer
