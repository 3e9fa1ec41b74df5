"""The shim: one small detached process per local pod, the local kubelet.

``python -m vllmbench.runtimes.local.shim <pod dir>`` (started by :mod:`.pods` in a new
session, so that it outlives whoever started it) reads ``plan.json``, runs the init
containers one by one and then the containers, restarts them per ``restartPolicy`` with
the kubelet's back-off (CrashLoopBackOff between restarts), probes readiness and
liveness, and writes ``status.json`` (phase, conditions, containerStatuses) atomically
whenever it changes. On SIGTERM it stops its containers within
``terminationGracePeriodSeconds``; ``<pod dir>/stop`` says why (``delete``: the pod ends;
``shutdown``: the runtime stops and ``LocalRuntime.boot()`` runs the pod again).

A pod that ends, or a container that stops, "kicks" its owner: the shim runs the owner's
controller once (a Job starts its next pod, a deleted pod is collected), so that nothing
waits for a reader to come by.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from vllmbench.runtimes.local import events
from vllmbench.runtimes.local.containers import Container
from vllmbench.runtimes.local.procs import detached_main, read_json, rfc3339, same_process, signal_group, write_json

MODULE = "vllmbench.runtimes.local.shim"
LINGER_S = 600.0


class Shim:
    def __init__(self, pod_dir: Path) -> None:
        self.dir = pod_dir
        self.root = pod_dir.parents[2]
        self.plan: dict[str, Any] = read_json(pod_dir / "plan.json") or {}
        pod = self.plan["pod"]
        self.pod = {"apiVersion": "v1", "kind": "Pod", "metadata": dict(pod)}
        self.policy = self.plan["restartPolicy"]
        previous = read_json(pod_dir / "status.json") or {}
        before = {c["name"]: c for c in (previous.get("initContainerStatuses") or [])
                  + (previous.get("containerStatuses") or [])}
        for status in before.values():  # a container the last shim left behind is stopped, never orphaned
            proc = status.get("_proc")
            if proc and same_process(*proc):
                signal_group(proc[0], signal.SIGKILL)
        label = f"{pod['name']}_{pod['namespace']}({pod['uid']})"
        self.init = [Container({**s, "_pod": label}, pod_dir, event=self.event, previous=before.get(s["name"]))
                     for s in self.plan.get("init") or []]
        self.containers = [Container({**s, "_pod": label}, pod_dir, event=self.event, previous=before.get(s["name"]))
                           for s in self.plan["containers"]]
        self.initialized = bool(previous.get("_initialized")) or not self.init
        self.init_failed = False
        self.start_time = previous.get("startTime") or rfc3339()
        self.conditions: dict[str, dict[str, Any]] = {c["type"]: c for c in previous.get("conditions") or []}
        self.stop_reason: str | None = None
        self.kick_at = sorted(self.plan.get("kick_at") or [])
        self._written: dict[str, Any] | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        for c in self.init + self.containers:
            c.wake = self._wake

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"w")
        except BlockingIOError:
            pass  # already awake

    def event(self, reason: str, message: str, type_: str = "Normal") -> None:
        events.record(self.root, self.pod, reason, message, type_=type_, component="kubelet")

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> None:
        signal.set_wakeup_fd(self._wake_w)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake the loop when a container exits
        for c in self.init + self.containers:
            if c.spec.get("ignored"):
                self.event("FlagsIgnored", f"container {c.name} runs the vllmbench simulator (vLLM is not installed "
                           f"here), which ignores: {', '.join(c.spec['ignored'])}", "Normal")
        self.write()
        next_memory_check = 0.0
        while True:
            if self.stop_reason:
                self.terminate()
                return
            kicked = self.step()
            if time.monotonic() >= next_memory_check:
                for c in self.containers:
                    c.check_memory()
                next_memory_check = time.monotonic() + 1.0
            phase = self.phase()
            self.write(final=phase in ("Succeeded", "Failed"))
            if phase in ("Succeeded", "Failed"):
                self.linger(self.kick())
                return
            if kicked or (self.kick_at and time.time() >= self.kick_at[0]):
                self.kick_at = [t for t in self.kick_at if t > time.time()]
                self.kick()
            self._sleep(0.25)

    def _on_term(self, *_: object) -> None:
        try:
            self.stop_reason = (self.dir / "stop").read_text().strip() or "shutdown"
        except OSError:
            self.stop_reason = "shutdown"  # a stop nobody explained: keep the pod, boot() runs it again

    def _sleep(self, timeout: float) -> None:
        soonest = [c.next_start - time.time() for c in self.init + self.containers
                   if c.next_start is not None and not c.running]
        timeout = max(0.0, min([timeout, *soonest]))
        ready, _, _ = select.select([self._wake_r], [], [], timeout)
        if ready:
            os.read(self._wake_r, 4096)

    def step(self) -> bool:
        """Start what is due, notice what ended; True when a container has just stopped."""
        now = time.time()
        if not self.initialized:
            current = next((c for c in self.init if not c.done), None)
            if current is None:
                self.initialized = True
            else:
                if current.next_start is not None and not current.running and now >= current.next_start:
                    current.start()
                if current.poll():
                    if current.state["terminated"]["exitCode"] == 0:
                        current.next_start, current.done = None, True
                    elif self.policy == "Never":
                        current.next_start, current.done, self.init_failed = None, True, True
                    else:
                        current.schedule_restart("OnFailure", stopping=False)
                return False
        stopped = False
        for c in self.containers:
            if c.next_start is not None and not c.running and now >= c.next_start:
                c.start()
            if c.poll():
                stopped = True
                c.schedule_restart(self.policy, stopping=False)
        return stopped

    def terminate(self) -> None:
        """Stop every container within the grace period; the stop file says what comes after."""
        running = [c for c in self.init + self.containers if c.running]
        for c in running:
            self.event("Killing", f"Stopping container {c.name}", "Normal")
            c.stop(signal.SIGTERM)
        deadline = time.monotonic() + float(self.plan.get("grace_s", 30))
        while any(c.running for c in running):
            for c in running:
                c.poll()
            if time.monotonic() >= deadline:
                for c in running:
                    c.kill_now()
                deadline = time.monotonic() + 5.0
            time.sleep(0.02)
        deleted = self.stop_reason == "delete"
        for c in self.init + self.containers:
            if deleted:
                c.next_start, c.done = None, True
            elif "terminated" in c.state and not c.done:
                c.last_state = {"terminated": c.state["terminated"]}
                c.state = {"waiting": {"reason": "ShutDown", "message": "the local runtime was shut down; "
                                       "LocalRuntime.boot() (make run) starts the container again"}}
            elif not c.done:
                c.state = {"waiting": {"reason": "ShutDown", "message": "the local runtime was shut down"}}
        self.write(final=True, stopped=self.stop_reason)
        if deleted:
            self.kick()

    def kick(self) -> float | None:
        """Run this pod's owner's controller once (see the module docstring); returns when the
        owner wants another look (a Job's back-off before it replaces a failed pod)."""
        try:
            from vllmbench.runtimes.local.runtime import LocalRuntime

            return LocalRuntime(self.root).kick(self.plan["pod"]["namespace"], self.plan["pod"]["name"])
        except Exception:  # noqa: BLE001 - the next reader runs the controller anyway
            traceback.print_exc()
            return None

    def linger(self, wake_at: float | None) -> None:
        """After the pod ended: stay to look in on the owner when it asks (within LINGER_S), so that a
        Job's next pod starts on time with no reader around; SIGTERM ends the wait."""
        while wake_at is not None and wake_at - time.time() < LINGER_S and not self.stop_reason:
            while time.time() < wake_at and not self.stop_reason:
                ready, _, _ = select.select([self._wake_r], [], [], max(0.0, wake_at - time.time()))
                if ready:
                    os.read(self._wake_r, 4096)
            if self.stop_reason:
                return
            wake_at = self.kick()

    # -- status --------------------------------------------------------------------------
    def phase(self) -> str:
        if self.init_failed:
            return "Failed"
        if not self.initialized:
            return "Pending"
        if all(c.done for c in self.containers):
            codes = [c.state.get("terminated", {}).get("exitCode", 1) for c in self.containers]
            return "Succeeded" if all(code == 0 for code in codes) else "Failed"
        if any(c.running or c.restart_count or c.last_state or "terminated" in c.state for c in self.containers):
            return "Running"
        return "Pending"

    def _condition(self, type_: str, ok: bool, reason: str = "", message: str = "") -> dict[str, Any]:
        status = "True" if ok else "False"
        old = self.conditions.get(type_)
        since = old["lastTransitionTime"] if old and old["status"] == status else rfc3339()
        cond = {"type": type_, "status": status, "lastProbeTime": None, "lastTransitionTime": since}
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        self.conditions[type_] = cond
        return cond

    def write(self, *, final: bool = False, stopped: str | None = None) -> None:
        phase = self.phase()
        completed = phase in ("Succeeded", "Failed")
        unready = [c.name for c in self.containers if not (c.ready and c.running)]
        incomplete = [c.name for c in self.init if not c.done]
        ready_reason = "PodCompleted" if completed else ("ContainersNotReady" if unready else "")
        ready_message = f"containers with unready status: [{' '.join(unready)}]" if unready and not completed else ""
        conditions = [
            self._condition("PodScheduled", True),
            self._condition("Initialized", self.initialized or self.init_failed,
                            "" if self.initialized else "ContainersNotInitialized",
                            f"containers with incomplete status: [{' '.join(incomplete)}]" if incomplete else ""),
            self._condition("ContainersReady", not unready, ready_reason, ready_message),
            self._condition("Ready", not unready, ready_reason, ready_message),
        ]
        status: dict[str, Any] = {
            "phase": phase, "conditions": conditions, "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}], "startTime": self.start_time,
            "qosClass": "Burstable" if any(c.spec.get("memory_limit") for c in self.containers) else "BestEffort",
            "containerStatuses": [c.status() for c in self.containers],
            "_initialized": self.initialized, "_shim": os.getpid(),
        }
        if self.init:
            status["initContainerStatuses"] = [c.status() for c in self.init]
        if final:
            status["_exited"] = True
        if stopped:
            status["_stopped"] = stopped
        if status != self._written:
            write_json(self.dir / "status.json", status)
            self._written = status


def main(argv: list[str]) -> int:
    pod_dir = detached_main(argv, MODULE)
    if pod_dir is None:
        return 2
    Shim(pod_dir).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
