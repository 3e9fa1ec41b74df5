"""The embedded stack of `make run`: the six functions, a MongoDB-wire server, a local
Git remote and the local broker + pinger, on one machine with nothing installed by hand.

One instance per data folder: a second start finds the lock and says what is running.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from eventing.types import SERVICES, local_service_urls
from vllmbench.embedded.ferretdb import FerretDB
from vllmbench.embedded.processes import Process, http_ok, port_open, wait_until

REPO = Path(__file__).resolve().parents[2]
BROKER_PORT = 8090
EXAMPLE_PROJECT = "demo"  # the project gitops/seed puts in the local Git remote


class AlreadyRunning(RuntimeError):
    pass


@dataclass
class Stack:
    data_dir: Path
    mongo_url: str | None = None
    mongo_port: int = 27017
    broker_port: int = BROKER_PORT
    port_offset: int = 0  # tests run a whole stack beside a developer's: every port shifted
    api_token: str | None = None
    mlflow: bool = False  # `vllmbench up --mlflow`: a local MLflow server for the MLflow service
    mlflow_port: int = 5000
    out: TextIO = sys.stdout
    processes: list[Process] = field(default_factory=list)
    ferretdb: FerretDB | None = None
    broker: Any = None
    runtime: Any = None  # the local workload runtime, when no cluster is configured
    mlflow_server: Any = None
    mlflow_env: dict[str, str] = field(default_factory=dict)
    _lock_file: Any = None

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> "Stack":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            self._check_ports()
            self._start_mlflow()  # it gets ready (about 5-15 s) while the rest starts
            url = self._start_database()
            self._boot_runtime()
            repo_url = self._ensure_git_remote()
            self._start_functions(url, repo_url)
            self._start_broker()
            if self.mlflow_server is not None:
                self.mlflow_server.wait()
                self._say(f"mlflow       {self.mlflow_server.url}  (UI and REST API; SQLite in {self.data_dir / 'mlflow'})")
            if not os.environ.get("GITOPS_REPO_URL"):
                self._register_example_project(repo_url)
            self._place_model_servers()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        if self.runtime is not None:
            self.runtime.shutdown()  # workloads stop, their state stays for the next start
            self.runtime = None
        if self.ferretdb is not None:
            self.ferretdb.stop()
            self.ferretdb = None
        if self.mlflow_server is not None:
            self.mlflow_server.stop()
            self.mlflow_server = None
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                (self.data_dir / "run.pid").unlink()
            self._lock_file.close()
            self._lock_file = None

    def port(self, folder: str) -> int:
        """The port of a function (8000-8005, plus the offset)."""
        return SERVICES[folder][1] + self.port_offset

    def url(self, folder: str) -> str:
        return f"http://127.0.0.1:{self.port(folder)}"

    # -- pieces --------------------------------------------------------------------
    def _take_lock(self) -> None:
        self._lock_file = open(self.data_dir / "run.lock", "w")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = (self.data_dir / "run.pid").read_text().strip() if (self.data_dir / "run.pid").exists() else "?"
            self._lock_file.close()
            self._lock_file = None
            raise AlreadyRunning(
                f"vllmbench is already running from {self.data_dir} (pid {pid}): results on "
                f"{self.url('results')}, the manager on :{self.port('sync')} ... vllm on :{self.port('vllm_deploy')}. "
                f"Stop it with Ctrl-C in its terminal or `kill {pid}`.") from None
        (self.data_dir / "run.pid").write_text(str(os.getpid()))

    def _check_ports(self) -> None:
        wanted = {f"{service} ({folder})": self.port(folder) for folder, (service, _) in SERVICES.items()}
        wanted["local broker"] = self.broker_port
        if not self.mongo_url:
            wanted["FerretDB"] = self.mongo_port
        if self.mlflow:
            wanted["MLflow"] = self.mlflow_port + self.port_offset
        busy = [f"{port} ({name})" for name, port in wanted.items() if port_open(port)]
        if busy:
            raise RuntimeError("ports already in use by another program: " + ", ".join(busy)
                               + ". Stop it, or set MONGO_URL to use an existing MongoDB.")

    def _start_database(self) -> str:
        if self.mongo_url:
            self._say(f"database     {_redact_url(self.mongo_url)} (MONGO_URL)")
            return self.mongo_url
        self.ferretdb = FerretDB(self.data_dir / "ferretdb", self.mongo_port, log=self.data_dir / "logs" / "ferretdb.log")
        self.ferretdb.start()
        self._say(f"database     {self.ferretdb.url} (FerretDB, SQLite files in {self.data_dir / 'ferretdb'})")
        return self.ferretdb.url

    def _boot_runtime(self) -> None:
        """The local workload runtime (docs/local-runtime.md): its pods and Services found again or restarted."""
        from vllmbench.runtimes import local_root
        from vllmbench.settings import load_settings

        settings = load_settings(data_dir=self.data_dir)
        if settings.runtime_kind != "local":
            self._say("workloads    on the cluster of KUBECONFIG (kube runtime)")
            return
        from vllmbench.runtimes.local import LocalRuntime

        self.runtime = LocalRuntime(local_root(settings), exec_enabled=settings.local_exec)
        report = self.runtime.boot()
        self._say(f"workloads    {self.runtime.root} (local runtime: {report['pods_running']} pods running, "
                  f"{report['pods_restarted']} restarted, {report['forwarders_restarted']} Service ports reopened)")
        for problem in report.get("problems", []):
            self._say(f"workloads    {problem}")

    def _start_mlflow(self) -> None:
        if not self.mlflow:
            return
        from vllmbench.mlflow.server import embedded

        self.mlflow_server, self.mlflow_env = embedded(
            self.data_dir / "mlflow", self.mlflow_port + self.port_offset, log=self.data_dir / "logs" / "mlflow.log",
            webhook_url=f"{self.url('mlflow_poll')}/webhooks/mlflow")
        self.mlflow_server.start(wait=False)

    def _ensure_git_remote(self) -> str:
        configured = os.environ.get("GITOPS_REPO_URL")
        if configured:
            self._say(f"gitops repo  {_redact_url(configured)} (GITOPS_REPO_URL)")
            return configured
        from gitops.seed import ensure_seeded

        bare = self.data_dir / "gitops.git"
        ensure_seeded(bare)
        self._say(f"gitops repo  {bare} (local bare repository; clone it to edit the configuration)")
        return str(bare)

    def _start_functions(self, mongo_url: str, repo_url: str) -> None:
        launcher = Path(sys.executable).parent / "functions-framework"
        for folder, (service, _) in SERVICES.items():
            port = self.port(folder)
            env = {**os.environ, "MONGO_URL": mongo_url, "K_SINK": f"http://127.0.0.1:{self.broker_port}/",
                   "GITOPS_REPO_URL": repo_url, "VLLMBENCH_FUNCTION": folder,
                   "VLLMBENCH_DATA_DIR": str(self.data_dir), "THREADS": "8", "PYTHONUNBUFFERED": "1",
                   # how the functions reach each other here (shifted with the ports in tests)
                   "VLLMBENCH_MANAGER_URL": self.url("sync"), "VLLMBENCH_RESULTS_URL": self.url("results"),
                   "VLLMBENCH_VLLM_URL": self.url("vllm_deploy"), "VLLMBENCH_EVAL_URL": self.url("eval"),
                   "VLLMBENCH_DEPLOYER_URL": self.url("deploy"),
                   # the original POST /evaluate {model_name, vllm-url} evaluates the example project
                   "VLLMBENCH_EVAL_DEFAULT_PROJECT": os.environ.get("VLLMBENCH_EVAL_DEFAULT_PROJECT", EXAMPLE_PROJECT),
                   "VLLMBENCH_EVAL_DEFAULT_BENCHMARK": os.environ.get("VLLMBENCH_EVAL_DEFAULT_BENCHMARK", "chat-short"),
                   **(self.mlflow_env if folder == "mlflow_poll" else {})}
            argv = [str(launcher), "--target=handle", f"--source={REPO / 'functions' / folder / 'main.py'}",
                    f"--port={port}", "--host=127.0.0.1"]
            self.processes.append(Process(service, argv, log=self.data_dir / "logs" / f"{folder}.log", env=env,
                                          cwd=REPO).start())
        for process, (folder, (service, _)) in zip(self.processes, SERVICES.items()):
            port = self.port(folder)
            wait_until(lambda p=port: http_ok(f"http://127.0.0.1:{p}/health"), timeout_s=60, what=service,
                       process=process.popen, log=process.log)
            self._say(f"{folder:<12} http://127.0.0.1:{port}  ({service}; docs at /docs)")

    def _start_broker(self) -> None:
        from eventing.local import LocalBroker, load_config

        self.broker = LocalBroker(load_config(), local_service_urls(port_offset=self.port_offset), token=self.api_token,
                                  dead_letter_log=self.data_dir / "dead-letter.jsonl").start(self.broker_port)
        sources = ", ".join(f"{p.name} ({p.schedule})" for p in self.broker.config.pingsources)
        self._say(f"broker       http://127.0.0.1:{self.broker_port}  ({len(self.broker.config.triggers)} triggers; "
                  f"pings: {sources}; dead letters in {self.data_dir / 'dead-letter.jsonl'})")

    def _register_example_project(self, repo_url: str) -> None:
        """Register the seeded example project with the manager (once) and sync it."""
        import json
        import urllib.error
        import urllib.request

        headers = {"Content-Type": "application/json"}
        if self.api_token:
            headers["Authorization"] = f"Bearer {self.api_token}"
        manager = self.url("sync")
        body = {"name": EXAMPLE_PROJECT, "repository": repo_url, "branch": "main",
                "root": f"projects/{EXAMPLE_PROJECT}", "credentials": "none"}
        for path, data in (("/projects", body), (f"/projects/{EXAMPLE_PROJECT}/sync", {})):
            request = urllib.request.Request(manager + path, data=json.dumps(data).encode(), headers=headers,
                                             method="POST")
            try:
                with urllib.request.urlopen(request, timeout=60):
                    pass
            except urllib.error.HTTPError as exc:
                if exc.code != 409:  # 409: registered by an earlier run
                    self._say(f"example project: {path} answered {exc.code}: {exc.read()[:300].decode(errors='replace')}")
                    return
        self._say(f"project      {EXAMPLE_PROJECT!r} registered and synced: {manager}/projects/{EXAMPLE_PROJECT}/files")

    def _place_model_servers(self) -> None:
        """models/ placed and applied now (the seed's opt-125m answers before `make run` says it is up)."""
        from vllmbench.embedded.servers import place_model_servers

        place_model_servers(self.url("vllm_deploy"), token=self.api_token, say=self._say)

    def _say(self, line: str) -> None:
        print(line, file=self.out, flush=True)


def _redact_url(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def wait_for_signal() -> None:
    """Block until Ctrl-C or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
