"""Simulated damage, drawn from a seeded generator: square holes, dropped pen strokes, and mixtures of them.

Every family returns boolean holes (n, 28, 28), True where pixels are lost; `apply_masks` writes the fill
value (the background's own, by default) into them, so the damaged image alone does not show where they are.
Strokes are laid along each digit's skeleton, computed once per image (`skeletons`), so drawing new damage
every epoch costs array operations only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.morphology import skeletonize

from pipeline.common.config import Damage, SquareDamage
from pipeline.common.image import IMAGE_SIDE

# Independent streams per purpose, so that e.g. the test damage does not change when the train subset does.
SPLIT_STREAMS = {"train": 0, "test": 1}
TRAINING_STREAM = 2  # the compiled loop: the damage of each training batch
EVALUATION_STREAM = 3  # evaluate's fixed families, drawn apart from everything the restorer trained on
INK_LEVEL = 127  # uint8 pixels above this are ink, for the skeleton

_AXIS = np.arange(IMAGE_SIDE)


def split_rng(seed: int, split: str) -> np.random.Generator:
    """One independent stream per split, so the test masks do not change when the train subset does."""
    return np.random.default_rng([seed, SPLIT_STREAMS[split]])


def skeletons(images: np.ndarray) -> np.ndarray:
    """Boolean (n, 28, 28): the one-pixel-wide centre lines of each image's ink (uint8 (n, 28, 28))."""
    return (
        np.stack([skeletonize(image > INK_LEVEL) for image in images]) if len(images) else np.zeros((0, 28, 28), bool)
    )


def square_masks(n: int, family: SquareDamage, rng: np.random.Generator) -> np.ndarray:
    """Boolean (n, 28, 28): per image, count_min..count_max squares of side side_min..side_max, each corner
    uniform in its range clipped so that the square stays inside the image."""
    holes = np.zeros((n, IMAGE_SIDE, IMAGE_SIDE), dtype=bool)
    counts = rng.integers(family.count_min, family.count_max + 1, size=n)
    for k in range(family.count_max):
        sides = rng.integers(family.side_min, family.side_max + 1, size=n)
        rows = rng.integers(family.row_min, np.minimum(family.row_max, IMAGE_SIDE - sides) + 1)
        cols = rng.integers(family.col_min, np.minimum(family.col_max, IMAGE_SIDE - sides) + 1)
        in_rows = (rows[:, None] <= _AXIS) & ((rows + sides)[:, None] > _AXIS)
        in_cols = (cols[:, None] <= _AXIS) & ((cols + sides)[:, None] > _AXIS)
        holes |= in_rows[:, :, None] & in_cols[:, None, :] & (k < counts)[:, None, None]
    return holes


def _dilate(masks: np.ndarray, width: int) -> np.ndarray:
    """Each True pixel grown to a width x width square (centred; the extra pixel of an even width goes down-right)."""
    if width == 1:
        return masks
    before, after = (width - 1) // 2, width // 2
    padded = np.pad(masks, ((0, 0), (before, after), (before, after)))
    grown = np.zeros_like(masks)
    for dr in range(width):
        for dc in range(width):
            grown |= padded[:, dr : dr + IMAGE_SIDE, dc : dc + IMAGE_SIDE]
    return grown


def stroke_masks(skeleton: np.ndarray, family, rng: np.random.Generator) -> np.ndarray:
    """Boolean (n, 28, 28): per image, count_min..count_max pieces of its strokes. A piece is the skeleton
    within length // 2 pixels (Chebyshev) of a skeleton pixel drawn uniformly, thickened to `width`: a
    stretch of the pen's path, the ink a missed run of touch events leaves out. No ink, no damage."""
    n = len(skeleton)
    flat = skeleton.reshape(n, -1)
    running = flat.cumsum(axis=1, dtype=np.int16)
    total = running[:, -1]
    counts = rng.integers(family.count_min, family.count_max + 1, size=n)
    radius = family.length // 2
    pieces = np.zeros_like(skeleton)
    for k in range(family.count_max):
        pick = np.floor(rng.random(n) * total).astype(np.int16)  # the pick-th skeleton pixel, 0-based
        centre = (running > pick[:, None]).argmax(axis=1)
        near_rows = np.abs(_AXIS - (centre // IMAGE_SIDE)[:, None]) <= radius
        near_cols = np.abs(_AXIS - (centre % IMAGE_SIDE)[:, None]) <= radius
        drawn = ((k < counts) & (total > 0))[:, None, None]
        pieces |= skeleton & near_rows[:, :, None] & near_cols[:, None, :] & drawn
    return _dilate(pieces, family.width)


def family_masks(skeleton: np.ndarray, family: Damage, rng: np.random.Generator) -> np.ndarray:
    """The holes of one family for the images whose skeletons are given."""
    if isinstance(family, SquareDamage):
        return square_masks(len(skeleton), family, rng)
    return stroke_masks(skeleton, family, rng)


def draw_damage(skeleton: np.ndarray, families: dict[str, Damage], rng: np.random.Generator) -> np.ndarray:
    """Boolean (n, 28, 28): each image's family drawn by weight, then its holes from that family."""
    names = list(families)
    weights = np.array([families[name].weight for name in names], dtype=np.float64)
    chosen = rng.choice(len(names), size=len(skeleton), p=weights / weights.sum())
    holes = np.zeros(skeleton.shape, dtype=bool)
    for i, name in enumerate(names):
        picked = chosen == i
        if picked.any():
            holes[picked] = family_masks(skeleton[picked], families[name], rng)
    return holes


def apply_masks(images: np.ndarray, holes: np.ndarray, fill: float) -> np.ndarray:
    """Images (n, 28, 28, 1) in [-1, 1] with every hole pixel set to `fill`."""
    return np.where(holes[..., None], np.float32(fill), images).astype(np.float32)


@dataclass(frozen=True)
class MaskedSplit:
    """One split's images with their damage: what the mask stage saves (pipeline/images/splits.py reads it back) and
    what training and scoring take."""

    clean: np.ndarray  # float32 (n, 28, 28, 1) in [-1, 1]
    labels: np.ndarray  # uint8 (n,)
    masked: np.ndarray  # float32 (n, 28, 28, 1): the damaged images
    holes: np.ndarray  # bool (n, 28, 28): True where the damage is
    skeleton: np.ndarray  # bool (n, 28, 28): the centre lines of the clean ink
