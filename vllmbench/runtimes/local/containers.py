"""One container of a local pod, as its shim runs it: the process, its log, its probes.

The process runs in its own session (so that its whole group is signalled), with stdout
and stderr merged into one pipe that a thread copies line by line, each line prefixed
with the time it was read, into ``<pod dir>/logs/<container>.log``. A new run of the
container first moves the last run's log to ``<container>.previous.log``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vllmbench.runtimes.local.procs import rfc3339, rfc3339_nano, signal_group, start_time

Event = Callable[[str, str, str], None]  # reason, message, type


def _cgroup_oom_kills() -> int | None:
    """The kernel's OOM-kill count of this process's cgroup (v2), to tell an OOM kill from another SIGKILL."""
    try:
        path = Path("/proc/self/cgroup").read_text().strip().split("::", 1)[1]
        for line in (Path("/sys/fs/cgroup") / path.lstrip("/") / "memory.events").read_text().splitlines():
            if line.startswith("oom_kill "):
                return int(line.split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return None


class Container:
    def __init__(self, spec: dict[str, Any], pod_dir: Path, *, event: Event, previous: dict[str, Any] | None) -> None:
        self.spec = spec
        self.name = spec["name"]
        self.log = pod_dir / "logs" / f"{self.name}.log"
        self.event = event
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid_start: int | None = None
        self.started_at: float | None = None
        self.state: dict[str, Any] = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: dict[str, Any] = {}
        self.restart_count = 0
        self.ready = False
        self.crashes = 0
        self.next_start: float | None = 0.0  # when to (re)start; None: never again
        self.done = False  # terminated for good
        self._oom_limit_hit = ""
        self._oom_before: int | None = None
        self._pump: threading.Thread | None = None
        self._prober: threading.Thread | None = None
        self._run_stop = threading.Event()
        self.wake: Callable[[], None] = lambda: None  # tells the shim's loop that readiness changed
        if previous:
            self._resume(previous)

    def _resume(self, previous: dict[str, Any]) -> None:
        """Carry counts and the last termination over from the status an earlier shim of this pod wrote."""
        self.restart_count = previous.get("restartCount", 0)
        self.last_state = previous.get("lastState") or {}
        state = previous.get("state") or {}
        if previous.get("_final"):
            self.state, self.done, self.next_start = state, True, None
        elif "running" in state:  # that shim died under it
            self.restart_count += 1
            self.last_state = {"terminated": {
                "exitCode": 137, "reason": "ContainerStatusUnknown", "startedAt": state["running"].get("startedAt"),
                "finishedAt": rfc3339(), "message": "The container could not be located when the pod was terminated"}}
        elif "terminated" in state:
            self.restart_count += 1
            self.last_state = {"terminated": state["terminated"]}
        elif (state.get("waiting") or {}).get("reason") == "ShutDown":
            self.restart_count += 1  # lastState already holds the run the shutdown stopped

    # -- running -------------------------------------------------------------------------
    def start(self) -> None:
        if self.log.exists() and self.log.stat().st_size:
            os.replace(self.log, self.log.with_name(f"{self.name}.previous.log"))
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log.touch()
        self._oom_before = _cgroup_oom_kills()
        self._oom_limit_hit = ""
        try:
            self.proc = subprocess.Popen(self.spec["argv"], env=self.spec["env"], cwd=self.spec["cwd"],
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         start_new_session=True, close_fds=True)
        except OSError as exc:
            self.state = {"waiting": {"reason": "RunContainerError", "message": f"cannot start {self.spec['argv'][0]}: "
                                      f"{exc.strerror or exc}"}}
            self.event("Failed", f"Error: {self.state['waiting']['message']}", "Warning")
            self.next_start = None
            self.done = True
            return
        self.pid_start = start_time(self.proc.pid)
        self.started_at = time.time()
        self.state = {"running": {"startedAt": rfc3339(self.started_at)}}
        self.ready = self.spec.get("readiness") is None
        self._run_stop = threading.Event()
        self._pump = threading.Thread(target=self._copy_log, args=(self.proc,), daemon=True)
        self._pump.start()
        self._prober = threading.Thread(target=self._probe_loop, args=(self._run_stop,), daemon=True)
        self._prober.start()
        self.event("Started", f"Started container {self.name}", "Normal")

    def _copy_log(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            for raw in iter(proc.stdout.readline, b""):
                os.write(fd, rfc3339_nano().encode() + b" " + raw.rstrip(b"\r\n") + b"\n")
        finally:
            os.close(fd)
            proc.stdout.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and "running" in self.state

    def poll(self) -> bool:
        """True when the process has just ended (its state is terminated now)."""
        if not self.running or self.proc.poll() is None:
            return False
        if self._pump:
            self._pump.join(2.0)  # the log is complete before anyone is told the container stopped
        self._run_stop.set()
        code = self.proc.returncode
        exit_code = 128 - code if code < 0 else code
        if exit_code == 0:
            reason = "Completed"
        elif self._oom_limit_hit or (exit_code == 137 and self._oom_before is not None
                                     and (_cgroup_oom_kills() or 0) > self._oom_before):
            reason = "OOMKilled"
        else:
            reason = "Error"
        terminated = {"exitCode": exit_code, "reason": reason, "startedAt": self.state["running"]["startedAt"],
                      "finishedAt": rfc3339(), "containerID": f"local://{self.proc.pid}"}
        if code < 0:
            terminated["signal"] = -code
        if self._oom_limit_hit:
            terminated["message"] = self._oom_limit_hit
        self.state = {"terminated": terminated}
        self.ready = False
        return True

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.running:
            signal_group(self.proc.pid, sig)

    def check_memory(self) -> None:
        """Kill the container when its processes' resident memory passes limits.memory, as the cgroup would."""
        limit = self.spec.get("memory_limit")
        if not limit or not self.running:
            return
        import psutil

        try:
            root = psutil.Process(self.proc.pid)
            rss = sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
        except psutil.Error:
            return
        if rss > limit:
            self._oom_limit_hit = (f"resident memory {rss / 2**20:.0f} MiB passed limits.memory {limit / 2**20:.0f} "
                                   "MiB (measured by the local runtime)")
            self.stop(signal.SIGKILL)

    def schedule_restart(self, policy: str, *, stopping: bool) -> None:
        """After a termination: when to run again, or never (per restartPolicy), with the kubelet's back-off."""
        terminated = self.state["terminated"]
        again = not stopping and (policy == "Always" or (policy == "OnFailure" and terminated["exitCode"] != 0))
        if not again:
            self.next_start, self.done = None, True
            return
        ran = time.time() - (self.started_at or time.time())
        self.crashes = 1 if ran > 600 else self.crashes + 1
        delay = 0.0 if self.crashes == 1 else min(300.0, 10.0 * 2 ** (self.crashes - 2))
        self.last_state = {"terminated": terminated}
        self.restart_count += 1
        self.next_start = time.time() + delay
        if delay:
            self.state = {"waiting": {"reason": "CrashLoopBackOff", "message": f"back-off {delay:.0f}s restarting "
                                      f"failed container={self.name} pod={self.spec.get('_pod', '')}"}}
            self.event("BackOff", f"Back-off restarting failed container {self.name} in pod "
                       f"{self.spec.get('_pod', '')}", "Warning")
        else:
            self.state = {"waiting": {"reason": "ContainerCreating"}}

    # -- probes --------------------------------------------------------------------------
    def _probe_loop(self, stop: threading.Event) -> None:
        readiness, liveness = self.spec.get("readiness"), self.spec.get("liveness")
        probes = [(p, kind) for p, kind in ((readiness, "Readiness"), (liveness, "Liveness")) if p]
        if not probes:
            return
        counts = {kind: [0, 0] for _, kind in probes}  # consecutive successes, failures
        due = {kind: time.monotonic() + p["initialDelaySeconds"] for p, kind in probes}
        while not stop.is_set():
            now = time.monotonic()
            for probe, kind in probes:
                if now < due[kind]:
                    continue
                due[kind] = now + probe["periodSeconds"]
                ok, why = self._probe(probe)
                ok_n, fail_n = counts[kind]
                counts[kind] = [ok_n + 1, 0] if ok else [0, fail_n + 1]
                if not ok:
                    self.event("Unhealthy", f"{kind} probe failed: {why}", "Warning")
                if kind == "Readiness":
                    before = self.ready
                    if ok and counts[kind][0] >= probe["successThreshold"]:
                        self.ready = True
                    elif not ok and counts[kind][1] >= probe["failureThreshold"]:
                        self.ready = False
                    if self.ready != before:
                        self.wake()
                elif not ok and counts[kind][1] >= probe["failureThreshold"] and not stop.is_set():
                    self.event("Killing", f"Container {self.name} failed liveness probe, will be restarted", "Normal")
                    self.stop()
                    return
            stop.wait(max(0.05, min(due.values()) - time.monotonic()))

    def _probe(self, probe: dict[str, Any]) -> tuple[bool, str]:
        timeout = max(0.1, float(probe["timeoutSeconds"]))
        try:
            if probe["kind"] == "tcp":
                socket.create_connection(("127.0.0.1", probe["port"]), timeout=timeout).close()
                return True, ""
            if probe["kind"] == "http":
                import http.client  # here, not at the top: only pods with HTTP probes pay for it
                import ssl

                conn: http.client.HTTPConnection
                if probe["scheme"] == "https":
                    conn = http.client.HTTPSConnection("127.0.0.1", probe["port"], timeout=timeout,
                                                       context=ssl._create_unverified_context())
                else:
                    conn = http.client.HTTPConnection("127.0.0.1", probe["port"], timeout=timeout)
                try:
                    conn.request("GET", probe["path"], headers=probe.get("headers") or {})
                    status = conn.getresponse().status
                finally:
                    conn.close()
                url = f'{probe["scheme"]}://127.0.0.1:{probe["port"]}{probe["path"]}'
                return 200 <= status < 400, f'HTTP probe failed with statuscode: {status} ({url})'
            done = subprocess.run(probe["argv"], env=self.spec["env"], cwd=self.spec["cwd"], timeout=timeout,
                                  stdin=subprocess.DEVNULL, capture_output=True)
            return done.returncode == 0, done.stdout.decode(errors="replace")[-200:] + f" (exit {done.returncode})"
        except subprocess.TimeoutExpired:
            return False, f"command timed out after {timeout:g}s"
        except OSError as exc:
            target = f'127.0.0.1:{probe.get("port")}' if probe["kind"] != "exec" else probe["argv"][0]
            return False, f"{target}: {exc.strerror or exc}"

    # -- status --------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        out = {"name": self.name, "image": self.spec["image"], "imageID": f"local:{self.spec['runs_as']}",
               "ready": self.ready and self.running, "started": self.running, "restartCount": self.restart_count,
               "state": self.state, "lastState": self.last_state}
        if self.proc is not None:
            out["containerID"] = f"local://{self.proc.pid}"
        if self.done:
            out["_final"] = True
        if self.running:
            out["_proc"] = [self.proc.pid, self.pid_start]
        return out

    def kill_now(self) -> None:
        with contextlib.suppress(Exception):
            self.stop(signal.SIGKILL)
