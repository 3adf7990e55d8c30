"""Comparing experiments: a queued grid in `dvc exp show` and in MLflow, and the comparison report.

All tests read the session's `swept_repo`: a tiny baseline run, then conftest.SWEEP (mask.families.strokes.width 2 and 4,
gan.lr_g 0.0003) queued with `dvc exp run --queue` and run by `dvc queue start -j 2`.
"""

from __future__ import annotations

import shutil
import sys

import pytest
from conftest import ROOT, offline_env, run, sweep_experiments
from mlflow.tracking import MlflowClient
from PIL import Image

from pipeline.training.recipes import RECIPES

pytestmark = pytest.mark.slow  # builds or runs a pipeline, or starts a server

PARENTS = "tags.`digit_restore.pipeline_key` != ''"


def parent_runs(repo, filter_string: str = "") -> list:
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("digit-restore")
    query = " and ".join(filter(None, [PARENTS, filter_string]))
    return client.search_runs([experiment.experiment_id], filter_string=query, max_results=1000)


def report(repo, out, *args: str):
    return run([sys.executable, "-m", "pipeline.review.report", "--out", str(out), *args], repo, check=False)


def table_rows(markdown: str) -> list[list[str]]:
    """The body rows of the one markdown table in `markdown`, as lists of cells."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def test_exp_show_lists_every_queued_experiment_with_params_and_metrics(swept_repo):
    experiments = sweep_experiments(swept_repo)
    assert len(experiments) == 2
    assert sorted(e["params"]["mask"]["families"]["strokes"]["width"] for e in experiments.values()) == [2, 4]
    for exp in experiments.values():
        assert exp["params"]["gan"]["lr_g"] == 0.0003
        assert exp["params"]["gan"]["epochs"] == 2  # the baseline's tiny params, not the defaults
        assert set(exp["metrics"]["accuracy"]) == {"clean", "masked", "restored"}
        assert all(0 <= value <= 1 for value in exp["metrics"]["accuracy"].values())
    # Different damage, so different masked accuracy: each experiment has its own metrics.
    assert len({e["metrics"]["accuracy"]["masked"] for e in experiments.values()}) == 2


def test_each_queued_experiment_has_one_parent_run_named_after_it(swept_repo):
    experiments = sweep_experiments(swept_repo)
    baseline_commit = run(["git", "rev-parse", "HEAD"], swept_repo).stdout.strip()
    for name, exp in experiments.items():
        parents = parent_runs(swept_repo, f"tags.dvc_exp_name = '{name}'")
        assert len(parents) == 1, f"{name}: {len(parents)} parent runs"
        parent = parents[0]
        assert parent.info.run_name == name
        assert parent.data.tags["git_commit"] == baseline_commit
        assert parent.data.params["mask.families.strokes.width"] == str(
            exp["params"]["mask"]["families"]["strokes"]["width"]
        )
        assert parent.data.params["gan.lr_g"] == "0.0003"
        for variant in ("clean", "masked", "restored"):
            assert parent.data.metrics[f"accuracy.{variant}"] == pytest.approx(exp["metrics"]["accuracy"][variant])
    # The baseline's own parent, plus one per experiment.
    assert len(parent_runs(swept_repo)) == 3


@pytest.fixture(scope="module")
def grid_report(swept_repo, tmp_path_factory):
    """The report of the grid's two experiments (the baseline has another gan.lr_g)."""
    out = tmp_path_factory.mktemp("report")
    result = report(swept_repo, out, "--filter", "params.gan.lr_g = '0.0003'")
    assert result.returncode == 0, result.stderr
    return out


def test_report_tabulates_the_selected_runs(swept_repo, grid_report, tmp_path):
    experiments = sweep_experiments(swept_repo)
    rows = table_rows((grid_report / "comparison.md").read_text())
    by_size = sorted(experiments.items(), key=lambda item: item[1]["params"]["mask"]["families"]["strokes"]["width"])
    assert [row[0] for row in rows] == [name for name, _ in by_size]  # sorted by stroke width
    for row, (_, exp) in zip(rows, by_size):
        acc, recovered = exp["metrics"]["accuracy"], exp["metrics"]["recovered_fraction"]
        width = str(exp["params"]["mask"]["families"]["strokes"]["width"])
        lr_d = RECIPES["blind"].dials["lr_d"]  # MLflow logs the value the null in params.yaml resolved to
        assert exp["params"]["gan"]["lr_d"] is None and row[1:6] == ["mnist", "blind", width, "0.0003", str(lr_d)]
        assert row[6:9] == [f"{acc[v]:.4f}" for v in ("clean", "masked", "restored")]
        assert row[9] == ("-" if recovered is None else f"{recovered:.4f}")
    with Image.open(grid_report / "comparison.png") as image:
        assert image.format == "PNG" and image.width > 300 and image.height > 300
        image.verify()

    everything = report(swept_repo, tmp_path / "all")
    assert everything.returncode == 0, everything.stderr
    rows = table_rows((tmp_path / "all/comparison.md").read_text())
    assert sorted(row[3] for row in rows) == ["2", "3", "4"]  # the baseline (width 3) joins the grid


@pytest.mark.parametrize(
    "filter_string, message",
    [
        ("params.mask.families.strokes.width = '99'", "matches no configuration"),
        ("params.mask.families.strokes.width = 8", "is not a valid MLflow filter"),
        ("accuracy > 0.5", "is not a valid MLflow filter"),
    ],
)
def test_report_rejects_a_filter_that_selects_nothing(swept_repo, grid_report, filter_string, message):
    before = {p.name: p.read_bytes() for p in grid_report.iterdir()}
    result = report(swept_repo, grid_report, "--filter", filter_string)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: --filter {filter_string!r}") and message in result.stderr
    assert {p.name: p.read_bytes() for p in grid_report.iterdir()} == before  # the last good report is kept


def test_report_without_a_store_says_so_and_creates_none(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path)
    env = offline_env(PYTHONPATH=str(ROOT))  # this checkout's pipeline, run from a folder with no store
    result = run([sys.executable, "-m", "pipeline.review.report"], tmp_path, env=env, check=False)
    assert result.returncode == 2
    assert f"error: no MLflow store at {tmp_path.resolve() / 'mlflow.db'}" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
