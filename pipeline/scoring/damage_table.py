"""The table of damage family x restorer that evaluate writes and the restoration benchmark prints.

The families are fixed here, not read from params.yaml: they are the yardstick that runs with other
params are compared on, and each is drawn from its own stream (masks.EVALUATION_STREAM), apart from
everything a restorer trained on. Every restoration is read by two readers of different architectures
(the judge and the second reader, pipeline/training/classifier.py), so no number rests on one model.
"""

from __future__ import annotations

import numpy as np

from pipeline.common.config import SquareDamage, StrokeDamage
from pipeline.images.masks import EVALUATION_STREAM, apply_masks, family_masks
from pipeline.scoring import classical
from pipeline.scoring import metrics as m
from pipeline.scoring.inference import forward, read
from pipeline.training.models import generator_input, is_blind

ANYWHERE = (2, 18)  # corner rows (and columns) over the digit: MNIST's ink lies in rows 4..23


def square(side: tuple[int, int], count: tuple[int, int], rows=ANYWHERE, cols=ANYWHERE) -> SquareDamage:
    """A family of square holes, each (min, max); weight 1, as the table scores each family alone."""
    return SquareDamage(
        "square", 1.0, *side, *count, row_min=rows[0], row_max=rows[1], col_min=cols[0], col_max=cols[1]
    )


FAMILIES = {
    "classic": square(side=(8, 8), count=(1, 1), rows=(8, 11), cols=(8, 11)),  # the chapter's
    "boxes": square(side=(4, 12), count=(1, 1)),  # one box of side 4 to 12 anywhere
    "small_boxes": square(side=(4, 6), count=(2, 3)),  # two or three small ones
    # One or two dropped pen segments of ~7 pixels: 36% of a digit's ink on average (the classic box hides 27%;
    # three segments of ~9 pixels hid 52%, erasing many a 1 whole: no longer a dropped piece of stroke).
    "strokes": StrokeDamage("strokes", 1.0, count_min=1, count_max=2, length=6, width=3),
}
READERS = ("judge", "second")
CHANGED = 0.1  # a pixel counts as repainted when it moved by more than this, pixel scale [0, 1]
ORACLE = "navier_stokes"  # OpenCV given the true hole: an oracle, the app never knows where the damage is


def family_holes(skeleton: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Each family's holes for the test images whose skeletons are given: one fixed draw per family."""
    return {
        name: family_masks(skeleton, family, np.random.default_rng([seed, EVALUATION_STREAM, i]))
        for i, (name, family) in enumerate(FAMILIES.items())
    }


def restore(generator, masked: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """The generator's restoration: a blind one gets the damaged images only, the others the holes too."""
    return forward(generator, generator_input(masked, None if is_blind(generator) else holes))


def readings(readers: dict, images: np.ndarray) -> dict[str, np.ndarray]:
    return {name: read(reader, images) for name, reader in readers.items()}


def row(
    images: np.ndarray,
    clean: np.ndarray,
    holes: np.ndarray,
    read: dict,
    labels,
    clean_accuracy: dict,
    masked_accuracy: dict,
) -> dict:
    """One restorer on one family: each reader's accuracy and recovered fraction, L1 in the damage and
    outside it (a blind restorer can repaint what was fine), and the share of undamaged pixels it changed."""
    accuracy = {r: m.accuracy(read[r], labels) for r in READERS}
    outside = np.abs(images - clean).squeeze(-1)[~holes] / 2.0
    return {
        **{f"accuracy_{r}": accuracy[r] for r in READERS},
        **{f"recovered_{r}": m.recovered_fraction(clean_accuracy[r], masked_accuracy[r], accuracy[r]) for r in READERS},
        "l1_damage": m.hole_mae(images, clean, holes),
        "l1_outside": float(outside.mean()),
        "changed_outside": float((outside > CHANGED).mean()),
    }


def table(generator, readers: dict, clean, labels, skeleton, seed: int, fill: float) -> dict:
    """{family: {"masked" | ORACLE | "restored": row}} on the test images `clean` (with their skeletons)."""
    clean_accuracy = {r: m.accuracy(p, labels) for r, p in readings(readers, clean).items()}
    result = {}
    for family, holes in family_holes(skeleton, seed).items():
        masked = apply_masks(clean, holes, fill)
        variants = {
            "masked": masked,
            ORACLE: classical.inpaint(masked, holes, ORACLE),
            "restored": restore(generator, masked, holes),
        }
        read = {v: readings(readers, images) for v, images in variants.items()}
        masked_accuracy = {r: m.accuracy(read["masked"][r], labels) for r in READERS}
        result[family] = {
            v: row(images, clean, holes, read[v], labels, clean_accuracy, masked_accuracy)
            for v, images in variants.items()
        }
    return result


def csv_rows(damage: dict) -> tuple[list[str], list[list]]:
    """(header, rows) of the table: one row per family, each restorer's accuracy by each reader."""
    pairs = [(v, r) for v in next(iter(damage.values())) for r in READERS]
    rows = [[family, *(f"{by[v][f'accuracy_{r}']:.4f}" for v, r in pairs)] for family, by in damage.items()]
    return ["family", *(f"{v}_{r}" for v, r in pairs)], rows
