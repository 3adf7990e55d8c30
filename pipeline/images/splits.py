"""The splits as the mask stage saved them, read back beside the clean images for training and evaluation."""

from __future__ import annotations

from pipeline.common import paths
from pipeline.common.atomic import load_npz
from pipeline.common.config import Params
from pipeline.common.errors import PipelineError
from pipeline.images.datasets import load_split, split_limit, to_unit_range
from pipeline.images.masks import MaskedSplit


def load_masked_split(params: Params, split: str) -> MaskedSplit:
    """Everything the later stages know of `split`, checked to belong together."""
    images, labels = load_split(paths.RAW_DIR, split, split_limit(params.data, split))
    path = paths.MASKED_DIR / f"{split}.npz"
    saved = load_npz(path)
    if len(saved["masked"]) != len(images) or "skeleton" not in saved:
        raise PipelineError(
            f"{path} holds {len(saved['masked'])} images but {paths.RAW_DIR} gives {len(images)} for "
            f"data.max_{split}={split_limit(params.data, split)}, or was made by an older mask stage; "
            "rerun the mask stage (dvc repro)"
        )
    return MaskedSplit(to_unit_range(images), labels, saved["masked"], saved["mask"], saved["skeleton"])
