"""The pull-request report (pipeline.review.pr_report) on a real two-commit history of the tiny configuration.

`pr_repo` clones the session's `baseline_repo` (its committed tiny baseline run is the base), shares its DVC cache
and a copy of its MLflow store, doubles gan.lr_g, runs `dvc repro` and commits: that commit is the head.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT, run, write_params
from mlflow.tracking import MlflowClient
from PIL import Image

from pipeline.review import pr_report, seed_spread, small_run

BASE_LR = 0.0004  # the blind recipe's gan.lr_g, which params.yaml leaves null


@pytest.fixture(scope="module")
def pr_repo(baseline_repo, tmp_path_factory):
    repo = tmp_path_factory.mktemp("pr") / "repo"
    run(["git", "clone", "-q", str(baseline_repo), str(repo)], baseline_repo.parent)
    run(["git", "config", "user.name", "digit-restore tests"], repo)
    run(["git", "config", "user.email", "tests@digit-restore.invalid"], repo)
    run([sys.executable, "-m", "dvc", "cache", "dir", "--local", str(baseline_repo / ".dvc/cache")], repo)
    shutil.copy(baseline_repo / "mlflow.db", repo / "mlflow.db")
    run([sys.executable, "-m", "dvc", "checkout"], repo)
    assert yaml.safe_load((repo / "params.yaml").read_text())["gan"]["lr_g"] is None
    write_params(repo, {"gan": {"lr_g": 2 * BASE_LR}})
    run([sys.executable, "-m", "dvc", "repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "gan.lr_g doubled"], repo)
    return repo


def pr_report_run(repo, out, base: str) -> subprocess.CompletedProcess:
    return run(
        [sys.executable, "-m", "pipeline.review.pr_report", "--base", base, "--out", str(out)], repo, check=False
    )


def rows_after(markdown: str, heading: str) -> list[list[str]]:
    """The body rows of the first table after `heading`."""
    section = markdown.split(heading, 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def flat(metrics: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in metrics.items():
        out |= flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
    return out


@pytest.fixture(scope="module")
def report_dir(pr_repo, tmp_path_factory):
    out = tmp_path_factory.mktemp("pr-report")
    result = pr_report_run(pr_repo, out, "HEAD~1")
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.slow
def test_report_names_the_param_and_each_changed_metric(pr_repo, report_dir):
    markdown = (report_dir / "report.md").read_text()
    assert rows_after(markdown, "## Params that changed") == [["`gan.lr_g`", "-", "`0.0008`"]]  # null: the recipe's

    base = flat(json.loads(run(["git", "show", "HEAD~1:results/metrics.json"], pr_repo).stdout))
    head = flat(json.loads((pr_repo / "results/metrics.json").read_text()))
    rows = {row[0].strip("`"): row for row in rows_after(markdown, "## Headline metrics")}
    assert list(rows) == list(pr_report.HEADLINE)
    changed = [key for key in pr_report.HEADLINE if None not in (base[key], head[key]) and base[key] != head[key]]
    assert changed, "doubling gan.lr_g changed no headline metric: the test compares nothing"
    for key in changed:
        assert rows[key][1:4] == [f"{base[key]:.4g}", f"{head[key]:.4g}", f"{head[key] - base[key]:+.4g}"], key
    for key in set(pr_report.HEADLINE) - set(changed):
        assert rows[key][3] in ("0", "-"), key
    # Tiny runs are not at the benchmark's setting: the spread is shown, nothing is marked.
    assert "No change is marked" in markdown and {row[5] for row in rows.values()} == {"-"}


@pytest.mark.slow
def test_report_embeds_base_beside_head_pictures_and_both_runs(pr_repo, report_dir):
    markdown = (report_dir / "report.md").read_text()
    base_sha = run(["git", "rev-parse", "HEAD~1"], pr_repo).stdout.strip()
    assert f"base HEAD~1 ({base_sha[:7]}), head (workspace), left to right" in markdown
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert linked == ["restored_grid.png", "damage_accuracy.png", "losses.png"]
    for name in linked:
        with Image.open(report_dir / name) as image:
            assert image.format == "PNG" and image.width > 600
    with Image.open(report_dir / "restored_grid.png") as both, Image.open(pr_repo / "results/restored_grid.png") as one:
        assert both.width > 1.5 * one.width  # two grids side by side

    client = MlflowClient(f"sqlite:///{pr_repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("digit-restore")
    parents = client.search_runs(
        [experiment.experiment_id], "tags.`digit_restore.pipeline_key` != '' and tags.dvc_exp_name = ''"
    )
    by_lr = {run_.data.params["gan.lr_g"]: run_.info.run_id for run_ in parents}
    runs = markdown.split("## MLflow runs", 1)[1]
    assert f"- base HEAD~1 ({base_sha[:7]}): `" in runs and f"(run id `{by_lr['0.0004']}`)" in runs
    assert f"(run id `{by_lr['0.0008']}`)" in runs.split("- head (workspace):", 1)[1]


@pytest.mark.slow
def test_report_is_byte_identical_when_run_twice(pr_repo, report_dir, tmp_path):
    assert pr_report_run(pr_repo, tmp_path, "HEAD~1").returncode == 0
    first = {p.name: p.read_bytes() for p in report_dir.iterdir()}
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == first
    assert sorted(first) == ["damage_accuracy.png", "losses.png", "report.md", "restored_grid.png"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "base, message",
    [
        ("no-such-branch", "--base 'no-such-branch': no such git revision"),
        ("HEAD~2", "has no results: dvc.lock is not committed there"),  # the tiny params, before any run
    ],
)
def test_a_base_without_results_exits_2_naming_it(pr_repo, tmp_path, base, message):
    result = pr_report_run(pr_repo, tmp_path / "out", base)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: --base {base!r}") and message in result.stderr
    assert not (tmp_path / "out").exists()


FULL = {
    "data.dataset": "mnist",
    "data.max_train": None,
    "data.max_test": None,
    "classifier.epochs": 3,
    "gan.recipe": "blind",
    "gan.epochs": None,
    "gan.steps_per_epoch": None,
    "gan.batch_size": None,
    "evaluate.grid_digits": 32,
}
SMALL = {**FULL, **small_run.SMALL_RUN}


@pytest.mark.parametrize(
    "base, head, compare, mark",
    [
        (FULL, FULL, True, True),
        (FULL, SMALL, False, False),  # CI's small run of the PR against the committed full run
        (SMALL, SMALL, True, False),
        (
            FULL,
            {**FULL, "gan.epochs": 5},
            True,
            False,
        ),  # the PR trains longer: compared, but the spread is unknown there
    ],
)
def test_small_runs_are_not_compared_with_full_ones_and_marks_need_the_benchmark_setting(base, head, compare, mark):
    assert pr_report.comparison_note(base, head)[:2] == (compare, mark)


def test_a_change_beyond_the_seed_spread_is_marked():
    key = "damage.classic.restored.recovered_judge"  # spread 0.003 (0.921, 0.918, 0.918)
    metrics = {
        key: {"old": 0.92, "new": 0.93},
        "accuracy.restored": {"old": 0.96, "new": 0.97},
        "damage.boxes.restored.recovered_judge": {"old": 0.85, "new": 0.86},
    }  # within 0.018
    section = "\n".join(pr_report.metrics_section(metrics, True, True, ""))
    rows = {row[0].strip("`"): row for row in rows_after(section, "## Headline metrics")}
    assert rows[key][3:] == ["+0.01", "0.003", "**beyond**"]
    assert rows["damage.boxes.restored.recovered_judge"][3:] == ["+0.01", "0.018", "no"]
    assert rows["accuracy.restored"][4:] == ["-", "-"]  # not measured by the benchmark


def test_seed_spreads_are_read_from_the_benchmark_pages_table():
    """Each spread is max - min of docs/benchmarks.md's three seeds (at least the printed digit), family by family."""
    assert {len(values) for stats in seed_spread.SEEDS.values() for values in stats.values()} == {3}
    assert seed_spread.SEEDS["classic"]["recovered_judge"] == (0.921, 0.918, 0.918)  # the page's seed table
    assert seed_spread.SEEDS["strokes"]["changed_outside"] == (0.231, 0.271, 0.240)
    assert seed_spread.SPREADS["damage.classic.restored.accuracy_second"] == pytest.approx(0.0019)
    assert seed_spread.SPREADS["damage.small_boxes.restored.l1_damage"] == 0.001  # three equal printed values


def test_small_run_prints_its_overrides_as_dvc_exp_run_arguments():
    result = run([sys.executable, "-m", "pipeline.review.small_run"], ROOT)
    assert result.stdout.split() == small_run.set_args() and result.stdout.split()[:2] == ["-S", "data.max_train=512"]
