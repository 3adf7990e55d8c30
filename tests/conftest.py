"""Shared fixtures: a throw-away copy of the repository, run end to end on a tiny configuration."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from filelock import FileLock
from tracking_server import mlflow_server

from pipeline.review.small_run import SMALL_RUN

ROOT = Path(__file__).resolve().parents[1]

# CI's small run (pipeline/review/small_run.py) as params.yaml sections: small enough for CI on 2 cores, big enough
# for every stage to do real work.
TINY_OVERRIDES = {}
for _key, _value in SMALL_RUN.items():
    _section, _name = _key.split(".")
    TINY_OVERRIDES.setdefault(_section, {})[_name] = _value


# The shared repositories: each built once per session (build_once), whatever the number of workers.
SHARED_REPOS = ("baseline_repo", "swept_repo", "team_repo", "tiny_repo")
# What makes a test slow (README "Contributing"): the fast tier, `pytest -m "not slow"`, leaves these out.
SLOW_FIXTURES = (*SHARED_REPOS, "tiny_repo_copy", "mlflow_server", "copy_repo")


START_FIRST = ("team_repo", "test_pipeline_e2e", "test_team_auth", "test_reliability", "swept_repo")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Group the tests for pytest-xdist's `--dist=loadgroup` (pyproject.toml) by module, so that each module's
    own fixtures are built once, on one worker. The tests of team_repo share a group, since its server lives in
    the worker that starts it, and so do those of swept_repo, since they run DVC in it and DVC allows one
    command at a time in a repository. A test that uses a shared repository must be marked slow: the fast tier
    would otherwise build a pipeline. Runs before xdist reads the groups."""
    for item in items:
        uses = set(item.fixturenames) & set(SLOW_FIXTURES)
        if uses and not item.get_closest_marker("slow"):
            raise pytest.UsageError(f"{item.nodeid} uses {', '.join(sorted(uses))}: mark it @pytest.mark.slow")
        if not item.get_closest_marker("xdist_group"):
            shared = next((name for name in ("team_repo", "swept_repo") if name in item.fixturenames), None)
            item.add_marker(pytest.mark.xdist_group(shared or item.module.__name__))
    # xdist hands the groups out in this order: the longest ones that build their own pipeline, and the one that
    # builds tiny_repo, go first, so that no worker starts by waiting on another's build.
    items.sort(
        key=lambda item: (
            START_FIRST.index(group)
            if (group := item.get_closest_marker("xdist_group").args[0]) in START_FIRST
            else len(START_FIRST)
        )
    )


def mirror_dir() -> Path:
    """The offline dataset mirror: $DIGIT_RESTORE_MIRROR (relative to the repo root), else ../shared/datasets."""
    path = Path(os.environ.get("DIGIT_RESTORE_MIRROR", "../shared/datasets"))
    path = path if path.is_absolute() else (ROOT / path)
    if not (path / "mnist").is_dir():
        pytest.fail(f"dataset mirror not found at {path}; set DIGIT_RESTORE_MIRROR to the folder holding mnist/")
    return path.resolve()


