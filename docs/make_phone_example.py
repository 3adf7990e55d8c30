"""Make docs/images/phone_number.png: the first ten MNIST test digits (7210414959) as one phone number, dark
ink on paper, 56x560, two of whose digits lost pieces of their strokes, as the iPad drops missed touches.

    DIGIT_RESTORE_MIRROR=../shared/datasets python docs/make_phone_example.py

Nobody marks where: `digit-restore docs/images/phone_number.png --phone --show-damage` reads it without a box.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from pipeline.common.config import StrokeDamage
from pipeline.images.datasets import load_split
from pipeline.images.masks import skeletons, stroke_masks

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs/images/phone_number.png"
DAMAGED = (1, 6)  # the second digit (a 2) and the seventh (a 4), counted from 0
PIECES = StrokeDamage("strokes", 1.0, 1, 1, 8, 3)  # one dropped pen segment each, ~9 pixels long, a pen width
SEED = 2026


def main() -> None:
    mirror = Path(os.environ.get("DIGIT_RESTORE_MIRROR", ROOT.parent / "shared/datasets"))
    mirror = mirror if mirror.is_absolute() else ROOT / mirror
    images, labels = load_split(mirror / "mnist", "test", 10)
    lost = np.zeros(images.shape, bool)
    lost[list(DAMAGED)] = stroke_masks(skeletons(images[list(DAMAGED)]), PIECES, np.random.default_rng(SEED))
    damaged = np.where(lost, 0, images)
    cv2.imwrite(str(OUT), 255 - cv2.resize(np.hstack(damaged), None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR))
    print(
        f"wrote {OUT.relative_to(ROOT)}: {''.join(map(str, labels))}; the digits at {DAMAGED} lost "
        f"{int((lost & (images > 0)).sum())} pixels of ink"
    )


if __name__ == "__main__":
    main()
