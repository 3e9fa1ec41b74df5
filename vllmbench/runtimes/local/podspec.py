"""A pod's spec, turned into the launch plan its shim runs (``<pod dir>/plan.json``).

Containers get what a kubelet gives them, the local way: env (values, ConfigMap keys,
``metadata.*`` and ``status.podIP`` = 127.0.0.1), envFrom ConfigMaps, the Kubernetes
service variables of the namespace's Services, ``$(VAR)`` expanded in env, command and
args; every containerPort mapped to a free host port (``PORT`` for the vllmbench image,
``--port`` for vLLM and the simulator); configMap, emptyDir and persistentVolumeClaim
volumes as folders under the pod's folder at the mount path made relative (arguments and
env values naming a mount path are rewritten to it); the pod's folder as the working
directory. The environment starts empty but for PATH, HOME and the locale (and PYTHONPATH for
the containers that run this Python's vllmbench): nothing else of the runtime's own environment
(database URLs, tokens) reaches a workload.

What cannot be given (Secrets, other volume kinds, gRPC probes) leaves the pod Pending with
the reason; a missing ConfigMap is CreateContainerConfigError and retried, as by a kubelet.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vllmbench.runtimes.local import images, volumes
from vllmbench.runtimes.local.volumes import CONFIG_ERROR, NOT_SUPPORTED, Blocked

NOT_RUNNABLE = "ImageNotRunnableLocally"
CLUSTER_HINT = "run it on a cluster instead (set KUBECONFIG)"
VOLUMES = ("configMap", "emptyDir", "persistentVolumeClaim")
HOST_ENV = ("LANG", "LC_ALL", "TZ")
UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


@dataclass
class Sources:
    """What a plan reads from the rest of the runtime."""

    configmap: Callable[[str], dict[str, Any] | None]
    service_ports: Callable[[], list[tuple[str, list[tuple[str, int]]]]]  # (service, [(port name, host port)])
    exec_enabled: bool


def unsupported(spec: dict[str, Any], *, exec_enabled: bool) -> Blocked | None:
    """The first thing in a pod spec this runtime cannot run, known without reading anything else."""
    containers = (spec.get("initContainers") or []) + (spec.get("containers") or [])
    for volume in spec.get("volumes") or []:
        kinds = [k for k in volume if k != "name"]
        if not any(k in VOLUMES for k in kinds):
            return Blocked(NOT_SUPPORTED, f"volume {volume.get('name')!r} ({', '.join(kinds) or 'no source'}) is not "
                           f"supported locally (configMap, emptyDir and persistentVolumeClaim are); {CLUSTER_HINT}")
    for c in containers:
        ports = [p.get("containerPort") for p in c.get("ports") or []]
        found = images.program(c.get("image", ""), c.get("command"), c.get("args"), ports=ports)
        if isinstance(found, str):
            return Blocked(NOT_RUNNABLE, f"container {c.get('name')!r}: {found}")
        for env in c.get("env") or []:
            source = env.get("valueFrom") or {}
            if "secretKeyRef" in source:
                return Blocked(NOT_SUPPORTED, f"container {c.get('name')!r}: env {env.get('name')} reads a Secret; "
                               f"the local runtime keeps no Secrets: give the value with value or a ConfigMap, or "
                               f"{CLUSTER_HINT}")
            if source and not ({"configMapKeyRef", "fieldRef"} & set(source)):
                return Blocked(NOT_SUPPORTED, f"container {c.get('name')!r}: env {env.get('name')} uses "
                               f"{', '.join(source)}, not supported locally; {CLUSTER_HINT}")
        for source in c.get("envFrom") or []:
            if "configMapRef" not in source:
                return Blocked(NOT_SUPPORTED, f"container {c.get('name')!r}: envFrom {', '.join(source)} is not "
                               f"supported locally (configMapRef is); {CLUSTER_HINT}")
        for probe_name in ("readinessProbe", "livenessProbe"):
            probe = c.get(probe_name) or {}
            if "grpc" in probe:
                return Blocked(NOT_SUPPORTED, f"container {c.get('name')!r}: {probe_name} grpc is not supported "
                               "locally (httpGet, tcpSocket and exec are)")
            command = (probe.get("exec") or {}).get("command")
            if command and not exec_enabled and isinstance(_probe_program(command), str):
                return Blocked(NOT_SUPPORTED, f"container {c.get('name')!r}: the {probe_name} runs {command[0]!r} on "
                               "this machine, allowed only with VLLMBENCH_LOCAL_EXEC=true (vllmbench and python "
                               "probes always run)")
    return None


def _probe_program(command: list[str]) -> list[str] | str:
    found = images.program("vllmbench", command, None, ports=[])
    return found if isinstance(found, str) else found.argv


def quantity(value: Any) -> int | None:
    """Bytes of a resource quantity ('512Mi', '1G', '1e9', 1073741824)."""
    if value is None:
        return None
    text = str(value).strip()
    for suffix, factor in UNITS.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    try:
        return int(float(text))
    except ValueError:
        return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined names replaced, $$ escapes, the rest left as written."""
    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _VAR.sub(one, text)


