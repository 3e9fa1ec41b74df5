"""The CloudEvent types of vllmbench and who consumes them.

Types are reverse-DNS under ``dev.vllmbench.``; ``source`` names the emitting function
(``/vllmbench/<service>``). Knative's PingSource always emits
``dev.knative.sources.ping`` (its type cannot be overridden), so periodic work arrives
as that type with ``{"job": ...}`` in its data.
"""

from __future__ import annotations

from dataclasses import dataclass

PING = "dev.knative.sources.ping"


@dataclass(frozen=True)
class EventType:
    type: str
    emitted_by: str
    consumed_by: tuple[str, ...]
    data: str


MODEL_SERVER_DATA = ("id, namespace, server, model, served_model_name, url, phase, reason, identity, reused, "
                     "preempted_by, node, path, commit")

EVENT_TYPES: tuple[EventType, ...] = (
    EventType("dev.vllmbench.gitops.pushed", "benchmark-manager (GitHub webhook), writers after a push",
              ("benchmark-manager", "benchmark-deployer", "benchmark-vllm"), "repository, branch, before, after"),
    EventType("dev.vllmbench.result.raw", "benchmark jobs", ("benchmark-results",),
              "a RawInput: run_id, project, model, harness, tags, data"),
    EventType("dev.vllmbench.result.ingested", "benchmark-results", ("benchmark-eval",),
              "run_id, raw_id, project, standardized record ids"),
    # A vLLM server's phase changes, once each (docs/placement.md "Status and events"); the evaluations wait for .ready.
    EventType("dev.vllmbench.model.placed", "benchmark-vllm", (), MODEL_SERVER_DATA),
    EventType("dev.vllmbench.model.ready", "benchmark-vllm", ("benchmark-eval",), MODEL_SERVER_DATA),
    EventType("dev.vllmbench.model.failed", "benchmark-vllm", ("benchmark-eval",), MODEL_SERVER_DATA),
    EventType("dev.vllmbench.model.pending", "benchmark-vllm", ("benchmark-eval",), MODEL_SERVER_DATA),
    EventType("dev.vllmbench.model.preempted", "benchmark-vllm", (), MODEL_SERVER_DATA),
    EventType("dev.vllmbench.eval.state", "benchmark-eval", (), "evaluation, state, reason"),
    EventType("dev.vllmbench.eval.completed", "benchmark-eval", ("benchmark-mlflow",),
              "evaluation, state, reason, verdict (with the figures), project, benchmark, server, run ids"),
    EventType("dev.vllmbench.model.version.registered", "benchmark-mlflow", ("benchmark-eval",),
              "model, version, source, run_id, server, path, commit, rule, benchmark (what to evaluate it with)"),
)

# Services and their ports: the routes of the system vllmbench replaces.
SERVICES: dict[str, tuple[str, int]] = {
    "results": ("benchmark-results", 8000),
    "sync": ("benchmark-manager", 8001),
    "deploy": ("benchmark-deployer", 8002),
    "mlflow_poll": ("benchmark-mlflow", 8003),
    "eval": ("benchmark-eval", 8004),
    "vllm_deploy": ("benchmark-vllm", 8005),
}


def local_service_urls(host: str = "127.0.0.1", *, port_offset: int = 0) -> dict[str, str]:
    """Knative Service name -> its URL in the embedded stack (every port shifted by ``port_offset``)."""
    return {service: f"http://{host}:{port + port_offset}" for service, port in SERVICES.values()}
