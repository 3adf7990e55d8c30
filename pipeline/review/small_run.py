"""The small configuration CI runs a pull request on when it cannot `dvc pull` the team's results.

    dvc exp run $(python -m pipeline.review.small_run)     # prints one `-S key=value` word per line

The tests' tiny configuration too (tests/conftest.py builds TINY_OVERRIDES from it): every stage does
real work, on 512 training and 256 test images with a few GAN iterations, in a few minutes on a hosted runner.
Its metrics say that the change runs, not how good it is, and cannot be compared with a full run's: the PR report
(pipeline.review.pr_report) recognises a side run at these values and compares no metrics between it and a full run.
"""

from __future__ import annotations

import json

SMALL_RUN = {
    "data.max_train": 512,
    "data.max_test": 256,
    "classifier.epochs": 1,
    "gan.epochs": 2,
    "gan.steps_per_epoch": 3,
    "gan.batch_size": 64,
    "evaluate.grid_digits": 8,
}


def set_args() -> list[str]:
    """`dvc exp run`'s arguments for SMALL_RUN (values in YAML/JSON spelling: null, true, 0.5)."""
    return [word for key, value in SMALL_RUN.items() for word in ("-S", f"{key}={json.dumps(value)}")]


def is_small(params: dict[str, object]) -> bool:
    """Whether a run with these flattened params (`dvc params diff`'s names) is the small configuration."""
    return all(params.get(key) == value for key, value in SMALL_RUN.items())


if __name__ == "__main__":
    print("\n".join(set_args()))
