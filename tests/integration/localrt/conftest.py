"""A local runtime in a temporary folder, with real shims, containers and forwarders.

Every test ends with the runtime shut down and the process table checked: a process
left behind under the runtime's folder fails the test (and is killed by its pid).
The simulator plays vLLM (no GPU here): a vLLM image runs as ``vllmbench simulate``.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from vllmbench.runtimes.local import LocalRuntime

VLLMBENCH_IMAGE = "ghcr.io/vllmbench/vllmbench:0.1.0"
VLLM_IMAGE = "vllm/vllm-openai:v0.11.0"


def processes_under(root: Path) -> list[psutil.Process]:
    """Processes whose command line or working folder is under ``root`` (shims, forwarders, containers)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        try:
            if proc.pid == os.getpid():
                continue
            cmd = " ".join(proc.info["cmdline"] or [])
            cwd = proc.info["cwd"] or ""
            if str(root) in cmd or cwd.startswith(str(root)):
                found.append(proc)
        except (psutil.Error, TypeError):
            continue
    return found


def kill_all(procs: list[psutil.Process]) -> None:
    for proc in procs:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "workloads"
    yield path
    deadline = time.monotonic() + 5.0  # a shim may be finishing its last look at its owner
    while (left := processes_under(path)) and time.monotonic() < deadline:
        time.sleep(0.05)
    kill_all(left)
    assert not left, f"processes left behind: {[(p.pid, p.info.get('cmdline')) for p in left]}"


@pytest.fixture
def rt(root: Path) -> Iterator[LocalRuntime]:
    runtime = LocalRuntime(root)
    yield runtime
    runtime.shutdown(timeout_s=30)


def wait_for(check: Callable[[], Any], *, timeout_s: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout_s:.0f} s (last: {last!r})")


def job(name: str, args: list[str] | None = None, *, command: list[str] | None = None, namespace: str = "t",
        image: str = VLLMBENCH_IMAGE, restart: str = "Never", **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": image}
    if command:
        container["command"] = command
    if args:
        container["args"] = args
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": namespace},
            "spec": {"backoffLimit": 0, **spec, "template": {"spec": {"restartPolicy": restart,
                                                                        "containers": [container]}}}}


def python_job(name: str, code: str, **spec: Any) -> dict[str, Any]:
    return job(name, command=["python", "-c", code], **spec)


def sim_deployment(name: str = "sim", *, namespace: str = "t", replicas: int = 1,
                   extra_args: list[str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "vllm", "image": VLLM_IMAGE,
                    "args": ["--model", "facebook/opt-125m", "--served-model-name", "opt", "--port", "8000",
                             "--max-num-seqs", "64", *(extra_args or [])],
                    "ports": [{"containerPort": 8000, "name": "http"}],
                    "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 1}}]}}}}


def service(name: str = "sim", *, namespace: str = "t", port: int = 80, selector: str | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"app": selector or name}, "ports": [{"name": "http", "port": port,
                                                                     "targetPort": "http"}]}}


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    return next((c for c in ((obj or {}).get("status") or {}).get("conditions") or [] if c["type"] == type_
                 and c["status"] == "True"), None)
