"""README.md and docs/ point only at files that exist, README stays a page a newcomer reads in minutes, and the
figures README gives from `dvc metrics show` are those of the committed results/metrics.json."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")  # markdown links and images, without their #anchor
KEY = re.compile(r"`([a-z_]+(?:\.(?:<r>|[a-z0-9_]+))+)`")  # a metrics.json key as `dvc metrics show` names it
NUMBER = re.compile(r"^-?\d+\.\d+$")
# The cells README's results table must give: the damage table's families x restorers x readers, and the headline.
REQUIRED = {
    *(
        f"damage.{family}.{restorer}.accuracy_{reader}"
        for family in ("classic", "boxes", "strokes")
        for restorer in ("masked", "navier_stokes", "restored")
        for reader in ("judge", "second")
    ),
    "accuracy.restored",
}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page):
    targets = [t for t in LINK.findall(page.read_text()) if "://" not in t]
    missing = [t for t in targets if not (page.parent / t).exists()]
    assert not missing, f"{page.name} links to missing files: {missing}"


def test_readme_is_short_and_links_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    assert {p.name for p in PAGES[1:]} <= set(re.findall(r"\(docs/([a-z_]+\.md)\)", readme))


def metric(metrics: dict, key: str) -> float:
    value = metrics
    for part in key.split("."):
        assert isinstance(value, dict) and part in value, f"README names `{key}`, which results/metrics.json lacks"
        value = value[part]
    return value


def shown(cell: str) -> str:
    """A cell's number as written, without bold or a key beside it."""
    return KEY.sub("", cell).replace("*", "").replace("(", "").replace(")", "").strip()


def same_as_displayed(value: float, written: str) -> bool:
    """`written` is `value` rounded to as many decimals as it shows (at least 3: a fraction, not a guess)."""
    decimals = len(written.split(".")[1])
    return decimals >= 3 and round(value, decimals) == float(written)


def results_table(readme: str) -> list[tuple[str, str]]:
    """(key, cell) for each cell of README's results table: the table whose first column names a key with `<r>`,
    each other column's header naming the restorer `<r>` stands for. A cell that names its own key uses it."""
    cells = []
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in readme.splitlines()
        if line.startswith("|")
    ]
    header = None
    for row in rows:
        if set("".join(row)) <= set("-: "):
            continue
        keys = KEY.findall(row[0])
        if not keys or "<r>" not in keys[-1]:
            header = row
            continue
        restorers = [KEY.findall(cell) or re.findall(r"`([a-z_]+)`", cell) for cell in header[1:]]
        for restorer, cell in zip(restorers, row[1:]):
            own = KEY.findall(cell)
            cells.append((own[0] if own else keys[-1].replace("<r>", restorer[-1]), cell))
    return cells


def committed_metrics() -> dict:
    """results/metrics.json as committed: README gives the committed run's figures, and a newcomer's `dvc repro` on
    another CPU rewrites the working copy with its own last digits before they run the tests."""
    committed = subprocess.run(["git", "show", "HEAD:results/metrics.json"], cwd=ROOT, capture_output=True, text=True)
    return json.loads(
        committed.stdout if committed.returncode == 0 else (ROOT / "results" / "metrics.json").read_text()
    )


def test_readme_results_table_is_results_metrics_json():
    """Each cell of README's results table, and each `key` number README writes in prose, is the value of that key in
    results/metrics.json as displayed, so the two cannot drift apart; the table must be there."""
    readme = (ROOT / "README.md").read_text()
    metrics = committed_metrics()
    table = results_table(readme)
    missing = REQUIRED - {key for key, _ in table}
    assert not missing, f"README's results table lacks {sorted(missing)}"
    prose = [
        (key, number)
        for key, number in re.findall(r"`([a-z_]+(?:\.[a-z0-9_]+)*)`:? (-?\d+\.\d+)", readme)
        if key.split(".")[0] in metrics
    ]
    wrong = []
    for key, cell in [*table, *prose]:
        written = shown(cell)
        assert NUMBER.match(written), f"README's cell for `{key}` is not a number: {cell!r}"
        if not same_as_displayed(metric(metrics, key), written):
            wrong.append(f"`{key}`: README {written}, results/metrics.json {metric(metrics, key)}")
    assert not wrong, "README's results differ from results/metrics.json:\n" + "\n".join(wrong)


def test_readme_quotes_evaluates_summary_with_the_committed_numbers():
    """The line README says `dvc repro` ends with: evaluate's summary, printed from metrics.json's `accuracy`."""
    readme = (ROOT / "README.md").read_text()
    accuracy = committed_metrics()["accuracy"]
    quoted = re.search(r"accuracy clean (\S+) masked (\S+) restored (\S+);", readme)
    assert quoted, "README no longer quotes evaluate's summary line"
    assert quoted.groups() == tuple(f"{accuracy[k]:.4f}" for k in ("clean", "masked", "restored"))
