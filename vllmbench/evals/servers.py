"""Asking the vLLM service (port 8005) for the server an evaluation runs against.

The evaluation names a ModelServer in Git (``<namespace>/<name>``); the vLLM service
places it (reusing an identical running one) and says when it is ready. This adapter
asks it over HTTP; ``dev.vllmbench.model.ready`` events move the evaluation as well,
and a tick asks again, so a lost event only delays it.
"""

from __future__ import annotations

from typing import Any

from vllmbench.services import Service


class VllmServers:
    def __init__(self, service: Service) -> None:
        self.service = service

    def ensure(self, server: dict[str, Any]) -> dict[str, Any]:
        """{"state": ready | starting | pending | failed, "url", "model", "reason", "reused"}."""
        answer = self.service.post("/deploy-from-file", {"config_file": server["path"]})
        deployment = answer.get("id") or answer.get("deployment_id")
        status = self.service.get(f"/deployments/{deployment}/status") if deployment else answer
        state = str(status.get("status") or status.get("state") or "starting").lower()
        if state in ("ready", "running"):
            state = "ready"
        elif state in ("failed", "error"):
            state = "failed"
        elif state in ("pending", "preempted"):
            state = "pending"
        else:
            state = "starting"
        return {"state": state, "url": status.get("url"), "model": status.get("served_model_name") or status.get("model"),
                "reason": status.get("reason") or status.get("message"), "reused": bool(answer.get("reused"))}
