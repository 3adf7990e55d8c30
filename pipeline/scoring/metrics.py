"""Scores of a restoration, computed from plain arrays so they can be checked by hand."""

from __future__ import annotations

import numpy as np


def accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(predicted == labels))


def recovered_fraction(clean: float, masked: float, restored: float) -> float | None:
    """Share of the accuracy lost to the mask that the restoration wins back; None when the mask cost nothing."""
    lost = clean - masked
    return (restored - masked) / lost if lost > 0 else None


def per_class_accuracy(predicted: np.ndarray, labels: np.ndarray, num_classes: int = 10) -> dict[str, float]:
    return {
        str(c): accuracy(predicted[labels == c], labels[labels == c]) for c in range(num_classes) if np.any(labels == c)
    }


def _hole_errors(images: np.ndarray, reference: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """Per-pixel differences inside the holes, in [0, 1] pixel units (images are in [-1, 1])."""
    return (images.squeeze(-1)[holes] - reference.squeeze(-1)[holes]) / 2.0


def hole_mae(images: np.ndarray, reference: np.ndarray, holes: np.ndarray) -> float:
    return float(np.mean(np.abs(_hole_errors(images, reference, holes))))


def hole_psnr(images: np.ndarray, reference: np.ndarray, holes: np.ndarray) -> float:
    """PSNR in dB over the hole pixels, peak 1.0; infinite for a perfect restoration is capped at 100 dB."""
    mse = float(np.mean(_hole_errors(images, reference, holes) ** 2))
    return 100.0 if mse == 0 else min(100.0, 10.0 * np.log10(1.0 / mse))


def phone_number_success(digit_accuracy: float, digits: int) -> float:
    """Probability that all `digits` digits of a phone number are read right, errors independent."""
    return digit_accuracy**digits


def flatten_metrics(metrics: dict, prefix: str = "") -> dict[str, float]:
    """Nested metrics.json -> `a.b.c` keys for MLflow, skipping values that are not numbers: the names
    `dvc metrics show` and the PR report give the same metrics."""
    flat = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, f"{name}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat
