"""A real `mlflow server` on a free loopback port, for the tests that need a team's tracking server.

One uvicorn worker and no job runner (MLflow 3.17 otherwise starts about ten processes), a SQLite
backend, and artifacts proxied by the server (`--artifacts-destination`), as a team would run it;
with `auth_config`, MLflow's own authentication (`--app-name basic-auth`), as docs/team.md's recipe runs it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 120  # a cold start imports MLflow's whole server; slow on a loaded 2-core machine


@dataclass(frozen=True)
class Login:
    username: str
    password: str  # MLflow 3.17 refuses passwords shorter than 12 characters

    def env(self) -> dict[str, str]:
        return {"MLFLOW_TRACKING_USERNAME": self.username, "MLFLOW_TRACKING_PASSWORD": self.password}


ADMIN = Login("admin", "admin-password-of-the-tests")


def write_auth_config(directory: Path) -> Path:
    """docs/team.md's basic_auth.ini: everyone may read what they were granted nothing on; the user store beside it.
    The admin's password is not in the file: the server reads it from MLFLOW_AUTH_ADMIN_PASSWORD on first start."""
    path = directory / "basic_auth.ini"
    path.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{directory / 'basic_auth.db'}\n"
        f"admin_username = {ADMIN.username}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "auth_cache_ttl_seconds = 300\n"
    )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def mlflow_server(backend_store_uri: str, artifacts_dir: Path, log_path: Path, auth_config: Path | None = None):
    """Yield the URL of a running server; stop it (its whole process group) afterwards. With `auth_config`
    (write_auth_config), every request but /health needs a login; the admin is ADMIN."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        backend_store_uri,
        "--artifacts-destination",
        str(artifacts_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    if auth_config:
        cmd += ["--app-name", "basic-auth"]
        env.update(
            MLFLOW_AUTH_CONFIG_PATH=str(auth_config),
            MLFLOW_AUTH_ADMIN_PASSWORD=ADMIN.password,
            MLFLOW_FLASK_SERVER_SECRET_KEY="secret-key-of-the-tests",  # the auth app's CSRF protection needs one
        )
    with open(log_path, "w") as log:
        server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(url):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start on {url}:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
