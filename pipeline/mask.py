"""Stage 2: scale images to [-1, 1] and damage them; save damaged images, boolean masks and skeletons per split.

The damage is one fixed draw per split from the families of params `mask`. The skeletons (the centre
lines of each digit's ink) are saved beside them, so that training can lay new strokes every epoch
without computing them again. `load_masked_split` reads it all back, beside the clean images.
"""

from __future__ import annotations

import sys

from pipeline.common import paths
from pipeline.common.atomic import load_npz, save_npz
from pipeline.common.cli import run_stage
from pipeline.common.config import Params
from pipeline.common.errors import PipelineError
from pipeline.images.datasets import load_split, to_unit_range
from pipeline.images.masks import (
    MaskedSplit,
    apply_masks,
    draw_damage,
    skeletons,
    split_rng,
)

SPLITS = ("train", "test")


def split_limit(params: Params, split: str) -> int | None:
    return params.data.max_train if split == "train" else params.data.max_test


def load_masked_split(params: Params, split: str) -> MaskedSplit:
    """Everything the later stages know of `split`, checked to belong together."""
    images, labels = load_split(paths.RAW_DIR, split, split_limit(params, split))
    path = paths.MASKED_DIR / f"{split}.npz"
    saved = load_npz(path)
    if len(saved["masked"]) != len(images) or "skeleton" not in saved:
        raise PipelineError(
            f"{path} holds {len(saved['masked'])} images but {paths.RAW_DIR} gives {len(images)} for "
            f"data.max_{split}={split_limit(params, split)}, or was made by an older mask stage; "
            "rerun the mask stage (dvc repro)"
        )
    return MaskedSplit(to_unit_range(images), labels, saved["masked"], saved["mask"], saved["skeleton"])


def main(params: Params) -> None:
    for split in SPLITS:
        images, _ = load_split(paths.RAW_DIR, split, split_limit(params, split))
        skeleton = skeletons(images)
        holes = draw_damage(skeleton, params.mask.families, split_rng(params.mask.seed, split))
        masked = apply_masks(to_unit_range(images), holes, params.mask.fill)
        save_npz(paths.MASKED_DIR / f"{split}.npz", masked=masked, mask=holes, skeleton=skeleton)
        print(f"{split}: {len(images)} images, {holes.mean():.1%} of pixels hidden")


if __name__ == "__main__":
    sys.exit(run_stage(main))
