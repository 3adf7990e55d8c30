"""MLflow bookkeeping: one parent run per pipeline configuration, one child run per stage execution.

DVC runs each stage as its own process, so the stages find their common parent
by a key: the hash of the flattened params, the git commit and the DVC
experiment name. Every stage of one `dvc repro` or `dvc exp run` therefore
attaches its child run to the same parent, and the parent carries all params
plus the headline metrics, which is what the MLflow compare view needs.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import mlflow
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from pipeline import paths
from pipeline.config import Params, flatten
from pipeline.errors import PipelineError

KEY_TAG = "digit_restore.pipeline_key"
MAX_BATCH = 1000  # MLflow's limit on metrics per log_batch call
SERVER_TIMEOUT_S = 5


def tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else the SQLite store in the main repository (not in DVC's temporary copies)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{paths.project_root() / 'mlflow.db'}"


def _artifact_location(uri: str) -> str | None:
    """Beside a local SQLite store, artifacts go to <root>/mlartifacts; a server chooses its own."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    return None


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def provenance() -> dict[str, str]:
    """Where the code came from. Pipeline outputs (dvc.lock, results/) do not make the tree dirty."""
    changes = _git("status", "--porcelain", "--", ".", ":!dvc.lock", ":!results")
    return {
        "git_commit": _git("rev-parse", "HEAD") or "unknown",
        "git_dirty": str(bool(changes)).lower(),
        "dvc_exp_name": os.environ.get("DVC_EXP_NAME", ""),
    }


def check_server(uri: str) -> None:
    """Fail in seconds, before any training, when a remote tracking server does not answer
    (MLflow's own client retries for minutes)."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=SERVER_TIMEOUT_S):
            pass
    except OSError as exc:
        raise PipelineError(
            f"MLFLOW_TRACKING_URI={uri}: no MLflow server answers ({exc}); start it, or unset "
            "MLFLOW_TRACKING_URI to use the SQLite store in the repository"
        ) from None


def _experiment_id(client: MlflowClient, name: str, uri: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, artifact_location=_artifact_location(uri))
        except mlflow.exceptions.MlflowException:  # created meanwhile by a concurrent stage
            experiment = client.get_experiment_by_name(name)
    return experiment.experiment_id


def _parent_run_id(client: MlflowClient, experiment_id: str, params: Params, tags: dict[str, str]) -> str:
    flat = flatten(params)
    identity = json.dumps(
        {"params": flat, "commit": tags["git_commit"], "exp": tags["dvc_exp_name"]}, sort_keys=True
    )
    key = hashlib.sha256(identity.encode()).hexdigest()[:16]
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.`{KEY_TAG}` = '{key}'", max_results=1
    )
    if found:
        return found[0].info.run_id
    name = tags["dvc_exp_name"] or f"{params.data.dataset}-mask{params.mask.size}-{key[:6]}"
    run = client.create_run(experiment_id, run_name=name, tags={**tags, KEY_TAG: key})
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in flat.items()])
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


@contextmanager
def stage_run(params: Params, stage: str, section: str):
    """Open the child run of `stage` under the configuration's parent run; yield (client, child_id, parent_id).

    The child logs the params of its own section; the parent holds them all.
    """
    uri = tracking_uri()
    check_server(uri)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment_id = _experiment_id(client, params.tracking.experiment, uri)
    tags = {**provenance(), "dataset": params.data.dataset}
    parent_id = _parent_run_id(client, experiment_id, params, tags)
    own_params = {k: v for k, v in flatten(params).items() if k.startswith(f"{section}.")}
    with mlflow.start_run(run_id=parent_id):
        with mlflow.start_run(
            experiment_id=experiment_id, run_name=stage, nested=True, tags={**tags, "dvc_stage": stage}
        ) as child:
            mlflow.log_params(own_params)
            yield client, child.info.run_id, parent_id


def log_metric_history(client: MlflowClient, run_id: str, history: dict[str, list[float]], first_step: int) -> None:
    """Log per-iteration values with step = global iteration, in batches (one call costs ~6 ms)."""
    now = int(time.time() * 1000)
    metrics = [
        Metric(key, float(value), now, first_step + i)
        for key, values in history.items()
        for i, value in enumerate(values)
    ]
    for start in range(0, len(metrics), MAX_BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + MAX_BATCH])


def log_to_parent(client: MlflowClient, parent_id: str, metrics: dict[str, float]) -> None:
    """Headline numbers also go on the parent run, so the compare view shows them per configuration."""
    now = int(time.time() * 1000)
    client.log_batch(parent_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
