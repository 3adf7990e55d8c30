"""Shared entry point of the stage scripts: validate params first, report user errors in one line."""

from __future__ import annotations

import sys
from collections.abc import Callable

from pipeline.config import load_params
from pipeline.errors import PipelineError


def run_stage(main: Callable, params_path: str = "params.yaml") -> int:
    try:
        params = load_params(params_path)
        main(params)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
