"""State survives a restart of `make run`: boot() finds the pods again or restarts them, and
nothing is orphaned (checked in the process table)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import psutil

from vllmbench.runtimes.base import ObjectRef
from vllmbench.runtimes.local import LocalRuntime

from .conftest import processes_under, service, sim_deployment, wait_for

DEPLOYMENT = ObjectRef("apps/v1", "Deployment", "t", "sim")


def serving(rt: LocalRuntime) -> str:
    wait_for(lambda: (rt.get(DEPLOYMENT) or {}).get("status", {}).get("availableReplicas") == 1,
             what="the simulator available")
    url = rt.service_url("t", "sim", 80)

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/v1/models", timeout=5) as models:
                return json.loads(models.read())["data"][0]["id"] == "opt"
        except OSError:
            return False

    wait_for(answers, what=f"{url} answering")
    return url


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def container_pid(pod: dict) -> int:
    return int(pod["status"]["containerStatuses"][0]["containerID"].rsplit("/", 1)[1])


def test_boot_after_shutdown_runs_the_pods_again_on_the_same_port(rt: LocalRuntime, root: Path) -> None:
    rt.apply(service(), field_manager="m")
    rt.apply(sim_deployment(), field_manager="m")
    url = serving(rt)
    [before] = rt.pods("t", {"app": "sim"})
    report = rt.shutdown()
    assert report == {"shims_stopped": 1, "shims_left": 0}
    assert processes_under(root) == []
    [stopped] = rt.pods("t", {"app": "sim"})
    assert stopped["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ShutDown"
    assert rt.boot() == {"pods_running": 0, "pods_restarted": 1, "forwarders_restarted": 1}
    assert serving(rt) == url
    [after] = rt.pods("t", {"app": "sim"})
    assert after["metadata"]["name"] == before["metadata"]["name"]
    status = after["status"]["containerStatuses"][0]
    assert status["restartCount"] == 1 and "terminated" in status["lastState"]


RUN_AND_DIE = """
import json, os, sys, time, urllib.request
sys.path.insert(0, sys.argv[2])
from tests.integration.localrt.conftest import service, sim_deployment
from vllmbench.runtimes.base import ObjectRef
from vllmbench.runtimes.local import LocalRuntime
rt = LocalRuntime(sys.argv[1])
rt.apply(service(), field_manager="m")
rt.apply(sim_deployment(), field_manager="m")
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    if (rt.get(ObjectRef("apps/v1", "Deployment", "t", "sim"))["status"].get("availableReplicas")):
        break
    time.sleep(0.1)
print(json.dumps([p["metadata"]["name"] for p in rt.pods("t", {"app": "sim"})]), flush=True)
os.kill(os.getpid(), 9)  # the runtime's process dies; its shims and forwarders must not
"""


def test_boot_after_the_runtime_process_died_finds_the_pods_again(root: Path) -> None:
    repo = Path(__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, "-c", RUN_AND_DIE, str(root), str(repo)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    [name] = json.loads(done.stdout)
    rt = LocalRuntime(root)
    try:
        [pod] = rt.pods("t", {"app": "sim"})
        pid = container_pid(pod)
        assert rt.boot() == {"pods_running": 1, "pods_restarted": 0, "forwarders_restarted": 0}
        serving(rt)
        [again] = rt.pods("t", {"app": "sim"})
        assert again["metadata"]["name"] == name and container_pid(again) == pid
        assert again["status"]["containerStatuses"][0]["restartCount"] == 0
    finally:
        rt.shutdown()
    assert processes_under(root) == []


def test_boot_restarts_a_pod_whose_shim_died_and_stops_what_it_left(rt: LocalRuntime, root: Path) -> None:
    rt.apply(service(), field_manager="m")
    rt.apply(sim_deployment(), field_manager="m")
    serving(rt)
    [pod] = rt.pods("t", {"app": "sim"})
    orphan = container_pid(pod)
    shim = int((root / "pods" / "t" / pod["metadata"]["name"] / "shim.pid").read_text())
    os.kill(shim, signal.SIGKILL)
    wait_for(lambda: gone(shim), what="the shim gone")
    assert not gone(orphan)  # its container lives on, for now
    report = rt.boot()
    assert report["pods_restarted"] == 1
    wait_for(lambda: gone(orphan), what="the orphaned container stopped")
    serving(rt)
    [again] = rt.pods("t", {"app": "sim"})
    status = again["status"]["containerStatuses"][0]
    assert container_pid(again) != orphan and status["restartCount"] == 1
    assert status["lastState"]["terminated"]["reason"] == "ContainerStatusUnknown"
    simulators = [p for p in processes_under(root) if "simulate" in " ".join(p.info["cmdline"] or [])]
    assert len(simulators) == 1


def test_a_service_port_taken_while_the_stack_was_down_moves_and_says_so(rt: LocalRuntime) -> None:
    import socket

    rt.apply(service(), field_manager="m")
    old = rt.service_url("t", "sim", 80)
    rt.shutdown()
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        squatter.bind(("127.0.0.1", int(old.rsplit(":", 1)[1])))
        squatter.listen()
        assert "problems" not in rt.boot()
        new = rt.service_url("t", "sim", 80)
        assert new != old
        [moved] = [e for e in rt.events("t", kind="Service", name="sim") if e["reason"] == "PortChanged"]
        assert old.rsplit(":", 1)[1] in moved["message"] and new.rsplit(":", 1)[1] in moved["message"]
    finally:
        squatter.close()


def test_a_service_port_taken_between_its_choice_and_the_forwarders_bind_is_chosen_again(
        rt: LocalRuntime, monkeypatch) -> None:
    """Another runtime on this machine (a second stack, a parallel test) hashes the same Service to
    the same port and can bind it first: the forwarder that lost the port is started again elsewhere."""
    import socket

    from vllmbench.runtimes.local import services

    squatters: list[socket.socket] = []
    spawn = services.spawn_detached

    def spawn_after_someone_took_the_port(module: str, folder: Path, *, log: Path) -> int:
        if not squatters:
            taken = json.loads((folder / "config.json").read_text())["ports"][0]["hostPort"]
            squatter = socket.socket()
            squatters.append(squatter)
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past a connection in TIME_WAIT
            squatter.bind(("127.0.0.1", taken))
            squatter.listen()
        return spawn(module, folder, log=log)

    monkeypatch.setattr(services, "spawn_detached", spawn_after_someone_took_the_port)
    try:
        rt.apply(service(), field_manager="m")
        port = int(rt.service_url("t", "sim", 80).rsplit(":", 1)[1])
        assert port != squatters[0].getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # the forwarder listens there (no endpoint behind it: it closes the connection)
    finally:
        for squatter in squatters:
            squatter.close()
