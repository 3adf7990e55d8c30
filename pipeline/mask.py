"""Stage 2: scale images to [-1, 1] and damage them; save damaged images, boolean masks and skeletons per split.

The damage is one fixed draw per split from the families of params `mask`. The skeletons (the centre
lines of each digit's ink) are saved beside them, so that training can lay new strokes every epoch
without computing them again. pipeline/images/splits.py reads it all back, beside the clean images.
"""

from __future__ import annotations

import sys

from pipeline.common import paths
from pipeline.common.atomic import save_npz
from pipeline.common.cli import run_stage
from pipeline.common.config import Params
from pipeline.images.datasets import SPLITS, load_split, split_limit, to_unit_range
from pipeline.images.masks import apply_masks, draw_damage, skeletons, split_rng


def main(params: Params) -> None:
    for split in SPLITS:
        images, _ = load_split(paths.RAW_DIR, split, split_limit(params.data, split))
        skeleton = skeletons(images)
        holes = draw_damage(skeleton, params.mask.families, split_rng(params.mask.seed, split))
        masked = apply_masks(to_unit_range(images), holes, params.mask.fill)
        save_npz(paths.MASKED_DIR / f"{split}.npz", masked=masked, mask=holes, skeleton=skeleton)
        print(f"{split}: {len(images)} images, {holes.mean():.1%} of pixels hidden")


if __name__ == "__main__":
    sys.exit(run_stage(main, "mask"))
