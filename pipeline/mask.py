"""Stage 2: scale images to [-1, 1] and cut the holes; save masked images and boolean masks per split.

`load_masked_split` reads them back, beside the clean images they came from, for the later stages.
"""

from __future__ import annotations

import sys

import numpy as np

from pipeline import paths
from pipeline.atomic import load_npz, save_npz
from pipeline.cli import run_stage
from pipeline.config import Params
from pipeline.datasets import load_split, to_unit_range
from pipeline.errors import PipelineError
from pipeline.masks import apply_masks, split_rng, square_masks

SPLITS = ("train", "test")


def split_limit(params: Params, split: str) -> int | None:
    return params.data.max_train if split == "train" else params.data.max_test


def load_masked_split(params: Params, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(clean images in [-1, 1], labels, masked images, boolean holes) of `split`, checked to belong together."""
    images, labels = load_split(paths.RAW_DIR, split, split_limit(params, split))
    path = paths.MASKED_DIR / f"{split}.npz"
    saved = load_npz(path)
    if len(saved["masked"]) != len(images):
        raise PipelineError(
            f"{path} holds {len(saved['masked'])} images but {paths.RAW_DIR} gives {len(images)} for "
            f"data.max_{split}={split_limit(params, split)}; rerun the mask stage (dvc repro)"
        )
    return to_unit_range(images), labels, saved["masked"], saved["mask"]


def main(params: Params) -> None:
    for split in SPLITS:
        images, _ = load_split(paths.RAW_DIR, split, split_limit(params, split))
        holes = square_masks(len(images), params.mask, split_rng(params.mask.seed, split))
        masked = apply_masks(to_unit_range(images), holes, params.mask.fill)
        save_npz(paths.MASKED_DIR / f"{split}.npz", masked=masked, mask=holes)
        print(f"{split}: {len(images)} images, {holes.mean():.1%} of pixels hidden")


if __name__ == "__main__":
    sys.exit(run_stage(main))
