"""Stage 1: fetch the four IDX .gz files of `data.dataset` into data/raw, verified (pipeline/images/fetch.py)."""

from __future__ import annotations

import sys

from pipeline.common import paths
from pipeline.common.cli import run_stage
from pipeline.common.config import Params
from pipeline.images.fetch import fetch_dataset


def main(params: Params) -> None:
    fetch_dataset(params.data.dataset, paths.RAW_DIR)


if __name__ == "__main__":
    sys.exit(run_stage(main, "download"))
