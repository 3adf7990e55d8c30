"""Simulated damage: square holes at random positions, drawn from a seeded generator."""

from __future__ import annotations

import numpy as np

from pipeline.config import IMAGE_SIDE, MaskParams

SPLIT_STREAMS = {"train": 0, "test": 1}


def split_rng(seed: int, split: str) -> np.random.Generator:
    """One independent stream per split, so the test masks do not change when the train subset does."""
    return np.random.default_rng([seed, SPLIT_STREAMS[split]])


def square_masks(n: int, mask: MaskParams, rng: np.random.Generator) -> np.ndarray:
    """Boolean (n, 28, 28), True inside the holes; each hole's top-left corner is uniform in the param ranges."""
    axis = np.arange(IMAGE_SIDE)
    holes = np.zeros((n, IMAGE_SIDE, IMAGE_SIDE), dtype=bool)
    for _ in range(mask.count):
        rows = rng.integers(mask.row_min, mask.row_max + 1, size=n)
        cols = rng.integers(mask.col_min, mask.col_max + 1, size=n)
        in_rows = (axis >= rows[:, None]) & (axis < rows[:, None] + mask.size)
        in_cols = (axis >= cols[:, None]) & (axis < cols[:, None] + mask.size)
        holes |= in_rows[:, :, None] & in_cols[:, None, :]
    return holes


def apply_masks(images: np.ndarray, holes: np.ndarray, fill: float) -> np.ndarray:
    """Images (n, 28, 28, 1) in [-1, 1] with every hole pixel set to `fill`."""
    return np.where(holes[..., None], np.float32(fill), images).astype(np.float32)
