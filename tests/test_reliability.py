"""Faults, end to end on the tiny pipeline, with real DVC, the real SQLite MLflow store and a real kill -9.

- The same params give the same metrics.json, bit for bit.
- kill -9 of train_gan mid-epoch, then `dvc repro`: training resumes from the last completed epoch and ends
  with the generator of an uninterrupted run; the killed MLflow run ends KILLED; the resumed run holds one
  loss value per iteration.
- A diverging run fails its MLflow run and leaves the previous generator in place.
- Every run names the commit and the md5 of each data input, as dvc.lock records them.
- Two queued experiments run at once and both land, complete, in the one SQLite store.

Each test works on its own copy of one reproduced repository.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import psutil
import pytest
import yaml
from conftest import (
    TINY_OVERRIDES,
    copy_built,
    offline_env,
    run,
    start_queue,
    write_params,
)
from mlflow.tracking import MlflowClient

from pipeline.common import paths
from pipeline.common.config import load_params
from pipeline.training.gan import LOSS_NAMES

pytestmark = pytest.mark.slow  # builds or runs a pipeline, or starts a server

# The kill test trains three epochs, so that a kill after the first checkpoint always lands mid-training.
KILL_EPOCHS, KILL_STEPS = 3, 4
TINY_ITERATIONS = TINY_OVERRIDES["gan"]["epochs"] * TINY_OVERRIDES["gan"]["steps_per_epoch"]
DVC = [sys.executable, "-m", "dvc"]
LOSSES = LOSS_NAMES


@pytest.fixture
def repo(tiny_repo, tmp_path) -> Path:
    """A private copy of the session's reproduced tiny repository, its first GAN outputs and metrics kept in
    ../first, so that no test sees another's changes."""
    repo = copy_built(tiny_repo, tmp_path / "repo")
    keep_first(repo)
    return repo


def keep_first(repo: Path) -> None:
    first = repo.parent / "first"
    shutil.rmtree(first, ignore_errors=True)
    shutil.copytree(repo / paths.GAN_DIR, first / "gan", ignore=shutil.ignore_patterns("checkpoint"))
    shutil.copy2(repo / paths.METRICS, first / "metrics.json")


def client_for(repo) -> MlflowClient:
    return MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")


def stage_runs(repo, stage: str) -> list:
    """The MLflow runs of `stage`, oldest first."""
    client = client_for(repo)
    experiment = client.get_experiment_by_name("digit-restore")
    found = client.search_runs([experiment.experiment_id], f"tags.dvc_stage = '{stage}'", max_results=1000)
    return sorted(found, key=lambda r: r.info.start_time)


def weights(path) -> list[np.ndarray]:
    return keras.models.load_model(path).get_weights()


def same_weights(a, b) -> bool:
    wa, wb = weights(a), weights(b)
    return len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa, wb))


def kill_stage_after_first_checkpoint(repro: subprocess.Popen, state_file, stage: str = "train_gan") -> None:
    """kill -9 the stage's process (a child of `dvc repro`) as soon as the first epoch's checkpoint exists."""
    deadline = time.monotonic() + 600
    while not state_file.exists():
        assert repro.poll() is None, "dvc repro ended before the first checkpoint was written"
        assert time.monotonic() < deadline, "no checkpoint after 10 minutes"
        time.sleep(0.02)
    for process in psutil.Process(repro.pid).children(recursive=True):
        if process.cmdline()[-2:] == ["-m", f"pipeline.{stage}"]:
            process.send_signal(signal.SIGKILL)
            return
    pytest.fail(f"no pipeline.{stage} process under dvc repro")


def test_same_params_give_the_same_metrics_bit_for_bit(repo):
    run(DVC + ["repro", "-f", "-s", "train_gan"], repo)
    run(DVC + ["repro", "-f", "-s", "evaluate"], repo)
    first = repo.parent / "first"
    assert (repo / paths.METRICS).read_text() == (first / "metrics.json").read_text()
    assert same_weights(repo / paths.GENERATOR_MODEL, first / "gan/generator.keras")


