"""FerretDB: the embedded MongoDB-wire server (SQLite backend), built from its Go module
with the patches in tools/ferretdb-patches (every ``_id`` lookup uses the ``_id`` index)."""

from __future__ import annotations

import os
from pathlib import Path

from vllmbench.embedded.processes import Process, cached_tool, port_open, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "tools" / "build-ferretdb.sh"


def ferretdb_binary() -> Path:
    """The FerretDB binary: VLLMBENCH_FERRETDB_BIN, else the cached build (built now if missing)."""
    return cached_tool("FerretDB", env="VLLMBENCH_FERRETDB_BIN", script=BUILD_SCRIPT, executable="ferretdb",
                       hint="MONGO_URL", verb="build")


# SQLite pragmas of every connection FerretDB opens (it adds busy_timeout, WAL and auto_vacuum).
# Statement journals (every multi-row insert keeps one) in memory, not in temp files: 10% of
# FerretDB's CPU in a results ingest went to writing them (docs/results.md, "Ingest").
SQLITE_PRAGMAS: tuple[str, ...] = ("temp_store(memory)",)


class FerretDB:
    """One FerretDB process on 127.0.0.1:``port`` keeping its data in ``data_dir``."""

    def __init__(self, data_dir: Path, port: int, *, log: Path | None = None,
                 auth: tuple[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = port
        self.log = log or data_dir / "ferretdb.log"
        self.process: Process | None = None
        # (user, password): authentication on, with that first user in "admin" (FerretDB
        # v1's experimental auth: users log in with SCRAM, roles are stored but not enforced).
        self.auth = auth

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def start(self, timeout_s: float = 30.0) -> "FerretDB":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            str(ferretdb_binary()),
            "--handler=sqlite",
            f"--sqlite-url=file:{self.data_dir}/?" + "&".join(f"_pragma={p}" for p in SQLITE_PRAGMAS),
            f"--state-dir={self.data_dir}",
            f"--listen-addr=127.0.0.1:{self.port}",
            "--debug-addr=-",
            "--telemetry=disable",
            "--log-level=warn",
        ]
        if self.auth:
            argv += ["--test-enable-new-auth", f"--setup-username={self.auth[0]}", "--setup-database=admin"]
        env = {**os.environ, "FERRETDB_SETUP_PASSWORD": self.auth[1]} if self.auth else None  # not in argv
        self.process = Process("ferretdb", argv, log=self.log, env=env).start()
        wait_until(lambda: port_open(self.port), timeout_s=timeout_s, what="FerretDB",
                   process=self.process.popen, log=self.log)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def kill(self) -> None:
        """Stop at once (SIGKILL), as a crash would: what was in flight is cut where it was."""
        if self.process is not None and self.process.running:
            assert self.process.popen is not None
            self.process.popen.kill()
            self.process.popen.wait(10)
