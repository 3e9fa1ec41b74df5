"""The workload runtime interface: where desired objects become live ones.

The reconcile engine (:mod:`vllmbench.reconcile`) and the functions talk to one of two
adapters through this interface:

- ``kube`` (:mod:`vllmbench.runtimes.kube`): a Kubernetes API server; the only place
  that imports the ``kubernetes`` client.
- ``local`` (:mod:`vllmbench.runtimes.local`): the embedded default of ``make run``,
  with no cluster: Deployments and Jobs whose containers this machine can run become
  local processes, Services become local ports, logs go to files.

Objects cross the interface as plain dicts in the shape of the Kubernetes API
(``apiVersion``, ``kind``, ``metadata``, ``spec``, ``status``), so that the pure
logic (planning, health, drift) reads both runtimes' objects the same way. A local
pod has ``status.phase``, ``status.conditions`` and ``status.containerStatuses``
exactly as a kubelet would write them.

Errors leave an adapter as the project's own (:mod:`vllmbench.errors`):
``DependencyUnavailable("kubernetes" | "local-runtime", ...)`` when the runtime
cannot be reached, ``ValidationFailed`` when it refuses an object as invalid (with
the field), ``Conflict`` for a conflict it reports, ``NotFound`` for a missing pod or
container asked for by name.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

# Labels and annotations every applied object carries (DESIGN.md "Reconcile").
# Label values cannot hold '/', so the source path and the commit are annotations.
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "vllmbench"
OWNER = "vllmbench.dev/owner"
PARTITION = "vllmbench.dev/partition"
SOURCE = "vllmbench.dev/source"
COMMIT = "vllmbench.dev/commit"
APPLIED_HASH = "vllmbench.dev/applied-hash"


@dataclass(frozen=True)
class Kind:
    """An object kind the runtimes know: how to address it in the API."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0] if "/" in self.api_version else ""

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]


# The kinds vllmbench applies. A runtime may refuse one it cannot serve (local: PingSource).
KINDS: dict[tuple[str, str], Kind] = {
    (k.api_version, k.kind): k
    for k in (
        Kind("v1", "ConfigMap", "configmaps"),
        Kind("v1", "Service", "services"),
        Kind("v1", "ServiceAccount", "serviceaccounts"),
        Kind("v1", "PersistentVolumeClaim", "persistentvolumeclaims"),
        Kind("v1", "Pod", "pods"),
        Kind("v1", "Event", "events"),
        Kind("v1", "Node", "nodes", namespaced=False),  # read only: the vLLM service's GPU inventory
        Kind("apps/v1", "Deployment", "deployments"),
        Kind("apps/v1", "StatefulSet", "statefulsets"),
        Kind("batch/v1", "Job", "jobs"),
        Kind("batch/v1", "CronJob", "cronjobs"),
        Kind("sources.knative.dev/v1", "PingSource", "pingsources"),
    )
}


def kind_of(api_version: str, kind: str) -> Kind:
    """The :class:`Kind` for an object's apiVersion and kind; KeyError when vllmbench does not know it."""
    return KINDS[(api_version, kind)]


@dataclass(frozen=True, order=True)
class ObjectRef:
    """Identity of one object. ``namespace`` is "" for cluster-scoped kinds."""

    api_version: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: dict[str, Any]) -> "ObjectRef":
        meta = obj.get("metadata") or {}
        return cls(obj["apiVersion"], obj["kind"], meta.get("namespace") or "", meta["name"])

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


class LogStream(Protocol):
    """Lines of a container's log, as the runtime gives them. Iterating ends when the
    log ends (without ``follow``: now; with it: when the container has stopped).
    ``close()`` stops a followed stream from another thread (a client went away)."""

    def __iter__(self) -> Iterator[str]: ...

    def close(self) -> None: ...


class ExecChannel(Protocol):
    """An interactive process in a container (a shell for the terminal)."""

    def write(self, data: bytes) -> None:
        """Send bytes to the process's stdin."""

    def read(self, timeout_s: float) -> bytes | None:
        """Output (stdout and stderr, merged) available within ``timeout_s``: b"" when there was
        none yet, None once the process has ended and everything was read."""

    def resize(self, cols: int, rows: int) -> None:
        """Tell the process's terminal its new size."""

    def close(self) -> None:
        """End the process (and the connection to it)."""

    @property
    def exit_code(self) -> int | None:
        """The exit status once the process ended, else None."""


@runtime_checkable
class Runtime(Protocol):
    """One workload runtime. Every method may raise the errors of the module docstring."""

    name: str  # "kube" or "local"

    def describe(self) -> dict[str, Any]:
        """Where objects go, for status pages: {"runtime": "kube", "server": ...} or the local data folder."""

    def check(self) -> None:
        """Readiness: raise DependencyUnavailable when the runtime cannot be used now."""

    # -- objects ------------------------------------------------------------------
    def list(self, kind: Kind, *, namespace: str | None, labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Live objects of ``kind`` (in ``namespace``; None: every namespace the runtime may read)
        whose labels include ``labels``."""

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        """The live object, or None when it does not exist."""

    def apply(self, obj: dict[str, Any], *, field_manager: str, dry_run: bool = False,
              force: bool = True) -> dict[str, Any]:
        """Server-side apply ``obj`` under ``field_manager``; returns the object as the runtime
        now holds it (as it would hold it, with ``dry_run``). Creates it when missing."""

    def delete(self, ref: ObjectRef, *, wait_s: float = 0.0) -> bool:
        """Delete the object and what it owns (pods of a Job or Deployment), in the
        foreground; wait up to ``wait_s`` for it to be gone. False when it did not exist."""

    # -- observing ----------------------------------------------------------------
    def pods(self, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        """Pods in ``namespace`` whose labels include ``selector`` (a Job's pods: {"job-name": name})."""

    def events(self, namespace: str, *, kind: str, name: str) -> list[dict[str, Any]]:
        """Events about one object (involvedObject kind and name), oldest first."""

    def logs(self, namespace: str, pod: str, *, container: str | None = None, tail_lines: int | None = None,
             since_seconds: int | None = None, follow: bool = False,
             timestamps: bool = False) -> LogStream:
        """A container's log lines (without their line ends)."""

    def exec(self, namespace: str, pod: str, *, container: str | None = None, command: Sequence[str],
             tty: bool = True) -> ExecChannel:
        """Start ``command`` in the container, interactive."""

    # -- reaching workloads -------------------------------------------------------
    def service_url(self, namespace: str, name: str, port: int) -> str:
        """The URL a process of this installation uses to reach a Service's port
        (kube: the cluster DNS name; local: the local port the Service was given)."""

    def unsupported(self, obj: dict[str, Any]) -> str | None:
        """Why this runtime cannot run ``obj`` (a sentence with what to do instead), or None."""
