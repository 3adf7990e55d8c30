"""Expand a `dvc exp run -S` grid into one experiment per combination: the job matrix of the sweep workflow.

    python -m pipeline.review.sweep_matrix --grid "-S gan.lr_g=0.0002,0.0004 -S mask.families.strokes.width=2,4" \
        --prefix sweep-42

prints `[{"name": "sweep-42-1", "set": "-S gan.lr_g=0.0002 -S mask.families.strokes.width=2"}, ...]`, the
combinations in DVC's order (the last key varies fastest). Each combination is applied to params.yaml and
validated (pipeline.common.config) first, so a typo stops the workflow here, before any runner trains.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import sys
from pathlib import Path

import yaml

from pipeline.common.config import ParamsError, parse_params
from pipeline.common.errors import PipelineError
from pipeline.common.param_keys import set_override


def parse_grid(grid: str) -> list[tuple[str, list[str]]]:
    """`-S key=a,b -S other=c` -> [(key, [a, b]), (other, [c])]."""
    words = shlex.split(grid)
    if not words or len(words) % 2 or any(flag not in ("-S", "--set-param") for flag in words[::2]):
        raise PipelineError(f"--grid {grid!r}: expected `-S key=value[,value...]` pairs")
    axes = []
    for override in words[1::2]:
        key, sep, values = override.partition("=")
        if not sep or not key or not values:
            raise PipelineError(f"--grid: {override!r} is not key=value[,value...]")
        axes.append((key, values.split(",")))
    return axes


def combinations(axes: list[tuple[str, list[str]]], params_path: Path, prefix: str) -> list[dict[str, str]]:
    raw = yaml.safe_load(params_path.read_text())
    matrix = []
    for i, values in enumerate(itertools.product(*(choices for _, choices in axes)), start=1):
        overridden = json.loads(json.dumps(raw))  # a deep copy
        for (key, _), value in zip(axes, values):
            set_override(overridden, key, yaml.safe_load(value))
        try:
            parse_params(overridden)
        except ParamsError as exc:
            raise PipelineError(f"--grid: {' '.join(f'{k}={v}' for (k, _), v in zip(axes, values))}: {exc}") from None
        matrix.append({"name": f"{prefix}-{i}", "set": " ".join(f"-S {k}={v}" for (k, _), v in zip(axes, values))})
    return matrix


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.review.sweep_matrix", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--grid", required=True, help='e.g. "-S gan.lr_g=0.0002,0.0004 -S gan.lr_d=0.0008"')
    parser.add_argument("--prefix", default="sweep", help="experiment names are <prefix>-1, <prefix>-2, ...")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    try:
        print(json.dumps(combinations(parse_grid(args.grid), args.params, args.prefix)))
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
