"""Before a stage does any work: the team's tracking server answers, and lets this user in.

A stage that finds out at its end that the server is down, or that it refuses the login, has trained for
nothing: MLflow's own client retries a dead server for minutes, and answers a wrong password with a
traceback at the first run it logs. So every stage (pipeline/common/cli.py) checks both first, in seconds, and
a refusal to write (a read-only user) is reported in one line, naming the server and the account.
"""

from __future__ import annotations

import os
import urllib.request
from contextlib import contextmanager

from pipeline.common.errors import PipelineError

SERVER_TIMEOUT_S = 5
SEARCH_ENDPOINT = "/api/2.0/mlflow/experiments/search"  # the cheapest request that needs a login
CREDENTIALS = "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)"


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def check_server(uri: str) -> None:
    """Fail in seconds when the server at `uri` does not answer, or does not take this user's login.
    A store that is no server (SQLite) needs neither."""
    if not is_server(uri):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=SERVER_TIMEOUT_S):
            pass
    except OSError as exc:
        raise PipelineError(
            f"MLFLOW_TRACKING_URI={uri}: no MLflow server answers ({exc}); start it, or unset "
            "MLFLOW_TRACKING_URI to use the SQLite store in the repository"
        ) from None
    check_login(uri)


def check_login(uri: str) -> None:
    """One authenticated request, sent with the credentials MLflow's client would send (the environment,
    else ~/.mlflow/credentials). A server without authentication answers it too."""
    # Imported here: download and mask import no MLflow (1.5 s) unless the store is a server.
    from mlflow.exceptions import MlflowException
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    creds = get_default_host_creds(uri)
    try:
        response = http_request(
            creds, SEARCH_ENDPOINT, "GET", max_retries=0, timeout=SERVER_TIMEOUT_S, params={"max_results": 1}
        )
    except MlflowException as exc:
        raise PipelineError(
            f"MLFLOW_TRACKING_URI={uri}: the MLflow server did not answer a search ({exc.message})"
        ) from None
    if response.status_code == 401:
        raise PipelineError(f"MLFLOW_TRACKING_URI={uri}: {_login_problem(creds)}")
    if response.status_code != 200:
        raise PipelineError(
            f"MLFLOW_TRACKING_URI={uri}: the MLflow server answered {response.status_code} to a search "
            f"for experiments: {response.text[:200]}"
        )


def _login_problem(creds) -> str:
    if creds.token:
        return "the MLflow server refused MLFLOW_TRACKING_TOKEN (401); check it, or log in with a username and password"
    if creds.username and creds.password:
        return (
            f"the MLflow server refused the login of MLFLOW_TRACKING_USERNAME={creds.username} (401); "
            "check MLFLOW_TRACKING_PASSWORD"
        )
    if creds.username:
        return f"MLFLOW_TRACKING_USERNAME={creds.username} is set but MLFLOW_TRACKING_PASSWORD is not; the server asks for both"
    return f"the MLflow server asks for a login (401); set {CREDENTIALS} to your account on it"


@contextmanager
def explain_refusal(uri: str, experiment: str):
    """A write the server refuses (403: the user may read, not edit) becomes one line naming the server and
    the account, instead of a traceback."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        if exc.error_code != "PERMISSION_DENIED":
            raise
        user = os.environ.get("MLFLOW_TRACKING_USERNAME", "this user")
        raise PipelineError(
            f"MLFLOW_TRACKING_URI={uri}: the MLflow server refused {user} a write to experiment {experiment!r} "
            "(403: read-only); its admin grants EDIT on the experiment and the registered models "
            "(docs/team.md)"
        ) from None
