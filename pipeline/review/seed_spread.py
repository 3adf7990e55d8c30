"""How far the headline metrics move between training seeds alone: the yardstick of the PR report's marks.

A change between two runs that is smaller than what a reseed alone does is noise. The numbers are read from the seed
table of docs/benchmarks.md, the blind default on three training seeds (SOURCE), as the table prints them (accuracy
and changed pixels in %, the rest as fractions): a page that changes changes the marks with it.
The spread of a metric is max - min over the seeds, and at least one unit of the table's last digit (three equal
printed values still differ below it). It was measured at BENCHMARK_SETTING: on other data sizes or training
lengths the seed spread is unknown (and much larger on small runs), so the report marks nothing there.
"""

from __future__ import annotations

from pathlib import Path

SOURCE = (
    "docs/benchmarks.md's seed table, `python benchmarks/restoration.py --seeds 0 1 2` at 21fb020 "
    "(the blind default on full MNIST, training seeds 0, 1, 2)"
)
# The params of that benchmark that set how much data and training a run has.
BENCHMARK_SETTING = {
    "data.dataset": "mnist",
    "data.max_train": None,
    "data.max_test": None,
    "classifier.epochs": 3,
    "gan.recipe": "blind",
    "gan.epochs": None,  # the blind recipe's 3
    "gan.steps_per_epoch": None,
}
# statistic -> (the table's unit as a fraction, its last printed digit as a fraction)
UNITS = {
    "accuracy_judge": (0.01, 1e-4),
    "accuracy_second": (0.01, 1e-4),
    "recovered_judge": (1.0, 1e-3),
    "recovered_second": (1.0, 1e-3),
    "l1_damage": (1.0, 1e-3),
    "changed_outside": (0.01, 1e-5),
}
PAGE = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"
FAMILY_ROWS = {  # the page's name of each family -> evaluate's
    "classic 8x8 box": "classic",
    "one box, side 4..12, anywhere": "boxes",
    "2-3 boxes, side 4..6": "small_boxes",
    "1-2 dropped pen segments": "strokes",
}
# statistic -> its column of the seed table, and which of a "judge / second" pair (None: the cell is one number)
COLUMNS = {
    "accuracy_judge": (4, 0),
    "accuracy_second": (4, 1),
    "recovered_judge": (5, 0),
    "recovered_second": (5, 1),
    "l1_damage": (6, 1),  # OpenCV's / the restorer's
    "changed_outside": (7, None),
}


def seed_table(page: str) -> dict[str, dict[str, tuple[float, ...]]]:
    """family -> statistic -> the blind restorer's values on seeds 0, 1, 2, in the table's units: the rows of
    `page` whose first cell is a seed and whose second is one of FAMILY_ROWS."""
    rows = {family: [] for family in FAMILY_ROWS.values()}
    for line in page.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 8 and cells[0] in ("0", "1", "2") and cells[1] in FAMILY_ROWS:
            rows[FAMILY_ROWS[cells[1]]].append(cells)

    def value(cell: str, part: int | None) -> float:
        return float((cell if part is None else cell.split(" / ")[part]).rstrip("%"))

    return {
        family: {stat: tuple(value(row[col], part) for row in found) for stat, (col, part) in COLUMNS.items()}
        for family, found in rows.items()
    }


SEEDS = seed_table(PAGE.read_text())


def _spread(values: tuple[float, ...], unit: float, digit: float) -> float:
    return max(round((max(values) - min(values)) * unit, 10), digit)


# `dvc metrics diff`'s name of each metric (damage.<family>.restored.<statistic>) -> its seed spread, as a fraction
SPREADS = {
    f"damage.{family}.restored.{stat}": _spread(values, *UNITS[stat])
    for family, stats in SEEDS.items()
    for stat, values in stats.items()
}


def at_benchmark_setting(params: dict[str, object]) -> bool:
    """Whether a run with these flattened params has the data and training the spread was measured with."""
    return all(params.get(key) == value for key, value in BENCHMARK_SETTING.items())
