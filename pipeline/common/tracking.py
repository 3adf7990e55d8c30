"""MLflow bookkeeping: one parent run per pipeline configuration, one child run per stage execution.

DVC runs each stage as its own process, so the stages find their common parent
by a key: the hash of the flattened params, the git commit and the DVC
experiment name. Every stage of one `dvc repro` or `dvc exp run` therefore
attaches its child run to the same parent, and the parent carries all params
plus the headline metrics, which is what the MLflow compare view needs.

Each run is tagged with the code (git commit, dirty flag), the DVC experiment
name and the md5 of every data input as dvc.lock records it, and with the
process that owns it: a process killed with -9 ends no run, so each stage first
marks KILLED the runs left RUNNING by a process of this host that is gone.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import mlflow
import psutil
import yaml
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from pipeline.common import paths
from pipeline.common.config import Params
from pipeline.common.param_keys import flatten
from pipeline.common.server_access import explain_refusal

KEY_TAG = "digit_restore.pipeline_key"
HOST_TAG = "digit_restore.host"
PID_TAG = "digit_restore.pid"
STARTED_TAG = "digit_restore.process_started"
DATA_TAG_PREFIX = "data_md5."
MAX_BATCH = 1000  # MLflow's limit on metrics per log_batch call


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


def data_hashes(stage: str) -> dict[str, str]:
    """`data_md5.<path>` -> the md5 that dvc.lock records for each output of an earlier stage that `stage` reads.

    DVC writes a stage's lock entry when the stage finishes and checks every input before it runs the next one,
    so under `dvc repro` / `dvc exp run` these are the exact inputs. Run by hand, a stage reports what dvc.lock says.
    """
    try:
        deps = yaml.safe_load(Path("dvc.yaml").read_text())["stages"][stage].get("deps", [])
        locked = yaml.safe_load(Path("dvc.lock").read_text())["stages"]
    except (OSError, KeyError, TypeError, AttributeError, yaml.YAMLError):
        return {}
    return locked_hashes([d if isinstance(d, str) else next(iter(d)) for d in deps], locked)


def locked_hashes(deps: list[str], locked: dict) -> dict[str, str]:
    """`data_md5.<path>` -> md5 of each output of dvc.lock's `locked` stages that one of `deps` lies in: the tags a
    stage's run carries, so a dvc.lock also finds the runs that read its data (pipeline.review.pr_runs)."""
    outs = {out["path"]: out["md5"] for entry in locked.values() for out in entry.get("outs", []) if "md5" in out}
    hashes = {}
    for dep in deps:
        owner = next((path for path in outs if dep == path or dep.startswith(f"{path}/")), None)
        if owner:
            hashes[f"{DATA_TAG_PREFIX}{owner}"] = outs[owner]
    return hashes


def process_tags() -> dict[str, str]:
    """The process that owns a run: host, pid and start time (a pid alone may be reused)."""
    me = psutil.Process()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(me.pid), STARTED_TAG: repr(me.create_time())}


def _process_alive(tags: dict[str, str]) -> bool:
    try:
        process = psutil.Process(int(tags[PID_TAG]))
        same = abs(process.create_time() - float(tags[STARTED_TAG])) < 1.0
        return same and process.status() != psutil.STATUS_ZOMBIE
    except psutil.AccessDenied:
        return True
    except (KeyError, ValueError, psutil.NoSuchProcess):
        return False


def end_abandoned_runs(client: MlflowClient, experiment_id: str) -> None:
    """Mark KILLED the runs of this host still RUNNING whose process is gone (kill -9, the OOM killer, a power
    cut: nothing ended them). Runs of other hosts are left alone: their processes cannot be seen from here."""
    host = socket.gethostname()
    running = client.search_runs(
        [experiment_id], filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'"
    )
    for run in running:
        if not _process_alive(run.data.tags):
            client.set_terminated(run.info.run_id, "KILLED")
            print(
                f"MLflow run {run.info.run_id} ({run.data.tags.get('dvc_stage', 'unknown stage')}) was left RUNNING "
                f"by process {run.data.tags[PID_TAG]}, which is gone; marked it KILLED"
            )


@contextmanager
def _sqlite_creation_lock(uri: str):
    """Hold an exclusive lock beside a SQLite store while MLflow opens it. Two stages that open a fresh store at
    once (`dvc queue start -j 2` on a new clone) would otherwise both run its schema migrations, and one fails
    ("duplicate column name", "table _alembic_tmp_metrics already exists")."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    path = Path(uri.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def open_experiment(name: str) -> tuple[MlflowClient, str]:
    """A client of the tracking store and the id of experiment `name`, created if new. (A stage's entry point,
    common/cli.run_stage, has checked that the store answers before the stage began.)"""
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    with _sqlite_creation_lock(uri):
        client = MlflowClient(uri)  # opens (and, if new, creates) the store
        return client, _experiment_id(client, name, uri)


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
    identity = json.dumps({"params": flat, "commit": tags["git_commit"], "exp": tags["dvc_exp_name"]}, sort_keys=True)
    key = hashlib.sha256(identity.encode()).hexdigest()[:16]
    found = client.search_runs([experiment_id], filter_string=f"tags.`{KEY_TAG}` = '{key}'", max_results=1)
    if found:
        return found[0].info.run_id
    name = tags["dvc_exp_name"] or f"{params.data.dataset}-{params.gan.recipe}-{key[:6]}"
    run = client.create_run(experiment_id, run_name=name, tags={**tags, KEY_TAG: key})
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in flat.items()])
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


@contextmanager
def stage_run(params: Params, stage: str, section: str):
    """Open the child run of `stage` under the configuration's parent run; yield (client, child_id, parent_id).

    The child logs the params of its own section; the parent holds them all, and the data hashes of all its
    stages. The child is nested by id, so the parent stays FINISHED and no stage process holds it RUNNING; the
    child ends FAILED if the stage raises.
    """
    with explain_refusal(tracking_uri(), params.tracking.experiment):  # a read-only user stops here, before the work
        client, experiment_id = open_experiment(params.tracking.experiment)
        end_abandoned_runs(client, experiment_id)
        tags = {**provenance(), "dataset": params.data.dataset}
        parent_id = _parent_run_id(client, experiment_id, params, tags)
        data = data_hashes(stage)
        client.log_batch(parent_id, tags=[RunTag(k, v) for k, v in data.items()])
        own_params = {k: v for k, v in flatten(params).items() if k.startswith(f"{section}.")}
        child = mlflow.start_run(
            experiment_id=experiment_id,
            run_name=stage,
            parent_run_id=parent_id,
            tags={**tags, **data, **process_tags(), "dvc_stage": stage},
        )
    with child:
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
