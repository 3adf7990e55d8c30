"""How far the headline metrics move between training seeds alone: the yardstick of the PR report's marks.

A change between two runs that is smaller than what a reseed alone does is noise. The numbers below are the seed table
of docs/benchmarks.md of the blind default on three training seeds (SOURCE), copied as the table prints them
(accuracy and changed pixels in %, the rest as fractions); tests/test_pr_report.py checks them against that page.
The spread of a metric is max - min over the seeds, and at least one unit of the table's last digit (three equal
printed values still differ below it). It was measured at BENCHMARK_SETTING: on other data sizes or training
lengths the seed spread is unknown (and much larger on small runs), so the report marks nothing there.
"""

from __future__ import annotations

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
# family -> statistic -> the blind restorer's values on seeds 0, 1, 2, in the table's units
SEEDS = {
    "classic": {
        "accuracy_judge": (97.32, 97.26, 97.26),
        "accuracy_second": (97.62, 97.43, 97.53),
        "recovered_judge": (0.921, 0.918, 0.918),
        "recovered_second": (0.938, 0.930, 0.934),
        "l1_damage": (0.112, 0.113, 0.112),
        "changed_outside": (0.043, 0.050, 0.045),
    },
    "boxes": {
        "accuracy_judge": (97.35, 97.32, 97.49),
        "accuracy_second": (97.68, 97.79, 97.87),
        "recovered_judge": (0.851, 0.848, 0.866),
        "recovered_second": (0.895, 0.904, 0.911),
        "l1_damage": (0.100, 0.100, 0.099),
        "changed_outside": (0.055, 0.065, 0.057),
    },
    "small_boxes": {
        "accuracy_judge": (97.98, 98.01, 97.97),
        "accuracy_second": (98.27, 98.28, 98.39),
        "recovered_judge": (0.893, 0.897, 0.892),
        "recovered_second": (0.924, 0.925, 0.937),
        "l1_damage": (0.082, 0.082, 0.082),
        "changed_outside": (0.071, 0.078, 0.071),
    },
    "strokes": {
        "accuracy_judge": (97.23, 97.16, 97.13),
        "accuracy_second": (97.29, 97.38, 97.38),
        "recovered_judge": (0.928, 0.925, 0.923),
        "recovered_second": (0.939, 0.942, 0.942),
        "l1_damage": (0.156, 0.156, 0.155),
        "changed_outside": (0.231, 0.271, 0.240),
    },
}


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
