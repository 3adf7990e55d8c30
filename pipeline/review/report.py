"""Compare pipeline configurations from the MLflow store: a markdown table and a PNG figure.

    python -m pipeline.review.report --filter "params.mask.families.strokes.width = '3'" --out reports/

Each configuration has one parent run (pipeline.common.tracking), which holds every
param and the headline metrics. The report selects parent runs with MLflow's
own search, so `--filter` takes what the MLflow UI's search box takes, and
writes clean / masked / restored accuracy and the recovered fraction beside
dataset, restorer (blind or told the hole), stroke width and learning rates: `<out>/comparison.md` and
`<out>/comparison.png`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import mlflow
import numpy as np
from mlflow.exceptions import MlflowException

from pipeline.common import server_access, tracking
from pipeline.common.atomic import atomic_path
from pipeline.common.cli import run_stage
from pipeline.common.config import Params
from pipeline.common.errors import PipelineError
from pipeline.images import figures

SETTINGS = ("data.dataset", "gan.recipe", "mask.families.strokes.width", "gan.lr_g", "gan.lr_d")
MISSING = "-"  # a setting the run's params do not have (e.g. a params.yaml without a strokes family)
ACCURACIES = ("accuracy.clean", "accuracy.masked", "accuracy.restored")
METRICS = (*ACCURACIES, "recovered_fraction")
PARENTS = f"tags.`{tracking.KEY_TAG}` != ''"
TABLE_NAME, FIGURE_NAME = "comparison.md", "comparison.png"


@dataclass(frozen=True)
class Row:
    """One configuration: its parent run's name, the settings compared and the headline metrics."""

    name: str
    settings: dict[str, str]
    metrics: dict[str, float | None]  # recovered_fraction is None when the mask cost no accuracy

    def sort_key(self):
        s = self.settings
        width = s["mask.families.strokes.width"]
        return (
            s["data.dataset"],
            s["gan.recipe"],
            -1 if width == MISSING else int(width),
            float(s["gan.lr_g"]),
            float(s["gan.lr_d"]),
            self.name,
        )

    def label(self) -> str:
        s = self.settings
        return (
            f"{self.name}\n{s['data.dataset']}, {s['gan.recipe']}, strokes {s['mask.families.strokes.width']}\n"
            f"lr_g {s['gan.lr_g']}, lr_d {s['gan.lr_d']}"
        )


def store_uri() -> str:
    """The pipeline's store; a missing SQLite file is an error here (reading must not create an empty store)."""
    uri = tracking.tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise PipelineError(
            f"no MLflow store at {uri.removeprefix('sqlite:///')}: run the pipeline first, "
            "or set MLFLOW_TRACKING_URI to the store to read"
        )
    server_access.check_server(uri)
    return uri


def select(experiment: str, filter_string: str) -> list[Row]:
    """The parent runs of `experiment` that match `filter_string` and carry evaluate's metrics, sorted."""
    uri = store_uri()
    mlflow.set_tracking_uri(uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        raise PipelineError(f"the MLflow store {uri} has no experiment {experiment!r} (tracking.experiment)")
    query = " and ".join(part for part in (filter_string.strip(), PARENTS) if part)
    try:
        runs = mlflow.search_runs([found.experiment_id], filter_string=query, output_format="list")
    except MlflowException as exc:
        raise PipelineError(f"--filter {filter_string!r} is not a valid MLflow filter: {exc.message}") from None
    selection = f"--filter {filter_string!r}" if filter_string.strip() else "the store"
    if not runs:
        raise PipelineError(f"{selection} matches no configuration (parent run) in experiment {experiment!r} of {uri}")
    scored = [run for run in runs if all(key in run.data.metrics for key in ACCURACIES)]
    if not scored:
        raise PipelineError(
            f"{selection} matches {len(runs)} configuration(s), none with evaluate's accuracies "
            "(their evaluate stage has not finished)"
        )
    if len(scored) < len(runs):
        skipped = sorted(run.info.run_name for run in runs if run not in scored)
        print(f"skipped {len(skipped)} configuration(s) without evaluate's accuracies: {', '.join(skipped)}")
    rows = [
        Row(
            run.info.run_name,
            {key: run.data.params.get(key, MISSING) for key in SETTINGS},  # a parent run holds every param
            {key: run.data.metrics.get(key) for key in METRICS},
        )
        for run in scored
    ]
    return sorted(rows, key=Row.sort_key)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def markdown_table(rows: list[Row]) -> str:
    header = [
        "run",
        "dataset",
        "told the hole",
        "stroke width",
        "lr_g",
        "lr_d",
        "clean",
        "masked",
        "restored",
        "recovered fraction",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row.name, *(row.settings[key] for key in SETTINGS), *(_number(row.metrics[key]) for key in METRICS)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def comparison_bars(labels: list[str], accuracies: dict[str, list[float]], recovered: list[float | None], title: str):
    """One group of accuracy bars per configuration above, its recovered fraction below (pipeline.review.report)."""
    x = np.arange(len(labels))
    width = 0.8 / len(accuracies)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(6.0, 2.2 * len(labels)), 7.5), sharex=True)
    for i, (name, values) in enumerate(accuracies.items()):
        top.bar(x + (i - (len(accuracies) - 1) / 2) * width, values, width, label=name)
    top.set_ylabel("test accuracy")
    top.set_ylim(0, 1)
    top.legend(loc="lower left", bbox_to_anchor=(0, 1), ncols=len(accuracies), fontsize=8, frameon=False)
    bottom.bar(x, [np.nan if value is None else value for value in recovered], 0.5, color="tab:purple")
    bottom.axhline(0, color="black", linewidth=0.6)
    bottom.axhline(1, color="grey", linewidth=0.6, linestyle=":")
    bottom.set_ylabel("recovered fraction")
    bottom.set_xticks(x, labels, fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def write_report(params: Params, filter_string: str, out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise PipelineError(f"--out {out}: a file, expected a folder for {TABLE_NAME} and {FIGURE_NAME}")
    experiment = params.tracking.experiment
    rows = select(experiment, filter_string)
    selection = f"filter `{filter_string}`" if filter_string.strip() else "all configurations"
    table = markdown_table(rows)
    text = (
        f"# Comparison: experiment `{experiment}`, {selection}, {len(rows)} run(s)\n\n"
        f"{table}\n![clean / masked / restored accuracy and recovered fraction]({FIGURE_NAME})\n"
    )
    figure = comparison_bars(
        [row.label() for row in rows],
        {key.removeprefix("accuracy_"): [row.metrics[key] for row in rows] for key in ACCURACIES},
        [row.metrics["recovered_fraction"] for row in rows],
        f"{experiment}: {selection}",
    )
    figures.save_figure(figure, out / FIGURE_NAME)
    with atomic_path(out / TABLE_NAME) as tmp:
        tmp.write_text(text)
    print(table + f"wrote {out / TABLE_NAME} and {out / FIGURE_NAME}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipeline.review.report", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--filter",
        default="",
        help="MLflow search filter, e.g. \"params.mask.families.strokes.width = '8' and tags.dataset = 'mnist'\"",
    )
    parser.add_argument("--out", type=Path, default=Path("reports"), help="folder for comparison.md and .png")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    sys.exit(run_stage(lambda params: write_report(params, args.filter, args.out)))
