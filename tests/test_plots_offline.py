"""`dvc plots show` / `dvc plots diff` pages that work offline (.dvc/config names plots/offline.html).

DVC's default page loads vega from a CDN and stays blank without internet. These tests run the plain
commands on the session's `swept_repo` and check that the page loads no remote script and carries the data.
"""

from __future__ import annotations

import csv
import json
import re
import runpy
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, run, sweep_experiments
from mlflow.tracking import MlflowClient

LOSSES = "GAN losses per iteration"
VEGA_PLOTS = 4  # losses, per-class accuracy, confusion of the restored digits, accuracy by damage family (dvc.yaml)
REMOTE = re.compile(r"<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=\s*[\"']?(https?:)?//", re.IGNORECASE)


def plots_page(repo, out, *args: str) -> str:
    run([sys.executable, "-m", "dvc", "plots", *args, "-o", str(out)], repo)
    return (out / "index.html").read_text(encoding="utf-8")


def vega_specs(page: str) -> dict[str, dict]:
    """Title -> the vega-lite spec DVC embedded in the page."""
    specs = [json.loads(s) for s in re.findall(r"var spec = (\{.*?\});\s*vegaEmbed\(", page, re.DOTALL)]
    return {spec["title"]["text"]: spec for spec in specs}


def loss_series(spec: dict, field: str) -> dict[str, list[float]]:
    """rev -> the `field` values of the loss plot, in iteration order."""
    series: dict[str, list[tuple[int, float]]] = {}
    for point in spec["data"]["values"]:
        if point["field"] == field:
            series.setdefault(point["rev"], []).append((int(point["iteration"]), float(point[field])))
    return {rev: [value for _, value in sorted(points)] for rev, points in series.items()}


def assert_offline(page: str) -> None:
    assert not REMOTE.findall(page), "the page loads something from the network"
    assert not re.search(r"<script\b[^>]*\bsrc\s*=", page, re.IGNORECASE), "every script must be inline"
    assert "vegaEmbed=" in page and "vegaLite={}" in page and ").vega={}" in page  # the three libraries


def test_template_inlines_the_pinned_scripts():
    template = (ROOT / "plots/offline.html").read_text(encoding="utf-8")
    assert_offline(template)
    assert "{plot_divs}" in template and "{scripts}" not in template  # DVC would put its CDN tags in {scripts}
    pinned = runpy.run_path(str(ROOT / "plots/make_offline_template.py"))["PACKAGES"]
    assert sorted(pinned) == ["vega", "vega-embed", "vega-lite"]
    for name, (version, _) in pinned.items():
        assert f"<!-- {name} {version}, build/{name}.min.js" in template


@pytest.mark.slow
def test_plots_show_renders_the_workspace_offline(swept_repo, tmp_path):
    page = plots_page(swept_repo, tmp_path, "show")
    assert_offline(page)
    specs = vega_specs(page)
    assert len(specs) == VEGA_PLOTS
    with (swept_repo / "data/gan/losses.csv").open() as f:
        written = [float(row["d_loss"]) for row in csv.DictReader(f)]
    assert loss_series(specs[LOSSES], "d_loss") == {"workspace": written}
    assert (tmp_path / "static/workspace_results_restored_grid.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_plots_diff_compares_loss_curves_of_two_experiments(swept_repo, tmp_path):
    names = sorted(sweep_experiments(swept_repo))
    page = plots_page(swept_repo, tmp_path, "diff", *names)
    assert_offline(page)
    curves = loss_series(vega_specs(page)[LOSSES], "d_loss")
    assert sorted(curves) == names
    assert curves[names[0]] != curves[names[1]]
    # Each curve is the one the experiment's train_gan run logged to MLflow (2 epochs x 3 iterations).
    client = MlflowClient(f"sqlite:///{swept_repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("digit-restore").experiment_id
    for name in names:
        (parent,) = client.search_runs(
            [experiment], f"tags.dvc_exp_name = '{name}' and tags.`digit_restore.pipeline_key` != ''"
        )
        (gan,) = client.search_runs(
            [experiment], f"tags.mlflow.parentRunId = '{parent.info.run_id}' and tags.dvc_stage = 'train_gan'"
        )
        logged = [m.value for m in sorted(client.get_metric_history(gan.info.run_id, "d_loss"), key=lambda m: m.step)]
        assert len(logged) == 6
        assert curves[name] == pytest.approx(logged, rel=1e-5)  # losses.csv keeps 6 significant digits


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")
def test_plots_page_draws_in_a_browser_without_network(swept_repo, tmp_path):
    plots_page(swept_repo, tmp_path / "plots", "show")
    dom = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-sync",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            (tmp_path / "plots/index.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    # vega-embed draws each plot on a canvas in its div; with no library loaded there is none.
    assert dom.count('class="vega-embed') == VEGA_PLOTS
    assert len(re.findall(r'<canvas[^>]*class="marks"', dom)) == VEGA_PLOTS
