"""The embedded stack places the ModelServers of ``models/`` at start (the seed's opt-125m among them).

The vLLM service would do it at its first tick (every minute); asking it at once means
that ``make run`` shows the seed server placed and answering before it says it is up.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any


def _call(method: str, url: str, token: str | None, body: Any = None, timeout_s: float = 60) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=timeout_s) as answer:
        return json.load(answer)


def place_model_servers(vllm_url: str, *, token: str | None, say: Callable[[str], None],
                        timeout_s: float = 45.0) -> dict[str, Any]:
    """Sync models/ once, then wait (at most ``timeout_s``) for the placed servers to answer."""
    try:
        outcome = _call("POST", vllm_url + "/reconcile", token, {})
    except (urllib.error.URLError, OSError, ValueError) as exc:
        say(f"vllm servers could not be placed now ({exc}); the service's tick tries again every minute")
        return {}
    deadline = time.monotonic() + timeout_s
    servers: dict[str, Any] = {}
    while time.monotonic() < deadline:
        servers = {key: _call("GET", f"{vllm_url}/deployments/{key.replace('/', '.', 1)}/status", token)
                   for key in outcome.get("servers", {})}
        if all(s["status"] in ("ready", "pending", "failed") for s in servers.values()):
            break
        time.sleep(1.0)
    for key, status in sorted(servers.items()):
        where = f" at {status['url']}" if status["status"] == "ready" else ""
        say(f"vllm server  {key}: {status['status']}{where} ({status['reason'].splitlines()[0][:160]})")
    return servers
