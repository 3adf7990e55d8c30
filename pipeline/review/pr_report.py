"""What a pull request changes, for its reviewer: params, headline metrics and pictures, base beside head.

    python -m pipeline.review.pr_report --base origin/main [--out reports/pr/] [--image-url URL]

Head is the workspace (in CI: the PR's checkout, after `dvc pull` or a small `dvc exp run`); base is any git
revision whose results are committed. Everything comes from DVC's own JSON: the params that differ from
`dvc params diff`, the metrics from `dvc metrics diff`, the pictures' data from `dvc plots diff`, and the MLflow
run of each side from its dvc.lock (pipeline.review.pr_runs). Writes `<out>/report.md` and its PNGs; the same inputs
give the same bytes. A change larger than the seed-to-seed spread of docs/benchmarks.md's benchmark is marked
(pipeline.review.seed_spread); a small run (pipeline.review.small_run) is never compared with a full one.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from pipeline.common.atomic import atomic_path
from pipeline.common.cli import run_stage
from pipeline.common.errors import PipelineError
from pipeline.review import pr_pictures, pr_runs, seed_spread, small_run

REPORT_NAME = "report.md"
MARKER = "<!-- digit-restore pr-report -->"  # the workflow finds its own PR comment by this line
FAMILIES = ("classic", "boxes", "small_boxes", "strokes")
STATISTICS = (
    "accuracy_judge",
    "accuracy_second",
    "recovered_judge",
    "recovered_second",
    "l1_damage",
    "changed_outside",
)
# On the mask stage's test draw, then docs/benchmarks.md's table of damage family x blind restorer.
HEADLINE = (
    "accuracy.clean",
    "accuracy.masked",
    "accuracy.restored",
    "recovered_fraction",
    "second_reader.accuracy.restored",
    "second_reader.recovered_fraction",
    "phone_number.restored",
    *(f"damage.{family}.restored.{stat}" for family in FAMILIES for stat in STATISTICS),
)
PICTURES = {  # file -> alt text
    "restored_grid.png": "restored test digits (results/restored_grid.png)",
    "damage_accuracy.png": "restored accuracy by damage family (results/damage.csv)",
    "losses.png": "GAN losses per iteration (data/gan/losses.csv)",
}


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], capture_output=True, text=True)


def resolve_base(rev: str) -> str:
    """The commit `rev` names, checked to hold committed results; else a PipelineError naming `rev`."""
    found = _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if found.returncode != 0:
        raise PipelineError(f"--base {rev!r}: no such git revision in this repository (try `git fetch`)")
    sha = found.stdout.strip()
    for path in ("dvc.lock", "results/metrics.json"):
        if _git("cat-file", "-e", f"{sha}:{path}").returncode != 0:
            raise PipelineError(
                f"--base {rev!r} ({sha[:7]}) has no results: {path} is not committed there; "
                "pick a revision whose pipeline run is committed"
            )
    return sha


def dvc_json(*args: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "dvc", *args, "--json"], capture_output=True, text=True)
    if result.returncode != 0:
        raise PipelineError(f"dvc {' '.join(args)} failed: {result.stderr.strip()}")
    return json.loads(result.stdout or "{}")


def _value(value) -> str:
    return "-" if value is None else f"`{json.dumps(value)}`"


def _number(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def _signed(delta: float) -> str:
    return "0" if delta == 0 else f"{delta:+.4g}"


def params_section(params: dict[str, dict]) -> list[str]:
    changed = sorted(key for key, pair in params.items() if pair["old"] != pair["new"])
    lines = ["## Params that changed", "", "From `dvc params diff`; every other param is equal on both sides.", ""]
    if not changed:
        return [*lines, "No param changed.", ""]
    lines += ["| param | base | head |", "|---|---|---|"]
    lines += [f"| `{key}` | {_value(params[key]['old'])} | {_value(params[key]['new'])} |" for key in changed]
    return [*lines, ""]


def comparison_note(base: dict, head: dict) -> tuple[bool, bool, str]:
    """(compare the sides' metrics at all, mark changes beyond the seed spread, why) from each side's params."""
    if small_run.is_small(base) != small_run.is_small(head):
        small = "head" if small_run.is_small(head) else "base"
        return (
            False,
            False,
            (
                f"{small.capitalize()}'s results come from the small configuration (pipeline/review/small_run.py) and the "
                "other side's from a larger run: their metrics are not compared, head's are listed alone."
            ),
        )
    if seed_spread.at_benchmark_setting(base) and seed_spread.at_benchmark_setting(head):
        return (
            True,
            True,
            (
                f"**beyond** marks a change larger than the seed-to-seed spread (max - min over three training seeds) "
                f"of {seed_spread.SOURCE}; smaller changes are what a reseed alone does. "
                "The benchmark measured the damage table only."
            ),
        )
    setting = ", ".join(f"`{k}={json.dumps(v)}`" for k, v in seed_spread.BENCHMARK_SETTING.items())
    return (
        True,
        False,
        (
            f"No change is marked: the seed-to-seed spread ({seed_spread.SOURCE}) was measured at {setting}, and these "
            "runs are not both at that setting."
        ),
    )


def metrics_section(metrics: dict[str, dict], compare: bool, mark: bool, note: str) -> list[str]:
    lines = ["## Headline metrics", "", "From `dvc metrics diff` of `results/metrics.json`. " + note, ""]
    if not compare:
        lines += ["| metric | head |", "|---|---|"]
        return [*lines, *(f"| `{key}` | {_number(metrics.get(key, {}).get('new'))} |" for key in HEADLINE), ""]
    lines += ["| metric | base | head | change | seed spread | beyond |", "|---|---|---|---|---|---|"]
    for key in HEADLINE:
        old, new = metrics.get(key, {}).get("old"), metrics.get(key, {}).get("new")
        delta = None if old is None or new is None else new - old
        spread = seed_spread.SPREADS.get(key)
        beyond = "-"
        if mark and spread is not None and delta is not None:
            beyond = "**beyond**" if abs(delta) > spread else "no"
        lines.append(
            f"| `{key}` | {_number(old)} | {_number(new)} | {'-' if delta is None else _signed(delta)} "
            f"| {_number(spread)} | {beyond} |"
        )
    return [*lines, ""]


def draw_pictures(plots: dict, sides: list[tuple[str, str]], out: Path) -> list[str]:
    """Draw each picture that at least one side has data for; (revision, label) per side. The names drawn."""
    drawn = []
    grids = [
        (label, path)
        for rev, label in sides
        if (path := pr_pictures.image_path(plots, "results/restored_grid.png", rev))
    ]
    if grids:
        pr_pictures.side_by_side_images(grids, out / "restored_grid.png")
        drawn.append("restored_grid.png")
    for name, field, draw in (
        ("damage_accuracy.png", "restored_judge", pr_pictures.damage_accuracy),
        ("losses.png", "d_loss", pr_pictures.loss_curves),
    ):
        data = [(label, rows) for rev, label in sides if (rows := pr_pictures.vega_rows(plots, field, rev))]
        if data:
            draw(data, out / name)
            drawn.append(name)
    return drawn


def runs_section(locks: list[tuple[str, dict]], experiment: str) -> list[str]:
    lines = ["## MLflow runs", ""]
    for label, lock in locks:
        found = pr_runs.parent_of_evaluation(lock, experiment)
        lines.append(f"- {label}: {found.markdown() if isinstance(found, pr_runs.FoundRun) else 'not found: ' + found}")
    return [*lines, ""]


def write_report(base_rev: str, out: Path, image_url: str | None) -> None:
    if out.exists() and not out.is_dir():
        raise PipelineError(f"--out {out}: a file, expected a folder for {REPORT_NAME} and its pictures")
    if not Path("results/metrics.json").is_file() or not Path("dvc.lock").is_file():
        raise PipelineError("head (the workspace) has no results: run `dvc repro` or `dvc pull` first")
    sha = resolve_base(base_rev)
    params = dvc_json("params", "diff", sha, "--all").get("params.yaml", {})
    metrics = dvc_json("metrics", "diff", sha, "--all").get("results/metrics.json", {})
    base_params = {key: pair["old"] for key, pair in params.items()}
    head_params = {key: pair["new"] for key, pair in params.items()}
    compare, mark, note = comparison_note(base_params, head_params)
    base_label, head_label = f"base {base_rev} ({sha[:7]})", "head (workspace)"
    sides = [(sha, base_label), ("workspace", head_label)] if compare else [("workspace", head_label)]

    out.mkdir(parents=True, exist_ok=True)
    for name in PICTURES:  # a picture this run cannot draw must not survive from an earlier one
        (out / name).unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as copies:
        plots = dvc_json("plots", "diff", sha, "-o", copies).get("data", {})
        drawn = draw_pictures(plots, sides, out)

    prefix = f"{image_url.rstrip('/')}/" if image_url else ""
    missing = [PICTURES[name] for name in PICTURES if name not in drawn]
    lines = [
        MARKER,
        f"# Pull request report: {base_label} → {head_label}",
        "",
        *params_section(params),
        *metrics_section(metrics, compare, mark, note),
        "## Pictures",
        "",
        f"Drawn from the files `dvc plots diff` reads; {', '.join(label for _, label in sides)}, left to right.",
        "",
        *(f"![{PICTURES[name]}]({prefix}{name})\n" for name in drawn),
        *([f"Not drawn, no side had the data: {'; '.join(missing)}.", ""] if missing else []),
        *runs_section(
            [
                (base_label, yaml.safe_load(_git("show", f"{sha}:dvc.lock").stdout)),
                (head_label, yaml.safe_load(Path("dvc.lock").read_text())),
            ],
            str(head_params.get("tracking.experiment", "digit-restore")),
        ),
    ]
    with atomic_path(out / REPORT_NAME) as tmp:
        tmp.write_text("\n".join(lines))
    print(f"wrote {out / REPORT_NAME} and {len(drawn)} picture(s)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipeline.review.pr_report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="git revision to compare the workspace with, e.g. origin/main")
    parser.add_argument("--out", type=Path, default=Path("reports/pr"), help="folder for report.md and its PNGs")
    parser.add_argument(
        "--image-url", help="URL the PNGs will be served from (a PR comment); default: beside report.md"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    sys.exit(run_stage(lambda params: write_report(args.base, args.out, args.image_url)))
