"""Params under the names DVC gives them, `section.key` (`mask.families.strokes.width` for nested keys): MLflow logs
them so, `dvc exp run -S` sets them so, and `dvc params diff` compares them so."""

from __future__ import annotations

import dataclasses

from pipeline.common.config import Params, ParamsError


def flatten(params: Params) -> dict[str, object]:
    """`section.key -> value` for every param, as resolved (a dial left null holds its recipe's value)."""

    def dotted(prefix: str, values: dict) -> dict[str, object]:
        flat = {}
        for key, value in values.items():
            flat |= dotted(f"{prefix}{key}.", value) if isinstance(value, dict) else {f"{prefix}{key}": value}
        return flat

    return dotted("", dataclasses.asdict(params))


def set_override(raw: dict, key: str, value) -> None:
    """Set `section.key` (or a nested `mask.families.strokes.weight`) in the parsed YAML, as `dvc exp run -S`
    does; parse_params then checks the result like any params.yaml."""
    *parents, last = key.split(".")
    node = raw
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ParamsError(f"{key}: {part} is a value, not a section")
    node[last] = value
