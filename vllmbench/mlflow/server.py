"""A real MLflow tracking server on this machine, for the tests and `make run`.

MLflow runs from its own virtualenv in the cache (``tools/install-mlflow.sh``, the
version pinned in ``tools/versions.env``), never from the project's: the function
talks to it over HTTP and must not be able to import it. Settings that keep it small
and quick (FIELD-NOTES "MLflow"): a SQLite backend, one worker, the job runner off,
telemetry off. Webhooks to loopback over plain http need the two ``MLFLOW_WEBHOOK_*``
switches, and webhook secrets survive a restart only with a fixed encryption key,
which is kept in the data folder.
"""

from __future__ import annotations

import base64
import contextlib
import os
from pathlib import Path

from vllmbench.embedded.processes import Process, cached_tool, http_ok, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / "tools" / "install-mlflow.sh"


def mlflow_binary() -> Path:
    """The ``mlflow`` executable: VLLMBENCH_MLFLOW_BIN, else the cached venv (installed now if missing)."""
    return cached_tool("MLflow", env="VLLMBENCH_MLFLOW_BIN", script=INSTALL_SCRIPT, executable="mlflow",
                       hint="MLFLOW_TRACKING_URI", timeout_s=1800)


def _kept_secret(path: Path, size: int) -> str:
    """Random bytes (URL-safe base64) made once and kept in ``path``, readable by us only."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError), os.fdopen(
                os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            out.write(base64.urlsafe_b64encode(os.urandom(size)).decode())
    return path.read_text().strip()


def encryption_key(data_dir: Path) -> str:
    """The Fernet key MLflow encrypts webhook secrets with, made once per data folder."""
    return _kept_secret(data_dir / "webhook-encryption.key", 32)


class MlflowServer:
    """One ``mlflow server`` on 127.0.0.1:``port`` keeping its SQLite file and artifacts in ``data_dir``."""

    def __init__(self, data_dir: Path, port: int, *, log: Path | None = None, webhook_cache_ttl_s: int = 60) -> None:
        self.data_dir = data_dir
        self.port = port
        self.log = log or data_dir / "mlflow.log"
        self.webhook_cache_ttl_s = webhook_cache_ttl_s
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            # Our webhook listens on loopback over http; MLflow refuses both by default.
            "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
            "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
            "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": encryption_key(self.data_dir),
            # MLflow caches the webhook list per event type this long: a webhook registered
            # after the first event of a type is called only once the cache expires.
            "MLFLOW_WEBHOOK_CACHE_TTL": str(self.webhook_cache_ttl_s),
        }

    def start(self, timeout_s: float = 120.0, *, wait: bool = True) -> "MlflowServer":
        """Start the server; with ``wait=False`` it gets ready while the caller does other work
        (:meth:`wait` then)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            str(mlflow_binary()), "server",
            "--backend-store-uri", f"sqlite:///{self.data_dir / 'mlflow.db'}",
            "--default-artifact-root", str(self.data_dir / "artifacts"),
            "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", "1",
        ]
        self.process = Process("mlflow", argv, log=self.log, env=self.env(), cwd=self.data_dir).start()
        return self.wait(timeout_s) if wait else self

    def wait(self, timeout_s: float = 120.0) -> "MlflowServer":
        assert self.process is not None, "start() first"
        wait_until(lambda: http_ok(f"{self.url}/health"), timeout_s=timeout_s, what="MLflow",
                   process=self.process.popen, log=self.log)
        return self

    @property
    def pid(self) -> int | None:
        return self.process.popen.pid if self.process and self.process.popen else None

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


def embedded(data_dir: Path, port: int, *, webhook_url: str, log: Path) -> tuple[MlflowServer, dict[str, str]]:
    """The embedded stack's MLflow server (not started yet) and what the functions need to
    reach it: its URL, and our webhook's URL and secret (made once per data folder)."""
    server = MlflowServer(data_dir, port, log=log, webhook_cache_ttl_s=5)
    env = {"MLFLOW_TRACKING_URI": server.url, "VLLMBENCH_MLFLOW_WEBHOOK_URL": webhook_url,
           "VLLMBENCH_MLFLOW_WEBHOOK_SECRET": _kept_secret(data_dir / "vllmbench-webhook-secret", 24)}
    return server, env