def service_env(service_ports: list[tuple[str, list[tuple[str, int]]]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for service, ports in service_ports:
        prefix = service.upper().replace("-", "_")
        if not ports:
            continue
        env[f"{prefix}_SERVICE_HOST"] = "127.0.0.1"
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0][1])
        env[f"{prefix}_PORT"] = f"tcp://127.0.0.1:{ports[0][1]}"
        for name, host_port in ports:
            if name:
                env[f"{prefix}_SERVICE_PORT_{name.upper().replace('-', '_')}"] = str(host_port)
    return env


def plan(pod: dict[str, Any], pod_dir: Path, sources: Sources, *, previous: dict[str, Any] | None = None
         ) -> dict[str, Any]:
    """The shim's plan for ``pod``, writing its volumes under ``pod_dir``. Raises Blocked.

    ``previous`` (an earlier plan of this pod) keeps the host ports it was given when they are free."""
    spec = pod.get("spec") or {}
    blocked = unsupported(spec, exec_enabled=sources.exec_enabled)
    if blocked:
        raise blocked
    meta = pod["metadata"]
    mounts = volumes.materialize(pod, pod_dir, sources.configmap)
    old_ports = {c["name"]: c.get("ports", {}) for c in (previous or {}).get("containers", [])}
    base = {"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)]),
            "HOME": str(pod_dir), "HOSTNAME": meta["name"], "PYTHONUNBUFFERED": "1"}
    base.update({k: os.environ[k] for k in HOST_ENV if k in os.environ})
    base.update(service_env(sources.service_ports()))

    def container(c: dict[str, Any]) -> dict[str, Any]:
        ports = {}
        for p in c.get("ports") or []:
            kept = old_ports.get(c["name"], {}).get(str(p["containerPort"]))
            ports[str(p["containerPort"])] = kept if kept and _bindable(kept) else free_port()
        names = {p["name"]: str(p["containerPort"]) for p in c.get("ports") or [] if p.get("name")}
        env = dict(base)
        # Mount paths are rewritten in what the manifest wrote (its env, command and args), never in
        # the paths of this machine (PATH, the Python that runs the container).
        env.update({k: volumes.remap(v, mounts) for k, v in _env_from(c, sources).items()})
        if c.get("ports") and images.image_family(c["image"]) == "vllmbench":
            env["PORT"] = str(ports[str(c["ports"][0]["containerPort"])])
        for item in c.get("env") or []:
            env[item["name"]] = volumes.remap(_env_value(item, pod, env, sources), mounts)
        command = [volumes.remap(expand(w, env), mounts) for w in c.get("command") or []] or None
        args = [volumes.remap(expand(w, env), mounts) for w in c.get("args") or []] or None
        found = images.program(c["image"], command, args, ports=[int(p) for p in ports])
        if isinstance(found, str):
            raise Blocked(NOT_RUNNABLE, f"container {c['name']!r}: {found}")
        argv = found.argv
        if found.runs_as in ("vllmbench", "simulator") and "PYTHONPATH" in os.environ:
            # this Python's vllmbench is the runtime's own: a source tree on PYTHONPATH (a checkout
            # beside an installed copy) runs in the workload too, not the copy that is installed
            env.setdefault("PYTHONPATH", os.environ["PYTHONPATH"])
        if found.listen_port is not None:
            key = str(found.listen_port)
            ports.setdefault(key, old_ports.get(c["name"], {}).get(key) or free_port())
            argv = images.replace_flag(argv, "--port", str(ports[key]))
        cwd = pod_dir / c["workingDir"].lstrip("/") if c.get("workingDir") else pod_dir
        cwd.mkdir(parents=True, exist_ok=True)
        return {"name": c["name"], "image": c["image"], "argv": argv, "env": env, "cwd": str(cwd),
                "runs_as": found.runs_as, "ignored": found.ignored, "ports": ports,
                "readiness": _probe(c.get("readinessProbe"), ports, names, env, c),
                "liveness": _probe(c.get("livenessProbe"), ports, names, env, c),
                "memory_limit": quantity(((c.get("resources") or {}).get("limits") or {}).get("memory"))}

    return {
        "pod": {"namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]},
        "restartPolicy": spec.get("restartPolicy") or "Always",
        "grace_s": float(spec.get("terminationGracePeriodSeconds", 30)),
        "init": [container(c) for c in spec.get("initContainers") or []],
        "containers": [container(c) for c in spec.get("containers") or []],
    }


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _env_from(c: dict[str, Any], sources: Sources) -> dict[str, str]:
    env = {}
    for source in c.get("envFrom") or []:
        ref = source["configMapRef"]
        cm = sources.configmap(ref.get("name", ""))
        if cm is None:
            if ref.get("optional"):
                continue
            raise Blocked(CONFIG_ERROR, f'configmap "{ref.get("name")}" not found')
        for key, value in (cm.get("data") or {}).items():
            env[source.get("prefix", "") + key] = value
    return env


def _env_value(item: dict[str, Any], pod: dict[str, Any], env: dict[str, str], sources: Sources) -> str:
    if "value" in item or "valueFrom" not in item:
        return expand(str(item.get("value", "")), env)
    source = item["valueFrom"]
    if "configMapKeyRef" in source:
        ref = source["configMapKeyRef"]
        cm = sources.configmap(ref.get("name", ""))
        data = (cm or {}).get("data") or {}
        if ref.get("key") in data:
            return data[ref["key"]]
        if ref.get("optional"):
            return ""
        raise Blocked(CONFIG_ERROR, f'configmap "{ref.get("name")}" not found' if cm is None else
                      f'couldn\'t find key {ref.get("key")} in ConfigMap {pod["metadata"]["namespace"]}/{ref.get("name")}')
    path = source["fieldRef"].get("fieldPath", "")
    meta = pod["metadata"]
    values = {"metadata.name": meta["name"], "metadata.namespace": meta["namespace"], "metadata.uid": meta["uid"],
              "status.podIP": "127.0.0.1", "status.hostIP": "127.0.0.1", "spec.nodeName": socket.gethostname(),
              "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName", "default")}
    match = re.match(r"^metadata\.(labels|annotations)\['(.+)'\]$", path)
    if match:
        return (meta.get(match.group(1)) or {}).get(match.group(2), "")
    if path not in values:
        raise Blocked(NOT_SUPPORTED, f"env {item['name']}: fieldRef {path} is not supported locally")
    return values[path]


