"""The GitHub workflows (.github/workflows/): they lint clean, and the commands their steps run are README's.

The linters come with the test extra as wheels with their binaries inside, so they run here as on GitHub:
actionlint (syntax, expressions, the inputs and runtimes of known actions, and the `run:` scripts through
shellcheck when it is on PATH, as it is on GitHub's runners) and zizmor (security: permissions, persisted
credentials, template injection, unpinned actions; configured in .github/zizmor.yml).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

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


def lint(tool: str, *args: str) -> subprocess.CompletedProcess:
    """Run a workflow linter of the test extra; its absence is an install error, not a skip."""
    found = shutil.which(tool)
    assert found, f'{tool} is not on PATH: pip install -e ".[test]" installs it'
    return subprocess.run([found, *args], cwd=ROOT, capture_output=True, text=True)


def actionlint(*paths) -> subprocess.CompletedProcess:
    return lint("actionlint", "-no-color", *map(str, paths))


def zizmor(*paths) -> subprocess.CompletedProcess:
    return lint("zizmor", "--offline", "--no-progress", "--config", str(ROOT / ".github/zizmor.yml"), *map(str, paths))


def require_shellcheck() -> None:
    """actionlint checks `run:` scripts only through shellcheck; CI (.ci/run) installs it and must not skip."""
    if shutil.which("shellcheck") is None:
        if os.environ.get("DIGIT_RESTORE_REQUIRE_SHELLCHECK"):
            pytest.fail("shellcheck is not on PATH (Debian: apt-get install shellcheck)")
        pytest.skip("shellcheck is not on PATH (Debian: apt-get install shellcheck)")


def test_workflows_pass_actionlint():
    result = actionlint(*sorted(WORKFLOWS.glob("*.yml")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_rejects_a_broken_workflow(tmp_path):
    broken = (WORKFLOWS / "test.yml").read_text().replace("runs-on: ubuntu-latest", "runs-on: ubuntu-latst")
    (tmp_path / "broken.yml").write_text(broken.replace("actions/checkout@v7", "actions/checkout@v4"))
    result = actionlint(tmp_path / "broken.yml")
    assert result.returncode == 1 and '"ubuntu-latst" is unknown' in result.stdout
    assert 'runtime "node20" is deprecated' in result.stdout


def workflow_with_lint_step(run_line: str, folder) -> Path:
    """test.yml with its lint step's script replaced by `run_line`, written into `folder`."""
    flow = (WORKFLOWS / "test.yml").read_text()
    broken = flow.replace("run: ruff check . && ruff format --check .", f"run: {run_line}")
    assert broken != flow
    (folder / "broken.yml").write_text(broken)
    return folder / "broken.yml"


def test_actionlint_reads_run_scripts_through_shellcheck(tmp_path):
    require_shellcheck()
    result = actionlint(workflow_with_lint_step("ruff check . && ruff format --check . || ruff format .", tmp_path))
    assert result.returncode == 1 and "SC2015" in result.stdout


def test_workflows_pass_zizmor():
    result = zizmor(WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_rejects_template_injection(tmp_path):
    result = zizmor(workflow_with_lint_step("echo ${{ github.event.head_commit.message }}", tmp_path))
    assert result.returncode != 0 and "template-injection" in result.stdout


@pytest.mark.parametrize("name", sorted(path.name for path in WORKFLOWS.glob("*.yml")))
def test_each_job_asks_for_its_own_permissions_and_no_checkout_keeps_credentials(name):
    """No token can write more than its job needs, and no later step finds the token left in .git/config:
    zizmor flags only some of these at its default confidence."""
    flow = workflow(name)
    assert flow["permissions"] == {}
    for job in flow["jobs"].values():
        assert "permissions" in job
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


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
    assert flow["jobs"]["report"]["env"]["HAS_DVC_REMOTE"] == "${{ secrets.AWS_ACCESS_KEY_ID != '' }}"
    report = by_name["Report"]
    assert report["run"] == f'{REPORT} "$BASE_SHA" --out reports/pr/ --image-url "$IMAGE_URL"'
    assert report["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"
    assert uses(flow, "actions/upload-artifact")["path"] == "reports/pr/"
    publish = flow["jobs"]["publish"]
    assert publish["needs"] == "report" and set(publish["permissions"]) == {"contents", "pull-requests", "issues"}
    assert flow["jobs"]["report"]["permissions"] == {"contents": "read"} and flow["permissions"] == {}
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
