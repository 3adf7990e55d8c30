import os
import socket
import subprocess
import sys
import time

import psutil
import pytest
from conftest import ROOT
from mlflow.tracking import MlflowClient
from tracking_server import free_port

from pipeline.common import server_access, tracking
from pipeline.common.cli import run_stage


def test_a_tracking_server_that_is_down_fails_a_stage_in_seconds(monkeypatch, capsys):
    """Checked once, by the stages' entry point, before the stage's own code runs."""
    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(ROOT)
    started = time.monotonic()
    assert run_stage(lambda params: pytest.fail("the stage body must not run")) == 2
    assert f"MLFLOW_TRACKING_URI={uri}: no MLflow server answers" in capsys.readouterr().err
    assert time.monotonic() - started < server_access.SERVER_TIMEOUT_S + 5


def test_default_store_is_anchored_on_dvc_root(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert tracking._artifact_location(tracking.tracking_uri()) == (tmp_path / "mlartifacts").as_uri()


def test_runs_left_running_by_a_dead_process_are_marked_killed_and_no_others(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment_id = client.create_experiment("abandoned")
    victim = subprocess.Popen(["sleep", "60"])
    victim_tags = {
        tracking.HOST_TAG: socket.gethostname(),
        tracking.PID_TAG: str(victim.pid),
        tracking.STARTED_TAG: repr(psutil.Process(victim.pid).create_time()),
    }
    victim.kill()  # kill -9: nothing in the process gets to end its run
    victim.wait()
    me = tracking.process_tags()
    runs = {
        "killed": victim_tags,
        "alive": me,
        "pid_reused": {**me, tracking.STARTED_TAG: repr(float(me[tracking.STARTED_TAG]) - 3600)},
        "other_host": {**victim_tags, tracking.HOST_TAG: "another-host"},
    }
    ids = {
        name: client.create_run(experiment_id, tags={**tags, "dvc_stage": name}).info.run_id
        for name, tags in runs.items()
    }

    tracking.end_abandoned_runs(client, experiment_id)
    status = {name: client.get_run(run_id).info.status for name, run_id in ids.items()}
    assert status == {"killed": "KILLED", "alive": "RUNNING", "pid_reused": "KILLED", "other_host": "RUNNING"}


@pytest.mark.slow
def test_two_stages_that_open_a_fresh_sqlite_store_at_once_both_succeed(tmp_path):
    """Without the lock beside the store, both processes run MLflow's schema migrations and one fails."""
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    script = "from pipeline.common import tracking; print(tracking.open_experiment('race')[1])"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    ids = set()
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-1500:]
        ids.add(out.strip())
    assert len(ids) == 1  # one experiment, found or made by each
