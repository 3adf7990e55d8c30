"""Stage 2: scale images to [-1, 1] and cut the holes; save masked images and boolean masks per split."""

from __future__ import annotations

import sys

from pipeline import paths
from pipeline.atomic import save_npz
from pipeline.cli import run_stage
from pipeline.config import Params
from pipeline.datasets import load_split, to_unit_range
from pipeline.masks import apply_masks, split_rng, square_masks


def main(params: Params) -> None:
    limits = {"train": params.data.max_train, "test": params.data.max_test}
    for split, limit in limits.items():
        images, _ = load_split(paths.RAW_DIR, split, limit)
        holes = square_masks(len(images), params.mask, split_rng(params.mask.seed, split))
        masked = apply_masks(to_unit_range(images), holes, params.mask.fill)
        save_npz(paths.MASKED_DIR / f"{split}.npz", masked=masked, mask=holes)
        print(f"{split}: {len(images)} images, {holes.mean():.1%} of pixels hidden")


if __name__ == "__main__":
    sys.exit(run_stage(main))
