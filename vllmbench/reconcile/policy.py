"""What the deployer may apply from Git: kinds, namespaces, pod security. Pure.

Git holds benchmark workloads, not cluster administration. An object is refused,
with the reason and the allowed choices, when it is:

- of a kind outside the allowlist (cluster-scoped kinds among them);
- in a namespace outside the configured benchmark namespaces;
- a ``Secret``: its data would sit in Git in plain text (create Secrets in the
  cluster and refer to them with ``secretKeyRef`` / ``envFrom.secretRef``);
- a pod that asks for the host: ``privileged``, ``hostPath`` volumes,
  ``hostNetwork``, ``hostPID``, ``hostIPC``, added Linux capabilities,
  ``allowPrivilegeEscalation: true``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Kinds people commit to deployments/: the original four, plus PVCs for model caches and
# CronJobs for periodic jobs outside the evaluations.
DEPLOYABLE: dict[str, str] = {
    "ConfigMap": "v1",
    "Service": "v1",
    "PersistentVolumeClaim": "v1",
    "Deployment": "apps/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1",
}
CLUSTER_SCOPED = {"Namespace", "Node", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "PersistentVolume", "StorageClass", "PriorityClass", "MutatingWebhookConfiguration",
                  "ValidatingWebhookConfiguration", "APIService", "RuntimeClass"}
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_SERVICE_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
SECRET_ADVICE = ("Secret data never goes into Git: create the Secret in the cluster "
                 "(kubectl -n <namespace> create secret generic <name> --from-literal=KEY=...) and refer to it "
                 "from the workload with env[].valueFrom.secretKeyRef or envFrom[].secretRef")


@dataclass(frozen=True)
class Problem:
    loc: str
    message: str
    expected: str

    def to_detail(self) -> dict[str, Any]:
        return {"loc": self.loc, "msg": self.message, "expected": self.expected}


def check(obj: Any, *, namespaces: list[str], where: str,
          kinds: dict[str, str] = DEPLOYABLE) -> list[Problem]:
    """Every reason ``obj`` may not be applied (empty: it may). ``where`` names it: ``file:line``."""
    if not isinstance(obj, dict):
        return [Problem(where, f"{where}: a Kubernetes object must be a mapping, not {type(obj).__name__}",
                        "a mapping with apiVersion, kind and metadata.name")]
    found: list[Problem] = []
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    name = meta.get("name")
    allowed = ", ".join(sorted(kinds))
    if not isinstance(kind, str) or not kind:
        found.append(Problem(f"{where}.kind", f"{where}: kind is missing", f"one of {allowed}"))
        return found
    label = f"{where} ({kind} {name or '?'})"
    if kind == "Secret":
        return [Problem(f"{where}.kind", f"{label}: kind Secret is refused. {SECRET_ADVICE}",
                        f"one of {allowed}")]
    if kind not in kinds:
        scope = " (cluster-scoped: the deployer only writes into benchmark namespaces)" if kind in CLUSTER_SCOPED else ""
        return [Problem(f"{where}.kind", f"{label}: kind {kind} is not allowed{scope}", f"one of {allowed}")]
    if api_version != kinds[kind]:
        found.append(Problem(f"{where}.apiVersion", f"{label}: apiVersion {api_version!r} is not served for {kind}",
                             kinds[kind]))
    if not isinstance(name, str) or not name:
        found.append(Problem(f"{where}.metadata.name", f"{label}: metadata.name is missing",
                             "a DNS name: lower case letters, digits, '-' and '.'"))
    elif not (_SERVICE_NAME if kind == "Service" else _NAME).match(name) or len(name) > 253:
        expected = ("a DNS-1035 label: lower case letters, digits and '-', starting with a letter, at most 63"
                    if kind == "Service" else "a DNS-1123 subdomain: lower case letters, digits, '-' and '.'")
        found.append(Problem(f"{where}.metadata.name", f"{label}: metadata.name {name!r} is not valid", expected))
    namespace = meta.get("namespace")
    if namespace is not None and namespace not in namespaces:
        found.append(Problem(f"{where}.metadata.namespace",
                             f"{label}: namespace {namespace!r} is not a benchmark namespace",
                             f"one of {', '.join(namespaces)}"))
    for path, pod in pod_specs(obj):
        found += _pod_problems(pod, f"{where}.{path}", label)
    return found


def pod_specs(obj: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The pod specs inside an object, with their paths."""
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    kind = obj.get("kind")
    if kind == "Pod":
        return [("spec", spec)]
    if kind == "CronJob":
        pod = (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec")
        return [("spec.jobTemplate.spec.template.spec", pod)] if isinstance(pod, dict) else []
    pod = (spec.get("template") or {}).get("spec") if isinstance(spec.get("template"), dict) else None
    return [("spec.template.spec", pod)] if isinstance(pod, dict) else []


def _pod_problems(pod: dict[str, Any], path: str, label: str) -> list[Problem]:
    found = []
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(host):
            found.append(Problem(f"{path}.{host}", f"{label}: {host} is refused (the pod would share the node's)",
                                 f"{host} unset or false"))
    for index, volume in enumerate(pod.get("volumes") or []):
        if isinstance(volume, dict) and "hostPath" in volume:
            found.append(Problem(f"{path}.volumes[{index}].hostPath",
                                 f"{label}: hostPath volume {volume.get('name')!r} is refused (node files)",
                                 "configMap, emptyDir or persistentVolumeClaim volumes"))
    containers = [(group, c) for group in ("initContainers", "containers", "ephemeralContainers")
                  for c in pod.get(group) or [] if isinstance(c, dict)]
    for group, container in containers:
        where = f"{path}.{group}[{container.get('name', '?')}].securityContext"
        context = container.get("securityContext") or {}
        if context.get("privileged"):
            found.append(Problem(f"{where}.privileged", f"{label}: privileged containers are refused",
                                 "privileged unset or false"))
        if context.get("allowPrivilegeEscalation"):
            found.append(Problem(f"{where}.allowPrivilegeEscalation",
                                 f"{label}: allowPrivilegeEscalation true is refused", "unset or false"))
        added = ((context.get("capabilities") or {}).get("add")) or []
        if added:
            found.append(Problem(f"{where}.capabilities.add",
                                 f"{label}: added capabilities {', '.join(map(str, added))} are refused",
                                 "no capabilities.add (drop is fine)"))
    return found
