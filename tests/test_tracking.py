import socket
import time

import pytest

from conftest import ROOT
from pipeline import tracking
from pipeline.config import load_params
from pipeline.errors import PipelineError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_tracking_server_that_is_down_fails_in_seconds(monkeypatch):
    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    started = time.monotonic()
    with pytest.raises(PipelineError, match=f"MLFLOW_TRACKING_URI={uri}: no MLflow server answers"):
        with tracking.stage_run(load_params(ROOT / "params.yaml"), "train_gan", "gan"):
            pytest.fail("the stage body must not run")
    assert time.monotonic() - started < tracking.SERVER_TIMEOUT_S + 5


def test_default_store_is_anchored_on_dvc_root(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert tracking._artifact_location(tracking.tracking_uri()) == (tmp_path / "mlartifacts").as_uri()
