"""A server's status: placed -> starting -> ready, or failed with the reason, or pending; and its events.

The phase comes from what a user would check by hand: the Deployment and its pods (the
reconcile engine's health, with the scheduler's and the kubelet's reasons), then
``GET <url>/v1/models`` answering with the served name. A failed pod's log is read
back through :func:`vllmbench.placement.hints.from_log`, so vLLM's own start-up errors
("No available memory for the cache blocks", the max seq len message) become a hint
with the spec change that avoids them.

Each phase change is one compare-and-set on the server's record (its ``generation``);
only the writer that made it emits the event, with an id derived from the generation,
so a redelivered tick or two replicas observing at once announce a transition once.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from vllmbench.errors import RetryableError, UserError
from vllmbench.logs import get_logger, info
from vllmbench.placement.hints import from_log
from vllmbench.reconcile.health import Health, pod_problem
from vllmbench.servers.folder import server_id
from vllmbench.store.placements import Servers

log = get_logger("vllmbench.vllm")
PREFIX = "dev.vllmbench.model."
EVENTS = {"placed": PREFIX + "placed", "ready": PREFIX + "ready", "pending": PREFIX + "pending",
          "failed": PREFIX + "failed"}
PREEMPTED = PREFIX + "preempted"
PROBE_TIMEOUT_S = 2.0
LOG_LINES = 200
Emit = Callable[[str, dict[str, Any], str], Any]  # (type, data, event id)


def event_data(doc: dict[str, Any]) -> dict[str, Any]:
    """What every model event carries: enough for an evaluation to find and call the server."""
    decision = doc.get("decision") or {}
    replicas = decision.get("replicas") or []
    return {"id": server_id(doc["_id"]), "namespace": doc.get("namespace"), "server": doc.get("name"),
            "model": doc.get("model"), "served_model_name": doc.get("served_model_name"), "url": doc.get("url"),
            "phase": doc.get("phase"), "reason": doc.get("reason"), "identity": doc.get("identity_hash"),
            "reused": doc.get("reused"), "preempted_by": doc.get("preempted_by"), "commit": doc.get("commit"),
            "node": replicas[0]["node"] if replicas else None, "path": doc.get("path")}


def move(servers: Servers, doc: dict[str, Any], phase: str, reason: str, *, emit: Emit | None,
         fields: dict[str, Any] | None = None, event: str | None = None, placed: bool = False) -> dict[str, Any]:
    """Bring the record to ``phase``; emit the phase's event if this call made the change. Returns the record.

    ``placed``: the server was just placed (again), which is a transition of its own even when the phase
    it is observed in now is the one it had: the placement is announced first, in the same write."""
    fields = dict(fields or {})
    key = doc["_id"]
    if doc.get("phase") == phase and not placed:
        changed = {k: v for k, v in {**fields, "reason": reason}.items() if doc.get(k) != v}
        if changed:
            servers.save(key, changed)
            doc = {**doc, **changed}
        return doc
    generation = int(doc.get("generation") or 0)
    if not servers.move(key, generation=generation, phase=phase, fields={**fields, "reason": reason}):
        return servers.get(key) or doc  # someone else moved it first: theirs is the announcement
    doc = {**doc, **fields, "phase": phase, "reason": reason, "generation": generation + 1}
    info(log, "server phase", server=key, phase=phase, reason=reason[:300])
    kinds = ([EVENTS["placed"]] if placed else []) + [event or EVENTS.get(phase, "")]
    for kind in dict.fromkeys(k for k in kinds if k):
        if emit is not None:
            data = event_data(doc) if kind != EVENTS["placed"] or phase == "placed" else \
                {**event_data(doc), "phase": "placed", "reason": (doc.get("decision") or {}).get("reason")}
            emit(kind, data, f"{server_id(key)}-{generation + 1}-{kind.rsplit('.', 1)[-1]}")
    return doc


def probe(url: str, served_name: str) -> tuple[bool, str]:
    """Does ``url``/v1/models list ``served_name``? (answer, why not in words)."""
    request = urllib.request.Request(url.rstrip("/") + "/v1/models", headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S) as response:
            body = json.loads(response.read(1 << 20) or b"{}")
    except urllib.error.HTTPError as exc:
        return False, f"{url}/v1/models answered {exc.code}"
    except (urllib.error.URLError, OSError, TimeoutError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, f"{url}/v1/models does not answer yet ({reason})"
    names = [m.get("id") for m in (body.get("data") or []) if isinstance(m, dict)]
    if served_name in names:
        return True, f"{url}/v1/models serves {served_name}"
    return False, f"{url}/v1/models serves {names}, not {served_name!r}"


def observed_phase(doc: dict[str, Any], state: Health, *, probed: tuple[bool, str] | None) -> tuple[str, str]:
    """(phase, reason) of a placed server from its Deployment's health and the /v1/models probe."""
    spec = doc.get("spec") or {}
    if int(spec.get("replicas", 1)) == 0:
        return "placed", "replicas: 0: nothing runs"
    if state.state == "missing":
        return "placed", (doc.get("decision") or {}).get("reason", "placed") + "; not applied yet"
    if state.state in ("failed", "unsupported"):
        return "failed", state.message or state.reason
    if state.state == "ready" and state.reason != "ScaledToZero":
        if probed is None:
            return "starting", "the pods are Ready; /v1/models not asked yet"
        ok, why = probed
        return ("ready", why) if ok else ("starting", f"the pods are Ready; {why}")
    if state.state == "pending":
        return "starting", f"waiting: {state.message}"
    return "starting", state.message or "starting"


def log_hints(runtime: Any, namespace: str, pods: list[dict[str, Any]], *, util: float | None) -> list[dict[str, Any]]:
    """vLLM's start-up errors in the last lines of the logs of the (at most three newest) failing pods, as hints."""
    failing = sorted((p for p in pods if pod_problem(p)), key=lambda p: p["metadata"].get("creationTimestamp") or "")
    hints: list[dict[str, Any]] = []
    for pod in failing[-3:]:
        name = pod["metadata"]["name"]
        try:
            text = "\n".join(runtime.logs(namespace, name, container="vllm", tail_lines=LOG_LINES))
        except (UserError, RetryableError):
            continue
        for hint in from_log(text, gpu_memory_utilization=util):
            entry = hint.model_dump()
            if entry not in hints:
                hints.append(entry)
    return hints


def with_hints(reason: str, hints: list[dict[str, Any]]) -> str:
    if not hints:
        return reason
    first = hints[0]
    change = ", ".join(f"{k}: {v}" for k, v in (first.get("change") or {}).items())
    return f"{reason}\nvLLM: {first['message']}" + (f" (try {change})" if change else "")