def _probe(probe: dict[str, Any] | None, ports: dict[str, int], names: dict[str, str], env: dict[str, str],
           c: dict[str, Any]) -> dict[str, Any] | None:
    if not probe:
        return None
    timing = {"initialDelaySeconds": probe.get("initialDelaySeconds", 0), "periodSeconds": probe.get("periodSeconds", 10),
              "timeoutSeconds": probe.get("timeoutSeconds", 1), "successThreshold": probe.get("successThreshold", 1),
              "failureThreshold": probe.get("failureThreshold", 3)}
    for kind in ("httpGet", "tcpSocket"):
        if kind in probe:
            port = str(probe[kind].get("port"))
            port = names.get(port, port)
            if port not in ports:
                raise Blocked(NOT_SUPPORTED, f"container {c['name']!r}: the probe's port {probe[kind].get('port')} "
                              "is not one of its containerPorts, so it has no local port")
            out = {"kind": "http" if kind == "httpGet" else "tcp", "port": ports[port], **timing}
            if kind == "httpGet":
                out.update(path=probe[kind].get("path", "/"), scheme=probe[kind].get("scheme", "HTTP").lower(),
                           headers={h["name"]: h["value"] for h in probe[kind].get("httpHeaders") or []})
            return out
    command = [expand(w, env) for w in probe["exec"]["command"]]
    mapped = _probe_program(command)
    argv = mapped if not isinstance(mapped, str) else [shutil.which(command[0]) or command[0], *command[1:]]
    return {"kind": "exec", "argv": argv, **timing}
