"""The ``kube`` workload runtime: objects, pods, events, logs and exec through the API server."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vllmbench.errors import NotFound
from vllmbench.runtimes.base import KINDS, ExecChannel, Kind, LogStream, ObjectRef
from vllmbench.runtimes.kube.api import Api, collection_path, object_path

_POD = KINDS[("v1", "Pod")]
_EVENT = KINDS[("v1", "Event")]


def _selector(labels: dict[str, str] | None) -> str | None:
    if not labels:
        return None
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


class KubeRuntime:
    name = "kube"

    def __init__(self, api_client: Any, *, cluster_domain: str = "cluster.local") -> None:
        self.api = Api(api_client)
        self.cluster_domain = cluster_domain

    # -- building -----------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings: Any) -> "KubeRuntime":
        """From ``KUBECONFIG`` when set, else the in-cluster service account."""
        return cls.from_kubeconfig(settings.kubeconfig) if settings.kubeconfig else cls.in_cluster()

    @classmethod
    def from_kubeconfig(cls, path: Path | str, *, context: str | None = None) -> "KubeRuntime":
        from kubernetes import config

        from vllmbench.errors import DependencyUnavailable

        try:
            client = config.new_client_from_config(config_file=str(path), context=context)
        except Exception as exc:  # a missing file, a bad context: the installation is misconfigured
            raise DependencyUnavailable("kubernetes", f"cannot load the kubeconfig {path}: {exc}") from exc
        return cls(client)

    @classmethod
    def in_cluster(cls) -> "KubeRuntime":
        from kubernetes import client, config

        from vllmbench.errors import DependencyUnavailable

        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException as exc:
            raise DependencyUnavailable("kubernetes", f"no in-cluster configuration: {exc}; set KUBECONFIG") from exc
        return cls(client.ApiClient(configuration))

    def close(self) -> None:
        self.api.client.close()

    # -- the interface ------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {"runtime": self.name, "server": self.api.host}

    def check(self) -> None:
        self.api.get("/version", what="reading the API server's version", read_timeout_s=5)

    def list(self, kind: Kind, *, namespace: str | None, labels: dict[str, str] | None = None) -> list[dict[str, Any]]:
        answer = self.api.get(collection_path(kind, namespace), query={"labelSelector": _selector(labels)},
                              what=f"listing {kind.plural}" + (f" in {namespace}" if namespace else ""))
        items = answer.get("items") or []
        for item in items:  # list items carry neither
            item.setdefault("apiVersion", kind.api_version)
            item.setdefault("kind", kind.kind)
        return items

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        try:
            return self.api.get(object_path(ref), what=f"reading {ref}")
        except NotFound:
            return None

    def apply(self, obj: dict[str, Any], *, field_manager: str, dry_run: bool = False,
              force: bool = True) -> dict[str, Any]:
        ref = ObjectRef.of(obj)
        query = {"fieldManager": field_manager, "force": "true" if force else None,
                 "dryRun": "All" if dry_run else None, "fieldValidation": "Strict"}
        return self.api.request("PATCH", object_path(ref), query=query, body=obj,
                                content_type="application/apply-patch+yaml",
                                what=f"applying {ref}" + (" (dry run)" if dry_run else ""))

    def delete(self, ref: ObjectRef, *, wait_s: float = 0.0) -> bool:
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Foreground"}
        try:
            self.api.request("DELETE", object_path(ref), body=body, what=f"deleting {ref}")
        except NotFound:
            return False
        deadline = time.monotonic() + wait_s
        delay = 0.05
        while wait_s and time.monotonic() < deadline:
            if self.get(ref) is None:
                break
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)
        return True

    def pods(self, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        return self.list(_POD, namespace=namespace, labels=selector)

    def events(self, namespace: str, *, kind: str, name: str) -> list[dict[str, Any]]:
        answer = self.api.get(collection_path(_EVENT, namespace),
                              query={"fieldSelector": f"involvedObject.kind={kind},involvedObject.name={name}"},
                              what=f"reading events of {kind} {namespace}/{name}")
        items = answer.get("items") or []
        return sorted(items, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")

    def logs(self, namespace: str, pod: str, *, container: str | None = None, tail_lines: int | None = None,
             since_seconds: int | None = None, follow: bool = False, timestamps: bool = False) -> LogStream:
        from vllmbench.runtimes.kube.logs import KubeLogStream

        return KubeLogStream.open(self.api, namespace, pod, container=container, tail_lines=tail_lines,
                                  since_seconds=since_seconds, follow=follow, timestamps=timestamps)

    def exec(self, namespace: str, pod: str, *, container: str | None = None, command: Sequence[str],
             tty: bool = True) -> ExecChannel:
        from vllmbench.runtimes.kube.exec import KubeExec

        return KubeExec.open(self.api.client, namespace, pod, container=container, command=list(command), tty=tty)

    def service_url(self, namespace: str, name: str, port: int) -> str:
        return f"http://{name}.{namespace}.svc.{self.cluster_domain}:{port}"

    def unsupported(self, obj: dict[str, Any]) -> str | None:
        return None
