"""Team scale with real components: the pipeline logs to a shared `mlflow server` over HTTP, and a shared
DVC remote lets a fresh clone get data and models without training anything.

Both use the `team_repo` fixture (conftest.py): one tiny pipeline run, two configurations (mask 8, mask 6).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import offline_env, run
from mlflow.tracking import MlflowClient

from pipeline.common.tracking import KEY_TAG

pytestmark = pytest.mark.slow  # builds or runs a pipeline, or starts a server

OUTPUTS = [  # one file of each DVC-tracked output a stage produced
    "data/raw/train-images-idx3-ubyte.gz",
    "data/masked/train.npz",
    "data/classifier/model.keras",
    "data/gan/generator.keras",
    "data/gan/samples/epoch_02.png",
]


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pipeline_logs_runs_metrics_and_artifacts_to_the_server(team_repo, tmp_path):
    client = MlflowClient(team_repo.tracking_uri)
    experiment = client.get_experiment_by_name("digit-restore")
    assert experiment.artifact_location.startswith("mlflow-artifacts:"), "artifacts must go through the server"
    parents = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{KEY_TAG}` != ''")
    by_size = {run.data.params["mask.families.strokes.width"]: run for run in parents}
    assert sorted(by_size) == ["2", "3"] and len(parents) == 2
    assert by_size["2"].data.tags["dvc_exp_name"] == "thin-strokes"

    # The committed configuration's headline numbers on the server are the ones in results/metrics.json.
    metrics = json.loads((team_repo.path / "results/metrics.json").read_text())
    for variant in ("clean", "masked", "restored"):
        assert by_size["3"].data.metrics[f"accuracy.{variant}"] == metrics["accuracy"][variant]

    def children(parent) -> dict:
        found = client.search_runs(
            [experiment.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
        )
        return {run.data.tags["dvc_stage"]: run for run in found}

    stages = children(by_size["3"])
    assert sorted(stages) == ["evaluate", "train_classifier", "train_gan"]
    assert sorted(children(by_size["2"])) == ["evaluate", "train_gan"]  # the classifier was not retrained
    gan = stages["train_gan"].info.run_id
    assert [m.step for m in client.get_metric_history(gan, "d_loss")] == list(range(6))

    # Artifacts went up through the server's proxy into its --artifacts-destination, not next to the repo.
    downloaded = client.download_artifacts(gan, "samples/epoch_02.png", str(tmp_path))
    assert sha256(Path(downloaded)) == sha256(team_repo.path / "data/gan/samples/epoch_02.png")
    stored = list(team_repo.server_artifacts.rglob("epoch_02.png"))
    assert len(stored) == 2  # one sample grid per train_gan run
    assert not (team_repo.path / "mlflow.db").exists() and not (team_repo.path / "mlartifacts").exists()


def test_dvc_remote_restores_a_fresh_clone_without_rerunning(team_repo, tmp_path):
    repo, remote, clone = team_repo.path, tmp_path / "dvc-remote", tmp_path / "clone"
    run([sys.executable, "-m", "dvc", "remote", "add", "-d", "shared", str(remote)], repo)
    run(["git", "commit", "-q", "-m", "shared DVC remote", ".dvc/config"], repo)
    pushed = run([sys.executable, "-m", "dvc", "push"], repo).stdout
    assert "pushed" in pushed and any(remote.rglob("*"))

    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    assert not (clone / "data").exists()
    run([sys.executable, "-m", "dvc", "pull"], clone)
    for name in OUTPUTS:
        assert sha256(clone / name) == sha256(repo / name), name

    env = offline_env()  # no MLFLOW_TRACKING_URI: a stage that ran would create mlflow.db in the clone
    status = run([sys.executable, "-m", "dvc", "status"], clone, env).stdout
    assert "Data and pipelines are up to date." in status
    repro = run([sys.executable, "-m", "dvc", "repro"], clone, env).stdout
    assert "Running stage" not in repro and "up to date" in repro
    assert not (clone / "mlflow.db").exists()
