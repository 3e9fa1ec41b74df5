"""A ModelServer and its placement, rendered to a Kubernetes Deployment and Service.

Pure: dicts out, for the reconcile engine to apply (it adds the owner's labels) and
for the local runtime to run (``vllm serve`` where installed, else the simulator,
from the same container args). The strategy is always Recreate: a rolling update of
a server that holds every GPU it could use would wait forever for a second set.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any

from vllmbench.models.servers import CPU, ModelServerSpec
from vllmbench.placement import labels as L
from vllmbench.placement.decision import Decision

_LABEL_VALUE = re.compile(r"[^A-Za-z0-9._-]+")
STARTUP_SECONDS = 1800  # model download and load; the startup probe allows this long


def label_value(text: str) -> str:
    """A string as a valid label value (63 characters, alphanumerics at both ends)."""
    value = _LABEL_VALUE.sub("-", text)[:63].strip("-._")
    return value or "x"


def identity_hash(spec: ModelServerSpec) -> str:
    return hashlib.sha256(json.dumps(spec.identity(), sort_keys=True).encode()).hexdigest()[:16]


def serve_args(spec: ModelServerSpec, decision: Decision | None = None) -> list[str]:
    """``vllm serve`` arguments: every memory-relevant setting explicit, as the planner sized it."""
    length = decision.max_model_len if decision and decision.max_model_len else spec.max_model_len
    util = decision.gpu_memory_utilization if decision else spec.gpu_memory_utilization
    args = [spec.model_name, "--host", "0.0.0.0", "--port", str(spec.port), "--served-model-name", spec.served_name]
    if spec.model_revision:
        args += ["--revision", spec.model_revision]
    if spec.gpu_resource_type != CPU:
        args += ["--tensor-parallel-size", str(spec.tensor_parallel_size),
                 "--pipeline-parallel-size", str(spec.pipeline_parallel_size),
                 "--gpu-memory-utilization", f"{util:g}"]
    args += ["--dtype", spec.dtype, "--max-num-seqs", str(spec.max_num_seqs), "--block-size", str(spec.block_size)]
    if isinstance(length, int):
        args += ["--max-model-len", str(length)]
    if spec.kv_cache_dtype != "auto":
        args += ["--kv-cache-dtype", spec.kv_cache_dtype]
    if spec.quantization:
        args += ["--quantization", spec.quantization]
    if spec.max_num_batched_tokens:
        args += ["--max-num-batched-tokens", str(spec.max_num_batched_tokens)]
    if spec.trust_remote_code:
        args.append("--trust-remote-code")
    return args + list(spec.additional_args)


def render(spec: ModelServerSpec, decision: Decision | None, *, name: str, namespace: str,
           server_namespace: str = "default", labels: dict[str, str] | None = None,
           placed_at: float | None = None) -> list[dict[str, Any]]:
    """``[Deployment, Service]`` for one server; without a placed decision, 0 replicas and no node pinned."""
    placed = decision is not None and decision.outcome == "placed"
    selector = {L.SERVER: label_value(name), L.SERVER_NAMESPACE: label_value(server_namespace)}
    common = {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/instance": label_value(name),
              "app.kubernetes.io/component": "model-server", **selector, **(labels or {})}
    pod_labels = {**common, L.PRIORITY: str(spec.priority), "vllmbench.dev/model": label_value(spec.model_name)}
    notes = {L.IDENTITY: identity_hash(spec), L.PLACED_AT: f"{placed_at if placed_at is not None else time.time():.0f}"}
    resources: dict[str, Any] = {}
    pod: dict[str, Any] = {}
    if spec.gpu_resource_type != CPU:
        resources = {"limits": {spec.gpu_resource_type: str(spec.gpus_per_replica)}}
        pod["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    if placed and decision is not None:
        first = decision.replicas[0] if decision.replicas else None
        if first and first.bytes_per_gpu:
            notes[L.CLAIM_BYTES] = str(first.bytes_per_gpu)
        if len(decision.replicas) == 1 and decision.replicas[0].gpus:
            notes[L.GPU_INDICES] = ",".join(map(str, decision.replicas[0].gpus))
        nodes = sorted({r.node for r in decision.replicas})
        if nodes:
            pod["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": L.HOSTNAME, "operator": "In", "values": nodes}]}]}}}
        products = sorted({r.accelerator for r in decision.replicas if r.accelerator and r.resource != CPU})
        if len(products) == 1 and products[0]:
            pod["nodeSelector"] = {L.GPU_PRODUCT: products[0]}
    if spec.node_selector:
        pod["nodeSelector"] = {**pod.get("nodeSelector", {}), **spec.node_selector}
    volumes, mounts = [], []
    if spec.tensor_parallel_size * spec.pipeline_parallel_size > 1:  # NCCL needs more than Docker's 64 MiB of /dev/shm
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}})
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    probe = {"httpGet": {"path": "/health", "port": "http"}}
    container = {
        "name": "vllm", "image": spec.engine.reference, "command": ["vllm", "serve"], "args": serve_args(spec, decision),
        "ports": [{"name": "http", "containerPort": spec.port, "protocol": "TCP"}],
        "env": [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf-token", "key": "token", "optional": True}}}],
        "resources": resources,
        "startupProbe": {**probe, "periodSeconds": 10, "failureThreshold": STARTUP_SECONDS // 10},
        "readinessProbe": {**probe, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 3, "timeoutSeconds": 5},
        **({"volumeMounts": mounts} if mounts else {}),
    }
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": common,
                     "annotations": {"vllmbench.dev/decision": decision.reason if decision else "not planned"}},
        "spec": {
            "replicas": spec.replicas if placed else 0,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": pod_labels, "annotations": notes},
                         "spec": {**pod, "containers": [container], **({"volumes": volumes} if volumes else {})}},
        },
    }
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": common},
        "spec": {"type": "ClusterIP", "selector": selector,
                 "ports": [{"name": "http", "port": spec.port, "targetPort": "http", "protocol": "TCP"}]},
    }
    return [deployment, service]
