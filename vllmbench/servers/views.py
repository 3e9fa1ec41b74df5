"""What the vLLM service answers without changing anything: the plan of a spec, the inventory,
the servers in the original service's shapes, the config files."""

from __future__ import annotations

from typing import Any

from gitops import installation
from vllmbench.placement.planner import plan
from vllmbench.runtimes.base import Runtime
from vllmbench.servers import capacity
from vllmbench.servers.folder import CONFIGS, FOLDER, parse_yaml, server_id
from vllmbench.servers.head import read_head, vllm_namespace, workload_namespace
from vllmbench.servers.placing import running
from vllmbench.servers.requests import Runtimes, resolve, view
from vllmbench.store.placements import Ledger, Servers
from vllmbench.store.reconcile import ReconcileStore


def dry_run(settings: Any, db: Any, runtime: Runtimes, *, config: dict[str, Any], namespace: str | None,
            name: str | None) -> dict[str, Any]:
    """``POST /plan``: the decision a deploy would get now, with the numbers; nothing is written."""
    found = resolve(settings, config, namespace=namespace, name=name, where=("body", "config"))
    state, docs = Ledger(db).read(), Servers(db).all()
    inventory, lost = capacity.gather(settings, runtime(), state.claims)
    for holder in lost:
        inventory.release(holder)
    others = [r for r in running(docs) if r.key not in lost]
    decision = plan(found.spec, key=found.key, facts=found.facts, inventory=inventory, running=others,
                    facts_source=found.facts_source)
    memory = decision.memory or {}
    return {
        "dry_run": True, "id": found.id, "server": found.key, "outcome": decision.outcome, "reason": decision.reason,
        "node": decision.node, "accelerator": decision.accelerator,
        "replicas": [r.model_dump() for r in decision.replicas], "reused": decision.reused,
        "max_model_len": decision.max_model_len, "gpu_memory_utilization": decision.gpu_memory_utilization,
        "memory_per_gpu_gib": memory.get("gib"), "kv_cache_tokens": memory.get("kv_tokens"),
        "max_concurrency": memory.get("max_concurrency"), "largest_max_model_len": memory.get("largest_max_model_len"),
        "conflicts": [c.model_dump() for c in decision.conflicts],
        "resolution": [s.model_dump() for s in decision.steps],
        "preempts": [v.model_dump() for v in decision.preempted], "shortfall": decision.shortfall,
        "hints": decision.hints, "facts_source": decision.facts_source, "inventory_source": inventory.source,
        "workload_namespace": workload_namespace(settings, found.namespace), "decision": decision.model_dump(),
    }


def inventory(settings: Any, db: Any, runtime: Runtime) -> dict[str, Any]:
    """``GET /inventory``: per node its GPUs, what is free and who holds the rest (our servers by name)."""
    state = Ledger(db).read()
    found, lost = capacity.gather(settings, runtime, state.claims)
    summary = found.summary()
    phases = {key: doc.get("phase") for key, doc in Servers(db).all().items()}
    for node in summary["nodes"]:
        for gpu in node["gpus"]:
            for holder in gpu["held_by"]:
                holder["phase"] = phases.get(holder["holder"])
        node["free_gpus"] = sum(1 for g in node["gpus"] if not g["held_by"])
    return {**summary, "ledger_version": state.version, "claims": len(state.claims),
            "lost_claims": sorted(lost), "runtime": runtime.describe()}


def deployments(db: Any) -> dict[str, Any]:
    """``GET /deployments``: the original service's object keyed by id (config, status, created_at) and ours."""
    out = {}
    for key, doc in sorted(Servers(db).all().items()):
        out[server_id(key)] = {"config": doc.get("spec"), "status": doc.get("phase"),
                               "created_at": doc.get("created_at"), **{k: v for k, v in view(doc).items()
                                                                       if k not in ("decision", "pods")}}
    return out


def service_status(settings: Any, db: Any, runtime: Runtime) -> dict[str, Any]:
    """``GET /status``: how many servers are in each phase, the applied commit, the files held back."""
    from vllmbench.servers.sync import OWNER

    docs = Servers(db).all()
    phases: dict[str, int] = {}
    for doc in docs.values():
        phases[str(doc.get("phase"))] = phases.get(str(doc.get("phase")), 0) + 1
    state = ReconcileStore(db, OWNER).state()
    ledger = Ledger(db).read()
    try:
        problems = read_head(settings).problems
    except Exception as exc:  # noqa: BLE001 - a status page says what it could not read
        problems = {"(head)": [{"msg": f"cannot read the configuration repository: {exc}"}]}
    return {"status": "ok", "service": "benchmark-vllm", "servers": len(docs), "phases": phases,
            "applied_commit": state.get("applied_commit"), "last_reconcile": state.get("last_reconcile"),
            "problems": problems, "ledger": {"version": ledger.version, "claims": len(ledger.claims)},
            "runtime": runtime.describe(), "vllm_namespace": vllm_namespace(settings)}


def config_files(settings: Any, db: Any) -> dict[str, Any]:
    """``GET /configs/files``: the ModelServer files of the repository: ``configs/`` (ready to deploy) and
    ``models/`` (deployed), each with its model and whether it is valid."""
    docs = Servers(db).all()
    with installation.open_repository(settings) as repo:
        commit = installation.head(repo)
        folders = {kind: installation.read_folder(repo, commit, folder, max_bytes=settings.git_max_file_bytes)
                   for kind, folder in (("config", CONFIGS), ("deployed", FOLDER))}
    head = read_head(settings)
    files = []
    for kind, folder in folders.items():
        for path, data in sorted(folder.files.items()):
            entry: dict[str, Any] = {"file": path, "kind": kind}
            try:
                spec = parse_yaml(path, data)
                entry["model"] = spec.get("model_name") if isinstance(spec, dict) else None
            except Exception as exc:  # noqa: BLE001 - listed with its problem
                entry["problems"] = [{"msg": getattr(exc, "message", str(exc))}]
            if kind == "deployed":
                server = next((s for s in head.servers.values() if s.path == path), None)
                entry["problems"] = head.problems.get(path, entry.get("problems", []))
                if server is not None:
                    entry.update(id=server.id, status=(docs.get(server.key) or {}).get("phase"))
            files.append(entry)
    return {"commit": commit, "files": files, "count": len(files)}
