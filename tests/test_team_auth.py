"""A team server that lets in only the team: a real `mlflow server --app-name basic-auth` on 127.0.0.1 with
docs/team.md's recipe (default_permission READ; a teammate granted EDIT on experiments and registered models; a
reviewer granted nothing), and the pipeline run against it by `dvc repro`."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import TINY_OVERRIDES, copy_repo, offline_env, run, write_params
from mlflow.exceptions import MlflowException
from mlflow.server.auth.client import AuthServiceClient
from mlflow.tracking import MlflowClient
from tracking_server import ADMIN, Login, mlflow_server, write_auth_config

from pipeline.common import server_access
from pipeline.common.errors import PipelineError
from pipeline.serving.registry import CHAMPION, model_name

pytestmark = pytest.mark.slow  # builds or runs a pipeline, or starts a server

EDITOR = Login("editor", "editor-password-of-the-tests")
REVIEWER = Login("reviewer", "reviewer-password-of-the-tests")
CHAIN = model_name("", "mnist")
FIRST_STAGE_LIMIT_S = 30  # dvc's own start and one stage that stops at its first request; training takes minutes


@dataclass(frozen=True)
class AuthServer:
    url: str
    repo: Path  # where `dvc repro` ran as EDITOR


def as_user(monkeypatch, login: Login | None) -> None:
    """MLflow's client reads the credentials from the environment at every request."""
    for name, value in (
        login.env() if login else {"MLFLOW_TRACKING_USERNAME": "", "MLFLOW_TRACKING_PASSWORD": ""}
    ).items():
        if value:
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name, raising=False)


def tiny_copy(directory: Path) -> Path:
    repo = copy_repo(directory)
    write_params(repo, TINY_OVERRIDES)
    run(["git", "commit", "-q", "-am", "tiny params"], repo)
    return repo


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    """docs/team.md's users on a fresh authenticated server, then `dvc repro` of the tiny configuration as EDITOR."""
    directory = tmp_path_factory.mktemp("auth-server")
    with (
        mlflow_server(
            f"sqlite:///{directory / 'mlflow.db'}",
            directory / "artifacts",
            directory / "server.log",
            auth_config=write_auth_config(directory),
        ) as url,
        pytest.MonkeyPatch.context() as monkeypatch,
    ):
        as_user(monkeypatch, ADMIN)
        admin = AuthServiceClient(url)
        for login in (EDITOR, REVIEWER):
            admin.create_user(login.username, login.password)
        for resource_type in ("experiment", "registered_model"):
            admin.grant_user_permission(EDITOR.username, resource_type, "*", "EDIT")
        repo = tiny_copy(tmp_path_factory.mktemp("auth-repo"))
        run([sys.executable, "-m", "dvc", "repro"], repo, offline_env(MLFLOW_TRACKING_URI=url, **EDITOR.env()))
        yield AuthServer(url, repo)


def test_dvc_repro_logs_every_stage_as_the_edit_user(auth_server, monkeypatch):
    as_user(monkeypatch, REVIEWER)  # and a reviewer can browse it all
    client = MlflowClient(auth_server.url)
    experiment = client.get_experiment_by_name("digit-restore")
    runs = client.search_runs([experiment.experiment_id])
    stages = {r.data.tags["dvc_stage"]: r.info.status for r in runs if "dvc_stage" in r.data.tags}
    assert stages == {"train_classifier": "FINISHED", "train_gan": "FINISHED", "evaluate": "FINISHED"}
    champion = client.get_model_version_by_alias(CHAIN, CHAMPION)
    assert champion.run_id == next(r.info.run_id for r in runs if r.data.tags.get("dvc_stage") == "evaluate")


