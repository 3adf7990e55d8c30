"""Shared entry point of the stage scripts: validate params first, report user errors in one line."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from pipeline.errors import PipelineError


def run_stage(main: Callable, params_path: str = "params.yaml") -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from pipeline.config import load_params

    try:
        params = load_params(params_path)
        main(params)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
