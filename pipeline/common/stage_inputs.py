"""A stage run before the stages it reads from says which input is missing and which stage makes it.

dvc.yaml already says both: a stage's data deps, and the stage whose outs hold each of them. Checked before the
stage reads anything, so a fresh clone's `python -m pipeline.mask` answers "data/raw: missing; run the download
stage first" rather than an error of the file reader.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.common.errors import PipelineError

DVC_YAML = Path("dvc.yaml")


def _path(entry) -> str:
    """A dvc.yaml deps / outs entry: a path, or a one-key mapping of a path to its options."""
    return entry if isinstance(entry, str) else next(iter(entry))


def check_inputs(stage: str, dvc_yaml: Path = DVC_YAML) -> None:
    """Raise a PipelineError naming the first data input of `stage` that does not exist, and its maker."""
    stages = yaml.safe_load(dvc_yaml.read_text())["stages"]
    makers = {_path(out): name for name, spec in stages.items() for out in spec.get("outs", [])}
    for dep in map(_path, stages[stage].get("deps", [])):
        if dep in makers and not Path(dep).exists():
            maker = makers[dep]
            raise PipelineError(f"{dep}: missing; run the {maker} stage first (dvc repro {maker})")
