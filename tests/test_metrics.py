import numpy as np
import pytest

from pipeline.scoring import metrics


def test_accuracy_and_per_class():
    labels = np.array([0, 0, 1, 1, 1, 2])
    predicted = np.array([0, 1, 1, 1, 0, 2])
    assert metrics.accuracy(predicted, labels) == pytest.approx(4 / 6)
    assert metrics.per_class_accuracy(predicted, labels, 4) == {"0": 0.5, "1": pytest.approx(2 / 3), "2": 1.0}


def test_recovered_fraction():
    assert metrics.recovered_fraction(clean=0.99, masked=0.75, restored=0.93) == pytest.approx(0.75)
    assert metrics.recovered_fraction(clean=0.99, masked=0.75, restored=0.70) == pytest.approx(-5 / 24)
    assert metrics.recovered_fraction(clean=0.9, masked=0.9, restored=0.95) is None


def test_hole_errors_only_count_hole_pixels():
    reference = np.full((1, 28, 28, 1), -1.0, dtype=np.float32)
    image = reference.copy()
    image[0, 5:25, 5:25, 0] = 1.0  # wrong outside the hole: must not count
    holes = np.zeros((1, 28, 28), dtype=bool)
    holes[0, 0:2, 0:2] = True
    image[0, 0, 0, 0] = 0.0  # one hole pixel off by half the range
    assert metrics.hole_mae(image, reference, holes) == pytest.approx(0.5 / 4)
    assert metrics.hole_psnr(image, reference, holes) == pytest.approx(10 * np.log10(1 / (0.25 / 4)))
    assert metrics.hole_psnr(reference, reference, holes) == 100.0


def test_phone_number_success():
    assert metrics.phone_number_success(0.9, 10) == pytest.approx(0.3486784401)
    assert metrics.phone_number_success(1.0, 10) == 1.0


def test_flatten_metrics_keeps_numbers_only():
    nested = {"accuracy": {"clean": 0.9}, "recovered_fraction": None, "per_class": {"3": {"masked": 0.5}}, "n": 4}
    assert metrics.flatten_metrics(nested) == {"accuracy.clean": 0.9, "per_class.3.masked": 0.5, "n": 4.0}