def test_a_wrong_password_stops_the_first_stage_in_seconds_and_writes_nothing(auth_server, tmp_path):
    repo = tiny_copy(tmp_path)
    env = offline_env(MLFLOW_TRACKING_URI=auth_server.url, **Login(EDITOR.username, "not-the-password-at-all").env())
    started = time.monotonic()
    result = run([sys.executable, "-m", "dvc", "repro"], repo, env, check=False)
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr

    assert result.returncode != 0 and elapsed < FIRST_STAGE_LIMIT_S, output
    assert (
        f"error: MLFLOW_TRACKING_URI={auth_server.url}: the MLflow server refused the login of "
        f"MLFLOW_TRACKING_USERNAME={EDITOR.username} (401); check MLFLOW_TRACKING_PASSWORD"
    ) in output
    assert "'download'" in output and "exited with 2" in output and "Traceback" not in output
    assert "Running stage 'mask'" not in output
    assert not (repo / "data").exists() and not (repo / "dvc.lock").exists()


@pytest.mark.parametrize(
    "login, problem",
    [
        (
            None,
            "the MLflow server asks for a login (401); set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
            "(or MLFLOW_TRACKING_TOKEN) to your account on it",
        ),
        (
            Login(EDITOR.username, ""),
            f"MLFLOW_TRACKING_USERNAME={EDITOR.username} is set but MLFLOW_TRACKING_PASSWORD is not; "
            "the server asks for both",
        ),
    ],
)
def test_missing_credentials_are_named(auth_server, monkeypatch, login, problem):
    as_user(monkeypatch, login)
    with pytest.raises(PipelineError) as refused:
        server_access.check_server(auth_server.url)
    assert str(refused.value) == f"MLFLOW_TRACKING_URI={auth_server.url}: {problem}"


def refused_with_403(action) -> bool:
    try:
        action()
    except MlflowException as exc:
        return exc.get_http_status_code() == 403
    return False


def test_a_reviewer_cannot_log_a_run_register_a_version_or_move_the_champion(auth_server, monkeypatch):
    as_user(monkeypatch, EDITOR)
    client = MlflowClient(auth_server.url)
    experiment_id = client.get_experiment_by_name("digit-restore").experiment_id
    champion = client.get_model_version_by_alias(CHAIN, CHAMPION)
    source = f"models:/{CHAIN}/{champion.version}"  # the champion registered anew: a version to move the alias to
    challenger = client.create_model_version(CHAIN, source, champion.run_id)  # an edit user may register

    as_user(monkeypatch, REVIEWER)
    assert client.get_run(champion.run_id).info.status == "FINISHED"  # reading is allowed
    assert refused_with_403(lambda: client.create_run(experiment_id))
    assert refused_with_403(lambda: client.log_metric(champion.run_id, "forged", 1.0))
    assert refused_with_403(lambda: client.create_model_version(CHAIN, source, champion.run_id))
    assert refused_with_403(lambda: client.set_registered_model_alias(CHAIN, CHAMPION, challenger.version))
    assert client.get_model_version_by_alias(CHAIN, CHAMPION).version == champion.version
    assert {v.version for v in client.search_model_versions(f"name = '{CHAIN}'")} == {
        champion.version,
        challenger.version,
    }
    assert "forged" not in client.get_run(champion.run_id).data.metrics

    # A stage run by a reviewer stops before it trains, in one line naming the server and the account.
    stage = run(
        [sys.executable, "-m", "pipeline.train_classifier"],
        auth_server.repo,
        offline_env(MLFLOW_TRACKING_URI=auth_server.url, **REVIEWER.env()),
        check=False,
    )
    assert stage.returncode == 2 and "Traceback" not in stage.stderr, stage.stderr
    assert (
        f"error: MLFLOW_TRACKING_URI={auth_server.url}: the MLflow server refused {REVIEWER.username} a write "
        "to experiment 'digit-restore' (403: read-only)"
    ) in stage.stderr

    as_user(monkeypatch, EDITOR)  # whoever may register a version may move the alias: MLflow gates both alike
    client.set_registered_model_alias(CHAIN, CHAMPION, challenger.version)
    assert client.get_model_version_by_alias(CHAIN, CHAMPION).version == challenger.version