def test_kill_9_mid_epoch_then_repro_resumes_to_the_uninterrupted_generator(repo):
    write_params(repo, {"gan": {"epochs": KILL_EPOCHS, "steps_per_epoch": KILL_STEPS}})
    run(["git", "commit", "-q", "-am", "three epochs"], repo)
    run(DVC + ["repro", "train_gan"], repo)  # the uninterrupted run
    keep_first(repo)
    generator = (repo / paths.GENERATOR_MODEL).read_bytes()
    earlier = {r.info.run_id for r in stage_runs(repo, "train_gan")}
    state_file = repo / paths.GAN_CHECKPOINT
    repro = subprocess.Popen(
        DVC + ["repro", "-f", "-s", "train_gan"],
        cwd=repo,
        env=offline_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    kill_stage_after_first_checkpoint(repro, state_file)
    assert repro.wait(timeout=120) != 0

    with np.load(state_file, allow_pickle=False) as saved:
        done = int(saved["epoch"])
    assert 1 <= done < KILL_EPOCHS, "the kill must land before training ends"
    assert (repo / paths.GENERATOR_MODEL).read_bytes() == generator  # the killed attempt left it in place
    (killed,) = [r for r in stage_runs(repo, "train_gan") if r.info.run_id not in earlier]
    assert killed.info.status == "RUNNING"  # nothing in the killed process could end it

    result = run(DVC + ["repro", "train_gan"], repo)  # the user's next `dvc repro`
    assert f"resuming from the checkpoint of epoch {done}/{KILL_EPOCHS}" in result.stdout
    assert f"MLflow run {killed.info.run_id} (train_gan) was left RUNNING by process" in result.stdout
    client = client_for(repo)
    assert client.get_run(killed.info.run_id).info.status == "KILLED"
    resumed = stage_runs(repo, "train_gan")[-1]
    assert resumed.info.status == "FINISHED" and resumed.data.tags["resumed_from_epoch"] == str(done)
    for name in LOSSES:
        history = client.get_metric_history(resumed.info.run_id, name)
        assert sorted(m.step for m in history) == list(range(KILL_EPOCHS * KILL_STEPS))  # each iteration once
        before_kill = client.get_metric_history(killed.info.run_id, name)
        assert [m.value for m in sorted(history, key=lambda m: m.step)][: len(before_kill)] == [
            m.value for m in sorted(before_kill, key=lambda m: m.step)
        ]

    first = repo.parent / "first/gan"
    assert same_weights(repo / paths.GENERATOR_MODEL, first / "generator.keras")  # bit for bit
    assert (repo / paths.GAN_LOSSES).read_text() == (first / "losses.csv").read_text()
    samples = sorted(p.name for p in (repo / paths.GAN_SAMPLES_DIR).iterdir())
    assert samples == [f"epoch_{e:02d}.png" for e in range(1, KILL_EPOCHS + 1)]
    for name in samples:
        assert (repo / paths.GAN_SAMPLES_DIR / name).read_bytes() == (first / "samples" / name).read_bytes()
    assert list((repo / paths.GAN_CHECKPOINT_DIR).iterdir()) == []  # emptied once training finished


def test_a_diverging_run_fails_its_mlflow_run_and_keeps_the_generator(repo):
    generator = (repo / paths.GENERATOR_MODEL).read_bytes()
    write_params(repo, {"gan": {"lr_g": 1e30, "lr_d": 1e30}})
    result = run(DVC + ["repro", "train_gan"], repo, check=False)
    assert result.returncode != 0
    assert re.search(r"error: training diverged at iteration \d+ \(epoch \d, batch \d\): d_loss=", result.stderr)
    assert (repo / paths.GENERATOR_MODEL).read_bytes() == generator
    diverged = stage_runs(repo, "train_gan")[-1]
    assert diverged.data.params["gan.lr_g"] == "1e+30" and diverged.info.status == "FAILED"


def test_every_run_names_its_code_and_the_md5_of_its_data(repo):
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    commit = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    for stage in ("train_classifier", "train_gan", "evaluate"):
        latest = [r for r in stage_runs(repo, stage) if r.info.status == "FINISHED"][-1]
        read = {d["path"]: d["md5"] for d in lock[stage]["deps"] if d["path"].startswith("data/")}
        assert read, stage
        tags = latest.data.tags
        assert {k.removeprefix("data_md5."): v for k, v in tags.items() if k.startswith("data_md5.")} == read
        assert tags["git_commit"] == commit and tags["git_dirty"] == "false" and tags["dvc_exp_name"] == ""
        parent = client_for(repo).get_run(tags["mlflow.parentRunId"])
        assert all(parent.data.tags[f"data_md5.{path}"] == md5 for path, md5 in read.items())


def queue_status(repo) -> str:
    return run(DVC + ["queue", "status"], repo).stdout


def test_two_queued_experiments_run_at_once_into_one_store(repo):
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "lock"], repo)
    # Both differ from the committed lr_d, so each experiment really retrains the GAN (DVC skips a stage whose
    # params did not change, and its parent run would then have no GAN metrics).
    committed = load_params(repo / "params.yaml").gan.lr_d  # the recipe's, where params.yaml leaves it null
    names = {"lr-d-low": committed / 4, "lr-d-high": committed * 2}
    for name, lr_d in names.items():
        run(DVC + ["exp", "run", "--queue", "-n", name, "-S", f"gan.lr_d={lr_d}"], repo)
    start_queue(repo, 2)
    deadline = time.monotonic() + 900
    while re.search(r"\b(Queued|Running)\b", status := queue_status(repo)):
        assert time.monotonic() < deadline, status
        time.sleep(2)
    assert status.count("Success") == 2, status
    # A worker may miss the idle shutdown (dvc-task's monitor thread can die on a race in kombu's file broker).
    run(DVC + ["queue", "stop"], repo)
    while "0 active, 0 idle" not in queue_status(repo):
        assert time.monotonic() < deadline
        time.sleep(2)

    client = client_for(repo)
    experiment_id = client.get_experiment_by_name("digit-restore").experiment_id
    spans = []
    for name, lr_d in names.items():
        assert "database is locked" not in run(DVC + ["queue", "logs", name], repo).stdout
        (parent,) = client.search_runs(
            [experiment_id], f"tags.dvc_exp_name = '{name}' and tags.`digit_restore.pipeline_key` != ''"
        )
        assert parent.info.status == "FINISHED" and parent.data.params["gan.lr_d"] == str(lr_d)
        assert 0 <= parent.data.metrics["accuracy.restored"] <= 1 and "gan_final_g_loss" in parent.data.metrics
        children = {
            c.data.tags["dvc_stage"]: c
            for c in client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
        }
        assert {"train_gan", "evaluate"} <= set(children)
        assert all(c.info.status == "FINISHED" for c in children.values())
        assert len(client.get_metric_history(children["train_gan"].info.run_id, "d_loss")) == TINY_ITERATIONS
        spans.append(
            (min(c.info.start_time for c in children.values()), max(c.info.end_time for c in children.values()))
        )
    assert max(start for start, _ in spans) < min(end for _, end in spans)  # the two ran at the same time
