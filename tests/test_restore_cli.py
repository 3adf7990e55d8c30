"""`digit-restore`, the console script, on real PNG files, with the models of the tiny pipeline run."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import mirror_dir, offline_env

from pipeline.images.datasets import load_split

# The console script `pip install -e .` made: beside this Python, or on PATH (a --user install).
CLI = Path(sys.executable).parent / "digit-restore"
CLI = CLI if CLI.is_file() else Path(shutil.which("digit-restore") or CLI)
BOX = (10, 10, 8, 8)


def digit_restore(*args, cwd: Path, **env) -> subprocess.CompletedProcess:
    assert CLI.is_file(), f"{CLI} missing: install the project (pip install -e .) so its console script exists"
    return subprocess.run([str(CLI), *map(str, args)], cwd=cwd, env=offline_env(**env), capture_output=True, text=True)


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def test_digits():
    return load_split(mirror_dir() / "mnist", "test", 10)


@pytest.fixture(scope="module")
def classifier(tiny_repo):
    import keras

    return keras.models.load_model(tiny_repo / "data/classifier/model.keras")


def reading(classifier, images: np.ndarray) -> np.ndarray:
    return classifier.predict((images.astype(np.float32)[..., None] / 127.5) - 1.0, verbose=0)


@pytest.mark.slow
def test_a_folder_of_pngs_comes_back_restored_and_read(tiny_repo, tmp_path, test_digits, classifier):
    images, _ = test_digits
    folder = tmp_path / "digits"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"digit{i}.png"), images[i])
    result = digit_restore(folder, "--box", ",".join(map(str, BOX)), "--out", tmp_path / "out", cwd=tiny_repo)
    assert result.returncode == 0, result.stderr

    rows = read_csv(tmp_path / "out/predictions.csv")
    assert [Path(r["file"]).name for r in rows] == ["digit0.png", "digit1.png", "digit2.png"]
    row, col, h, w = BOX
    hole = np.zeros((28, 28), bool)
    hole[row : row + h, col : col + w] = True
    restored = np.stack([cv2.imread(r["restored"], cv2.IMREAD_UNCHANGED) for r in rows])
    assert restored.shape == (3, 28, 28) and restored.dtype == np.uint8
    assert np.array_equal(restored[:, ~hole], images[:3, ~hole])  # every known pixel kept
    assert not np.array_equal(restored[:, hole], np.zeros_like(restored[:, hole]))  # the hole was filled
    probabilities = reading(classifier, restored)  # the CSV says what the classifier reads in the PNG
    assert [int(r["prediction"]) for r in rows] == list(probabilities.argmax(axis=1))
    assert np.allclose([float(r["confidence"]) for r in rows], probabilities.max(axis=1), atol=1e-4)
    assert all(int(r["hole_pixels"]) == h * w for r in rows)


@pytest.mark.slow
def test_a_phone_number_is_split_and_read_as_a_whole(tiny_repo, tmp_path, test_digits, classifier):
    images, _ = test_digits
    scan = 255 - cv2.resize(np.hstack(images), None, fx=2, fy=2)  # dark ink on paper, 56x560
    cv2.imwrite(str(tmp_path / "number.jpg"), scan)
    result = digit_restore(
        tmp_path / "number.jpg", "--phone", "--box", "16,70,20,20", "--out", tmp_path / "out", cwd=tiny_repo
    )
    assert result.returncode == 0, result.stderr

    [row] = read_csv(tmp_path / "out/predictions.csv")
    strip = cv2.imread(row["restored"], cv2.IMREAD_UNCHANGED)
    assert strip.shape == (28, 280)
    cells = np.stack(np.hsplit(strip, 10))
    probabilities = reading(classifier, cells)
    assert row["prediction"] == "".join(str(d) for d in probabilities.argmax(axis=1))
    confidences = [float(c) for c in row["digit_confidences"].split()]
    assert np.allclose(confidences, probabilities.max(axis=1), atol=1e-4)
    assert float(row["confidence"]) == pytest.approx(np.prod(confidences), abs=1e-4)
    assert 0 < int(row["hole_pixels"]) <= 10 * 10  # the 20x20 box lies inside the second digit, now half size


@pytest.mark.slow
def test_without_a_box_the_blind_restorer_finds_the_damage_and_shows_it(tiny_repo, tmp_path, test_digits, classifier):
    """Real digits that lost pieces of their strokes, as PNGs, no hole given: restored, read, damage written."""
    from pipeline.images.masks import skeletons, stroke_masks
    from pipeline.scoring.damage_table import FAMILIES

    images, _ = test_digits
    lost = stroke_masks(skeletons(images[:3]), FAMILIES["strokes"], np.random.default_rng(5))
    folder = tmp_path / "scans"
    folder.mkdir()
    for i, damaged in enumerate(np.where(lost, 0, images[:3])):
        cv2.imwrite(str(folder / f"scan{i}.png"), damaged)
    result = digit_restore(folder, "--show-damage", "--out", tmp_path / "out", cwd=tiny_repo)
    assert result.returncode == 0, result.stderr

    rows = read_csv(tmp_path / "out/predictions.csv")
    assert [Path(r["file"]).name for r in rows] == ["scan0.png", "scan1.png", "scan2.png"]
    assert all(int(r["hole_pixels"]) == 0 for r in rows)  # nobody marked anything
    damaged = np.stack([cv2.imread(str(folder / f"scan{i}.png"), cv2.IMREAD_UNCHANGED) for i in range(3)])
    restored = np.stack([cv2.imread(r["restored"], cv2.IMREAD_UNCHANGED) for r in rows])
    found = np.stack([cv2.imread(str(tmp_path / f"out/scan{i}_damage.png"), cv2.IMREAD_UNCHANGED) for i in range(3)])
    assert restored.shape == found.shape == (3, 28, 28) and set(np.unique(found)) <= {0, 255}
    np.testing.assert_array_equal(found == 255, np.abs(restored.astype(int) - damaged) > 25)  # what it repainted
    probabilities = reading(classifier, restored)
    assert [int(r["prediction"]) for r in rows] == list(probabilities.argmax(axis=1))


@pytest.mark.slow
def test_a_generator_told_the_hole_refuses_to_run_without_one(tiny_repo, tmp_path, test_digits):
    from pipeline.training.models import build_generator

    project = tmp_path / "project"
    (project / "data/gan").mkdir(parents=True)
    shutil.copytree(tiny_repo / "data/classifier", project / "data/classifier")
    shutil.copy2(tiny_repo / "params.yaml", project / "params.yaml")
    build_generator("unet", mask_channel=True, composite=True).save(project / "data/gan/generator.keras")
    cv2.imwrite(str(tmp_path / "digit.png"), test_digits[0][0])
    result = digit_restore(tmp_path / "digit.png", "--project", project, "--out", tmp_path / "out", cwd=tmp_path)
    assert result.returncode == 2
    assert "trained with the hole as an input (gan.recipe given_hole)" in result.stderr
    assert "--box" in result.stderr and not (tmp_path / "out").exists()
    boxed = digit_restore(
        tmp_path / "digit.png", "--project", project, "--box", "10,10,8,8", "--out", tmp_path / "out", cwd=tmp_path
    )
    assert boxed.returncode == 0, boxed.stderr


@pytest.mark.slow
def test_a_registered_model_restores_too(tiny_repo, tmp_path, test_digits):
    images, _ = test_digits
    cv2.imwrite(str(tmp_path / "digit.png"), images[0])
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tiny_repo / 'mlflow.db'}"}
    model = ["--model", "models:/digit-restore-mnist@champion"]
    result = digit_restore(tmp_path / "digit.png", "--out", tmp_path / "out", *model, cwd=tmp_path, **env)  # no data/
    assert result.returncode == 0, result.stderr
    [row] = read_csv(tmp_path / "out/predictions.csv")
    assert cv2.imread(row["restored"], cv2.IMREAD_UNCHANGED).shape == (28, 28)
    assert row["prediction"] in list("0123456789") and 0 < float(row["confidence"]) <= 1
    boxed = digit_restore(
        tmp_path / "digit.png", "--box", "10,10,8,8", "--out", tmp_path / "boxed", *model, cwd=tmp_path, **env
    )
    assert boxed.returncode == 2 and "restores blind: it takes the image alone" in boxed.stderr


def bad_inputs(tmp: Path) -> dict:
    """name -> (args, the message expected after 'error: '), for inputs that must be refused."""
    cv2.imwrite(str(tmp / "digit.png"), np.zeros((28, 28), np.uint8))
    cv2.imwrite(str(tmp / "wide_mask.png"), np.zeros((28, 40), np.uint8))
    (tmp / "notes.png").write_text("not an image")
    (tmp / "empty").mkdir()
    return {
        "unreadable": (
            [tmp / "notes.png", "--box", "1,1,2,2"],
            f"{tmp / 'notes.png'}: not a readable PNG or JPEG image",
        ),
        "missing": ([tmp / "nowhere.png"], f"{tmp / 'nowhere.png'}: no such file"),
        "empty folder": ([tmp / "empty"], f"{tmp / 'empty'}: the folder holds no PNG or JPEG images"),
        "mask size": (
            [tmp / "digit.png", "--mask", tmp / "wide_mask.png"],
            f"{tmp / 'wide_mask.png'}: the mask is 40x28 (width x height) but {tmp / 'digit.png'} is 28x28",
        ),
        "box outside": ([tmp / "digit.png", "--box", "20,20,10,4"], "--box 20,20,10,4: leaves"),
        "bad box": ([tmp / "digit.png", "--box", "2,x,3,3"], "--box: expected four integers"),
        "fill value": (
            [tmp / "digit.png", "--fill-value", "300"],
            "--fill-value: must be in 0..255 (or -1 for none), got 300",
        ),
        "phone digits": ([tmp / "digit.png", "--phone"], f"{tmp / 'digit.png'}: blank: no ink stands out"),
        "no models": ([tmp / "digit.png"], "data/gan/generator.keras, data/classifier/model.keras: not found"),
        "overwrite": ([tmp / "digit.png", "--out", tmp], f"--out {tmp}: the restored PNG would overwrite the input"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "unreadable",
        "missing",
        "empty folder",
        "mask size",
        "box outside",
        "bad box",
        "fill value",
        "phone digits",
        "no models",
        "overwrite",
    ],
)
def test_bad_input_is_refused_with_a_clear_error(tmp_path, case):
    args, message = bad_inputs(tmp_path)[case]
    # No data/ in tmp_path: no models either. argparse keeps the last --out: the "overwrite" case's own.
    result = digit_restore("--out", tmp_path / "out", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {message}"), result.stderr
    assert not (tmp_path / "out").exists()  # nothing written
