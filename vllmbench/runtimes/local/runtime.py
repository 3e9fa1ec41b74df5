"""LocalRuntime: the :class:`~vllmbench.runtimes.base.Runtime` of ``make run`` with no cluster.

Everything lives under one folder (``root``): the objects (:mod:`.store`), the pods' folders
with their plans, status, logs and volumes (:mod:`.pods`), the Services' ports and
forwarders (:mod:`.services`), the events (:mod:`.events`). Several processes use one root
at once; nothing runs in the background but the pods' shims and the Services' forwarders,
which outlive the process that started them. ``boot()`` and ``shutdown()`` are for the
embedded stack: find or restart those processes, and stop them keeping the state.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vllmbench.errors import Conflict, DependencyUnavailable, Forbidden, NotFound, ValidationFailed
from vllmbench.runtimes.base import ExecChannel, Kind, LogStream, ObjectRef
from vllmbench.runtimes.local import controllers, events, images, lifecycle, objects, podspec, pods, services
from vllmbench.runtimes.local.controllers import CONTROLLED
from vllmbench.runtimes.local.logs import container_log
from vllmbench.runtimes.local.procs import read_json
from vllmbench.runtimes.local.store import Store, kind_for

STORED_ONLY = {
    "StatefulSet": "the local runtime stores StatefulSets but does not run them (Deployments and Jobs run)",
    "CronJob": "the local runtime stores CronJobs but does not schedule them (a Job runs)",
    "PingSource": "Knative Eventing is not part of the local runtime; in the embedded stack the local pinger reads "
                  "the PingSources of eventing/ and the schedules of the configuration repository",
}
PASSIVE = ("ConfigMap", "Service", "ServiceAccount", "PersistentVolumeClaim", "Event", "Namespace", "Pod",
           *CONTROLLED)


def _labels_match(obj: dict[str, Any], labels: dict[str, str] | None) -> bool:
    have = obj["metadata"].get("labels") or {}
    return all(have.get(k) == v for k, v in (labels or {}).items())


class LocalRuntime:
    name = "local"

    def __init__(self, root: Path | str, *, exec_enabled: bool = False) -> None:
        self.root = Path(root).resolve()
        self.exec_enabled = exec_enabled
        self.store = Store(self.root)

    # -- helpers for the modules of this package -----------------------------------------
    @property
    def stopped(self) -> bool:
        """Between shutdown() and boot(): objects are kept and written, no process is started."""
        return (self.root / "stopped").exists()

    @staticmethod
    def kind_of(api_version: str, kind: str) -> Kind:
        return kind_for(api_version, kind)

    def sources(self, namespace: str) -> podspec.Sources:
        cm = self.kind_of("v1", "ConfigMap")
        return podspec.Sources(configmap=lambda name: self.store.get(cm, namespace, name),
                               service_ports=lambda: services.namespace_ports(self, namespace),
                               exec_enabled=self.exec_enabled)

    # -- status --------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        vllm = images.vllm_binary()
        return {"runtime": "local", "root": str(self.root), "exec_enabled": self.exec_enabled,
                "stopped": self.stopped, "vllm": vllm or None,
                "runs": "vllmbench images; vLLM images as " + ("vllm serve" if vllm else "the vllmbench simulator "
                                                               "(vLLM is not installed)")}

    def check(self) -> None:
        try:
            with self.store.lock():
                pass
        except OSError as exc:
            raise DependencyUnavailable("local-runtime", f"cannot use {self.root}: {exc.strerror or exc}") from exc
        if self.stopped:
            raise DependencyUnavailable("local-runtime", f"the local runtime in {self.root} is shut down; `make run` "
                                        "boots it")

    # -- objects -------------------------------------------------------------------------
    def list(self, kind: Kind, *, namespace: str | None, labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
        if kind.kind == "Event":
            return [e for e in events.read_namespace(self.root, namespace) if _labels_match(e, labels)]
        found = [o for o in self.store.list(kind, namespace if kind.namespaced else None) if _labels_match(o, labels)]
        if kind.kind == "Pod":
            tended = (self._tended(pods.with_status(self, p)) for p in found)
            return [p for p in tended if p is not None]
        if kind.kind in CONTROLLED:
            indexes: dict[str, dict[str, list[dict[str, Any]]]] = {}
            out = []
            for obj in found:
                ns = obj["metadata"]["namespace"]
                if ns not in indexes:
                    indexes[ns] = controllers.pods_by_owner(self, ns)
                synced, wrote, _ = controllers.sync(self, obj, indexes[ns])
                if wrote:
                    indexes.pop(ns, None)
                if synced is not None:
                    out.append(synced)
            return out
        return found

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        kind = self.kind_of(ref.api_version, ref.kind)
        obj = self.store.get(kind, ref.namespace, ref.name)
        if obj is None:
            return None
        if ref.kind == "Pod":
            return self._tended(pods.with_status(self, obj))
        if ref.kind in CONTROLLED:
            return controllers.sync(self, obj)[0]
        return obj

    def _tended(self, pod: dict[str, Any]) -> dict[str, Any] | None:
        """A pod as read, after collecting or reviving it when it waits for that."""
        if not controllers.needs_tending(self, pod):
            return pod
        with self.store.lock():
            fresh = self.store.get(self.kind_of(*pods.POD), pod["metadata"]["namespace"], pod["metadata"]["name"])
            if fresh is None or controllers.tend(self, pods.with_status(self, fresh)) == "collected":
                return None
            return pods.with_status(self, self.store.get(self.kind_of(*pods.POD), pod["metadata"]["namespace"],
                                                         pod["metadata"]["name"]) or fresh)

    def apply(self, obj: dict[str, Any], *, field_manager: str, dry_run: bool = False,
              force: bool = True) -> dict[str, Any]:
        bad = objects.bad_kind(obj)
        if bad:
            raise bad
        kind = self.kind_of(obj["apiVersion"], obj["kind"])
        meta = obj.get("metadata") or {}
        namespace = (meta.get("namespace") or "default") if kind.namespaced else ""
        with self.store.lock():
            live = self.store.get(kind, namespace, meta.get("name") or "") if meta.get("name") else None
            new, changed = objects.applied(live, obj, field_manager=field_manager, force=force,
                                           namespaced=kind.namespaced)
            if dry_run:
                return new
            stored = self.store.put(new) if changed else new
            return self._after_apply(kind, stored, created=live is None, changed=changed)

    def _after_apply(self, kind: Kind, obj: dict[str, Any], *, created: bool, changed: bool) -> dict[str, Any]:
        """What the API's controllers do once an object is written (under the lock)."""
        if kind.kind == "Service":
            try:
                services.ensure(self, obj)
            except OSError as exc:
                raise DependencyUnavailable("local-runtime", str(exc)) from exc
        elif kind.kind in CONTROLLED:
            return controllers.sync(self, obj)[0] or obj
        elif kind.kind == "Pod" and created:
            pods.folder(self, obj["metadata"]["namespace"], obj["metadata"]["name"]).mkdir(parents=True, exist_ok=True)
            events.record(self.root, obj, "Scheduled", f"Successfully assigned {obj['metadata']['namespace']}/"
                          f"{obj['metadata']['name']} to localhost", component="default-scheduler")
            if not self.stopped:
                pods.launch(self, obj)
            return pods.with_status(self, self.store.get(kind, obj["metadata"]["namespace"], obj["metadata"]["name"])
                                    or obj)
        elif kind.kind == "PersistentVolumeClaim" and (obj.get("status") or {}).get("phase") != "Bound":
            (self.root / "volumes" / obj["metadata"]["namespace"] / obj["metadata"]["name"]).mkdir(parents=True,
                                                                                                  exist_ok=True)
            obj = self.store.put({**obj, "status": {"phase": "Bound", "accessModes": (obj.get("spec") or {}).get(
                "accessModes", ["ReadWriteOnce"]), "capacity": ((obj.get("spec") or {}).get("resources") or {}).get(
                "requests", {})}})
        elif changed and kind.kind not in PASSIVE:
            events.record(self.root, obj, "NotSupportedLocally", self.unsupported(obj) or "", type_="Warning")
        return obj

    def delete(self, ref: ObjectRef, *, wait_s: float = 0.0) -> bool:
        kind = self.kind_of(ref.api_version, ref.kind)
        with self.store.lock():
            obj = self.store.get(kind, ref.namespace, ref.name)
            if obj is None:
                return False
            if ref.kind in CONTROLLED:
                if controllers.delete_owner(self, obj) is None:
                    return True
            elif ref.kind == "Pod":
                pods.mark_deleted(self, obj)
                if pods.collect(self, self.store.get(kind, ref.namespace, ref.name) or obj):
                    return True
            else:
                if ref.kind == "Service":
                    services.stop(self, ref.namespace, ref.name, keep_ports=False)
                if ref.kind == "PersistentVolumeClaim":
                    self.store.wipe(self.root / "volumes" / ref.namespace / ref.name)
                self.store.remove(kind, ref.namespace, ref.name)
                events.forget(self.root, ref.namespace, ref.kind, ref.name)
                return True
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if self.get(ref) is None:
                break
        return True

    # -- observing -----------------------------------------------------------------------
    def pods(self, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        index = controllers.pods_by_owner(self, namespace)
        matched = [p for group in index.values() for p in group if _labels_match(p, selector)]
        wrote = False
        for uid in {o["uid"] for p in matched for o in p["metadata"].get("ownerReferences") or [] if o.get("controller")}:
            owner_ref = next(o for p in matched for o in p["metadata"]["ownerReferences"] if o["uid"] == uid)
            owner = self.store.get(self.kind_of(owner_ref["apiVersion"], owner_ref["kind"]), namespace, owner_ref["name"])
            if owner is not None and owner["metadata"]["uid"] == uid and owner["kind"] in CONTROLLED:
                wrote = controllers.sync(self, owner, index)[1] or wrote
        if wrote:
            index = controllers.pods_by_owner(self, namespace)
            matched = [p for group in index.values() for p in group if _labels_match(p, selector)]
        out = [self._tended(p) for p in matched]
        return sorted((p for p in out if p is not None), key=lambda p: p["metadata"]["name"])

    def events(self, namespace: str, *, kind: str, name: str) -> list[dict[str, Any]]:
        return events.read(self.root, namespace, kind, name)

    def _container(self, namespace: str, pod: str, container: str | None) -> tuple[dict[str, Any], str]:
        obj = self.store.get(self.kind_of(*pods.POD), namespace, pod)
        if obj is None:
            raise NotFound(f'pods "{pod}" not found in namespace {namespace}')
        spec = obj.get("spec") or {}
        names = [c["name"] for c in spec.get("containers") or []]
        every = [c["name"] for c in spec.get("initContainers") or []] + names
        if container is None:
            container = (obj["metadata"].get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
            if container is None and len(names) > 1:
                raise ValidationFailed(f"a container name must be specified for pod {pod}, choose one of: {names}",
                                       details=[{"loc": ["container"], "msg": "required", "type": "missing",
                                                 "expected": names}])
            container = container or names[0]
        if container not in every:
            raise NotFound(f"container {container} is not valid for pod {pod} (it has {every})")
        return pods.with_status(self, obj), container

    def logs(self, namespace: str, pod: str, *, container: str | None = None, tail_lines: int | None = None,
             since_seconds: int | None = None, follow: bool = False, timestamps: bool = False) -> LogStream:
        _, name = self._container(namespace, pod, container)
        return container_log(pods.folder(self, namespace, pod), name, tail_lines=tail_lines,
                             since_seconds=since_seconds, follow=follow, timestamps=timestamps)

    def exec(self, namespace: str, pod: str, *, container: str | None = None, command: Sequence[str],
             tty: bool = True) -> ExecChannel:
        if not self.exec_enabled:
            raise Forbidden("exec into a local pod opens a shell on this machine, not in a container: it is off "
                            "unless VLLMBENCH_LOCAL_EXEC=true")
        obj, name = self._container(namespace, pod, container)
        status = next((c for c in obj["status"].get("containerStatuses") or [] if c["name"] == name), {})
        if "running" not in (status.get("state") or {}):
            phase = obj["status"].get("phase")
            raise Conflict(f"cannot exec into a container in a completed pod; current phase is {phase}"
                           if phase in pods.TERMINAL else f"container {name} of pod {pod} is not running ({phase})")
        plan = read_json(pods.folder(self, namespace, pod) / "plan.json") or {}
        spec = next(c for c in plan.get("init", []) + plan.get("containers", []) if c["name"] == name)
        from vllmbench.runtimes.local.exec import PtyChannel

        try:
            return PtyChannel(command, env=spec["env"], cwd=Path(spec["cwd"]), tty=tty)
        except (OSError, ValueError) as exc:
            raise ValidationFailed(f"cannot run {list(command)} in pod {pod}: {exc}",
                                   details=[{"loc": ["command"], "msg": str(exc), "type": "value_error"}]) from exc

    # -- reaching workloads --------------------------------------------------------------
    def service_url(self, namespace: str, name: str, port: int) -> str:
        return f"http://127.0.0.1:{services.host_port(self, namespace, name, port)}"

    def unsupported(self, obj: dict[str, Any]) -> str | None:
        kind, name = obj.get("kind", ""), (obj.get("metadata") or {}).get("name", "")
        if kind in STORED_ONLY:
            return f"{kind} {name}: {STORED_ONLY[kind]}; run it on a cluster instead (set KUBECONFIG)"
        if kind in ("Deployment", "Job", "Pod"):
            spec = obj.get("spec") or {}
            pod_spec = spec if kind == "Pod" else (spec.get("template") or {}).get("spec") or {}
            blocked = podspec.unsupported(pod_spec, exec_enabled=self.exec_enabled)
            return f"{kind} {name}: {blocked.message}" if blocked else None
        if kind in PASSIVE:
            return None
        return f"{kind} {name}: the local runtime stores {kind} objects but does not act on them; run it on a " \
               "cluster instead (set KUBECONFIG)"

    # -- the embedded stack --------------------------------------------------------------
    def kick(self, namespace: str, pod: str) -> float | None:
        """A shim's call: run the controller of its pod's owner; returns when it wants another look."""
        obj = self.store.get(self.kind_of(*pods.POD), namespace, pod)
        if obj is None:
            return None
        owner = next((o for o in obj["metadata"].get("ownerReferences") or [] if o.get("controller")), None)
        if owner is None or owner.get("kind") not in CONTROLLED:
            self._tended(pods.with_status(self, obj))
            return None
        live = self.store.get(self.kind_of(owner["apiVersion"], owner["kind"]), namespace, owner["name"])
        if live is None or live["metadata"]["uid"] != owner["uid"]:
            self._tended(pods.with_status(self, obj))
            return None
        return controllers.sync(self, live)[2]

    def boot(self) -> dict[str, Any]:
        """Find every pod's shim and Service's forwarder again, start those that are gone (see :mod:`.lifecycle`)."""
        return lifecycle.boot(self)

    def shutdown(self, timeout_s: float = 60.0) -> dict[str, int]:
        """Stop every shim (their containers within their grace periods) and forwarder; keep the state."""
        return lifecycle.shutdown(self, timeout_s=timeout_s)
