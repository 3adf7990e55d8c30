"""Shared entry point of the stage scripts: validate params, the stage's inputs and the tracking server first,
report user errors in one line."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from pipeline.common.config import load_params
from pipeline.common.errors import PipelineError
from pipeline.common.server_access import check_server
from pipeline.common.stage_inputs import check_inputs


def run_stage(main: Callable, stage: str | None = None, params_path: str = "params.yaml") -> int:
    """Run `main(params)`; `stage`: the dvc.yaml stage it is, whose inputs must exist first."""
    try:
        params = load_params(params_path)
        if stage:
            check_inputs(stage)
        # Every stage, also those that log nothing: `dvc repro` with a wrong password stops at its first stage,
        # before it has written anything. (Unset, the store is the repository's SQLite file: nothing to check.)
        check_server(os.environ.get("MLFLOW_TRACKING_URI", ""))
        main(params)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
