"""Sharing experiments beyond one machine, as the sweep workflow does: `dvc exp push` from one clone, `dvc exp pull`
in a fresh one, through a local bare Git remote and a local DVC remote (real git, real DVC, no server).

Clone A starts from the session's `baseline_repo` baseline (its DVC cache shared, so only what the experiment changes
reruns); clone B has its own empty cache and gets everything from the remotes.
"""

from __future__ import annotations

import hashlib
import json
import sys

import pytest
from conftest import run

pytestmark = pytest.mark.slow  # builds or runs a pipeline, or starts a server

EXPERIMENT = "shared-lr"
OUTPUTS = [
    "data/raw/train-images-idx3-ubyte.gz",
    "data/masked/train.npz",
    "data/classifier/model.keras",
    "data/gan/generator.keras",
    "data/gan/losses.csv",
    "data/gan/samples/epoch_02.png",
    "results/metrics.json",
    "results/damage.csv",
    "params.yaml",
    "dvc.lock",
]


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def flat(metrics: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in metrics.items():
        out |= flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
    return out


def dvc(*args: str, cwd):
    return run([sys.executable, "-m", "dvc", *args], cwd)


@pytest.fixture(scope="module")
def shared(baseline_repo, tmp_path_factory):
    """(A, B): A ran EXPERIMENT and pushed it; B is a fresh clone that pulled it."""
    top = tmp_path_factory.mktemp("share")
    git_remote, dvc_remote, a, b = top / "origin.git", top / "dvc-remote", top / "a", top / "b"
    run(["git", "clone", "-q", "--bare", str(baseline_repo), str(git_remote)], top)
    run(["git", "clone", "-q", str(git_remote), str(a)], top)
    for name, value in (("user.name", "digit-restore tests"), ("user.email", "tests@digit-restore.invalid")):
        run(["git", "config", name, value], a)
    dvc("remote", "add", "-d", "team", str(dvc_remote), cwd=a)
    run(["git", "commit", "-q", "-m", "team DVC remote", ".dvc/config"], a)
    run(["git", "push", "-q", "origin", "HEAD"], a)
    dvc("cache", "dir", "--local", str(baseline_repo / ".dvc/cache"), cwd=a)
    dvc("checkout", cwd=a)
    dvc("exp", "run", "-n", EXPERIMENT, "-S", "gan.lr_g=0.0002", cwd=a)
    dvc("exp", "push", "origin", EXPERIMENT, cwd=a)

    run(["git", "clone", "-q", str(git_remote), str(b)], top)
    assert not (b / "data").exists() and not (b / ".dvc/config.local").exists()
    dvc("exp", "pull", "origin", EXPERIMENT, cwd=b)
    return a, b


def test_a_pulled_experiment_is_listed_with_its_params_and_metrics(shared):
    a, b = shared
    shown = json.loads(dvc("exp", "show", "--json", cwd=b).stdout)
    experiments = {exp["name"]: exp["revs"][0]["data"] for rev in shown for exp in rev.get("experiments") or []}
    assert list(experiments) == [EXPERIMENT]
    data = experiments[EXPERIMENT]
    assert data["params"]["params.yaml"]["data"]["gan"]["lr_g"] == 0.0002
    assert data["params"]["params.yaml"]["data"]["gan"]["epochs"] == 2  # the baseline's tiny params
    # DVC leaves out the metrics that are null (a recovered fraction where damage cost no accuracy).
    assert flat(data["metrics"]["results/metrics.json"]["data"]) == {
        key: value
        for key, value in flat(json.loads((a / "results/metrics.json").read_text())).items()
        if value is not None
    }


def test_exp_apply_and_dvc_pull_restore_its_outputs_byte_for_byte(shared):
    a, b = shared
    dvc("exp", "apply", EXPERIMENT, cwd=b)
    dvc("pull", cwd=b)
    for name in OUTPUTS:
        assert sha256(b / name) == sha256(a / name), name
    assert "Data and pipelines are up to date." in dvc("status", cwd=b).stdout
