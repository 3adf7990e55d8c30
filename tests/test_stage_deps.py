"""dvc.yaml re-runs a stage when the code its outputs depend on changes, and only then.

A stage's outputs depend on every pipeline module it imports, directly or through another, except the
plumbing in pipeline/common (params, paths, MLflow runs) and the serving side in pipeline/serving (which
a stage only uses to register its model in MLflow, not to make its outputs): those are exactly the
`pipeline/` deps dvc.yaml must list.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, copy_repo, offline_env, run

NOT_DEPS = ("pipeline/common/", "pipeline/serving/")


def module_file(dotted: str) -> Path | None:
    """The file of pipeline module `dotted`, relative to the repository root; None for a package or no module."""
    path = Path(*dotted.split("."))
    return path.with_suffix(".py") if (ROOT / path.with_suffix(".py")).is_file() else None


def imported_files(source: Path) -> set[Path]:
    """The pipeline modules `source` imports anywhere in its body (function-level imports too)."""
    found = set()
    for node in ast.walk(ast.parse((ROOT / source).read_text())):
        if isinstance(node, ast.Import):
            dotted = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            dotted = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {f for d in dotted if d.split(".")[0] == "pipeline" and (f := module_file(d))}
    return found


def code_deps(stage_module: Path) -> set[str]:
    """The stage module and everything it reaches through imports, stopping at pipeline/common and serving."""
    seen, todo = set(), [stage_module]
    while todo:
        current = todo.pop()
        if current.as_posix() in seen or current.as_posix().startswith(NOT_DEPS):
            continue
        seen.add(current.as_posix())
        todo.extend(imported_files(current))
    return seen


STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_each_stage_lists_the_code_its_outputs_depend_on(name):
    stage = STAGES[name]
    assert stage["cmd"] == f"python -m pipeline.{name}", "each stage is its own module, named as the stage"
    listed = {d for d in stage["deps"] if d.startswith("pipeline/")}
    assert listed == code_deps(Path(f"pipeline/{name}.py"))


STAGE_MODULES = {Path(f"pipeline/{name}.py") for name in STAGES}


def python_files() -> list[Path]:
    return sorted(
        path.relative_to(ROOT)
        for folder in ("pipeline", "benchmarks", "tests", "docs")
        for path in (ROOT / folder).rglob("*.py")
    )


def test_no_module_imports_a_stage_module():
    """Stage modules only run stages: what another stage, a benchmark or a test needs lives in the subpackages,
    so a change to a stage's own code reruns that stage alone."""
    importers = {
        source.as_posix(): sorted(f.as_posix() for f in imported_files(source) & STAGE_MODULES)
        for source in python_files()
    }
    assert {source: stages for source, stages in importers.items() if stages} == {}


def test_a_stage_run_before_its_inputs_exist_names_them_and_their_stage(tmp_path):
    repo = copy_repo(tmp_path)  # a fresh clone: no data/
    result = run([sys.executable, "-m", "pipeline.mask"], repo, offline_env(), check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: data/raw: missing; run the download stage first (dvc repro download)"


# Which stages a one-line change in each module must re-run (on a reproduced repository, `dvc status`).
EDIT_RERUNS = {
    "pipeline/images/masks.py": {"mask", "train_gan", "evaluate"},
    "pipeline/training/models.py": {"train_gan", "evaluate"},
    "pipeline/scoring/metrics.py": {"evaluate"},
    "pipeline/common/tracking.py": set(),
}


def stale_stages(repo) -> set[str]:
    """The stages `dvc status` says a `dvc repro` would run."""
    return set(yaml.safe_load(run([sys.executable, "-m", "dvc", "status", "--json"], repo).stdout))


@pytest.mark.slow
def test_dvc_reruns_exactly_the_stages_an_edit_reaches(tiny_repo_copy):
    repo = tiny_repo_copy
    assert stale_stages(repo) == set(), "the reproduced repository is up to date before the edits"
    for module, stages in EDIT_RERUNS.items():
        path = repo / module
        original = path.read_bytes()
        path.write_bytes(original + b"\n# an edit\n")
        assert stale_stages(repo) == stages, module
        path.write_bytes(original)


@pytest.mark.slow
def test_an_inference_setting_reruns_evaluate_alone(tiny_repo_copy):
    """evaluate.damage_threshold acts at inference only: trying a threshold must not retrain the GAN."""
    path = tiny_repo_copy / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["evaluate"]["damage_threshold"] = 0.7
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    assert stale_stages(tiny_repo_copy) == {"evaluate"}