def random_masked_batch(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(masked, holes, clean) for n random images with the classic 8x8 hole at (8, 8): model-level tests."""
    rng = np.random.default_rng(0)
    clean = rng.uniform(-1, 1, (n, 28, 28, 1)).astype(np.float32)
    holes = np.zeros((n, 28, 28), dtype=bool)
    holes[:, 8:16, 8:16] = True
    masked = np.where(holes[..., None], -1.0, clean).astype(np.float32)
    return masked, holes, clean


def offline_env(**extra: str) -> dict[str, str]:
    """Environment for pipeline subprocesses: local mirror only, default SQLite store, no telemetry."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "DVC_EXP_NAME", "DVC_ROOT")}
    env.update(
        DIGIT_RESTORE_MIRROR=str(mirror_dir()),
        DIGIT_RESTORE_PUBLIC_MIRRORS="",
        MLFLOW_DISABLE_TELEMETRY="true",
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    env.update(extra)
    return env


def run(cmd: list[str], cwd: Path, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env or offline_env(), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def write_params(repo: Path, overrides: dict) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in overrides.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def copy_repo(dest: Path) -> Path:
    """The project's files (tracked or not ignored) in a fresh git repository, committed."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    for directory in ("data", "results"):
        shutil.rmtree(dest / directory, ignore_errors=True)
    (dest / "dvc.lock").unlink(missing_ok=True)
    run(["git", "init", "-q"], dest)
    run(["git", "config", "user.name", "digit-restore tests"], dest)  # dvc exp run commits too
    run(["git", "config", "user.email", "tests@digit-restore.invalid"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "copy"], dest)
    return dest


def build_once(tmp_path_factory, name: str, build) -> Path:
    """`build(path)` run once per test session, whatever the number of pytest-xdist workers: the first worker to
    ask builds it under a file lock in the temporary folder all workers share, the others wait and reuse it.
    Its tests only read it; a test that changes a repository works on its own copy (copy_built)."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    path, done = shared / name, shared / f"{name}.built"
    with FileLock(str(shared / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir()
            build(path)
            done.touch()
    return path


def copy_built(repo: Path, dest: Path) -> Path:
    """A private copy of a built repository (git, DVC cache, outputs and MLflow store) for a test that changes it.
    Its store keeps the original's artifact location, so runs it adds write their artifacts beside the original's,
    under their own run ids; the original's store never lists them."""
    shutil.copytree(repo, dest, symlinks=True, dirs_exist_ok=True)
    return dest


def build_tiny(repo: Path) -> None:
    copy_repo(repo)
    write_params(repo, TINY_OVERRIDES)
    run(["git", "commit", "-q", "-am", "tiny params"], repo)
    result = run([sys.executable, "-m", "dvc", "repro"], repo)
    (repo.parent / "first_repro.log").write_text(result.stdout + result.stderr)


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory) -> Path:
    """A copy of the repository with tiny params, committed, on which `dvc repro` has run once. Read-only."""
    return build_once(tmp_path_factory, "tiny_repo", build_tiny)


@pytest.fixture
def tiny_repo_copy(tiny_repo, tmp_path) -> Path:
    """A private copy of tiny_repo, for a test that runs DVC in it or changes it."""
    return copy_built(tiny_repo, tmp_path / "repo")


@dataclass(frozen=True)
class TeamRepo:
    """A repository whose pipeline logged to a shared `mlflow server` instead of the local SQLite store."""

    path: Path
    tracking_uri: str
    server_artifacts: Path


@pytest.fixture(scope="session")
def team_repo(tmp_path_factory):
    """Tiny params, a real `mlflow server` (SQLite backend, artifacts served by the server) as
    MLFLOW_TRACKING_URI, `dvc repro` (committed), then `dvc exp run --temp -n thin-strokes -S mask.families.strokes.width=2`:
    two configurations, the workspace left at the committed one. Shared by the team and browser tests."""
    server_dir = tmp_path_factory.mktemp("mlflow-server")
    repo = copy_repo(tmp_path_factory.mktemp("team-repo"))
    write_params(repo, TINY_OVERRIDES)
    run(["git", "commit", "-q", "-am", "tiny params"], repo)
    with mlflow_server(
        f"sqlite:///{server_dir / 'mlflow.db'}", server_dir / "artifacts", server_dir / "server.log"
    ) as url:
        env = offline_env(MLFLOW_TRACKING_URI=url)
        run([sys.executable, "-m", "dvc", "repro"], repo, env)
        run(["git", "add", "dvc.lock", "results"], repo)
        run(["git", "commit", "-q", "-m", "pipeline outputs"], repo)
        run(
            [
                sys.executable,
                "-m",
                "dvc",
                "exp",
                "run",
                "--temp",
                "-n",
                "thin-strokes",
                "-S",
                "mask.families.strokes.width=2",
            ],
            repo,
            env,
        )
        yield TeamRepo(repo, url, server_dir / "artifacts")


# A 2 x 1 grid, queued and run two at a time, as docs/experiments.md's "Comparing experiments" shows.
SWEEP = ["-S", "mask.families.strokes.width=2,4", "-S", "gan.lr_g=0.0003"]
QUEUE_TIMEOUT_S = 900


def start_queue(repo: Path, jobs: int) -> None:
    """`dvc queue start -j jobs`, with its output in a file rather than a pipe: the command leaves a background
    process that keeps its stdout open until every worker exits, and a worker whose monitor shut down before
    its task finished can sleep on after the task succeeded (seen in CI); run() then waited on the pipe forever.
    wait_for_queue polls the queue instead."""
    log = repo.parent / f"{repo.name}-queue-start.log"
    with log.open("w") as out:
        code = subprocess.run(
            [sys.executable, "-m", "dvc", "queue", "start", "-j", str(jobs)],
            cwd=repo,
            env=offline_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        ).returncode
    assert code == 0, f"dvc queue start -j {jobs} failed ({code}):\n{log.read_text()}"


def wait_for_queue(repo: Path) -> None:
    """Poll `dvc queue status` until nothing is queued or running; fail with the logs of failed experiments."""
    deadline = time.monotonic() + QUEUE_TIMEOUT_S
    while True:
        status = run([sys.executable, "-m", "dvc", "queue", "status"], repo).stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"the DVC queue did not finish in {QUEUE_TIMEOUT_S} s:\n{status}")
        time.sleep(5)
    failed = re.findall(r"^\S+\s+(\S+)\s.*\bFailed\b", status, re.MULTILINE)
    if failed:
        logs = "\n".join(
            run([sys.executable, "-m", "dvc", "queue", "logs", name], repo, check=False).stdout for name in failed
        )
        raise AssertionError(f"queued experiments failed:\n{status}\n{logs}")


def sweep_experiments(repo: Path) -> dict[str, dict]:
    """`dvc exp show --json` of the baseline commit: experiment name -> {"params": ..., "metrics": ...}."""
    shown = json.loads(run([sys.executable, "-m", "dvc", "exp", "show", "--json"], repo).stdout)
    baseline = next(rev for rev in shown if rev["rev"] != "workspace")
    return {
        exp["name"]: {
            "params": exp["revs"][0]["data"]["params"]["params.yaml"]["data"],
            "metrics": exp["revs"][0]["data"]["metrics"]["results/metrics.json"]["data"],
        }
        for exp in baseline["experiments"] or []
    }


@pytest.fixture(scope="session")
def baseline_repo(tmp_path_factory, tiny_repo) -> Path:
    """tiny_repo with its run committed (dvc.lock, results): the baseline a teammate clones. Read-only."""

    def build(repo: Path) -> None:
        copy_built(tiny_repo, repo)
        run(["git", "add", "-A"], repo)
        run(["git", "commit", "-q", "-m", "baseline run"], repo)

    return build_once(tmp_path_factory, "baseline_repo", build)


@pytest.fixture(scope="session")
def swept_repo(tmp_path_factory, baseline_repo) -> Path:
    """baseline_repo with the SWEEP grid run through the DVC queue. Read-only."""

    def build(repo: Path) -> None:
        copy_built(baseline_repo, repo)
        run([sys.executable, "-m", "dvc", "exp", "run", "--queue", *SWEEP], repo)
        start_queue(repo, 2)
        wait_for_queue(repo)

    return build_once(tmp_path_factory, "swept_repo", build)
