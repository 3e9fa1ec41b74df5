"""A model version registered in MLflow becomes an evaluation request (no I/O here).

The MLflow service commits a new version's ModelServer and announces
``dev.vllmbench.model.version.registered`` with what its rule says to benchmark it
with (docs/mlflow.md, "Events"). The evaluations turn that into the request a person
would have sent to ``POST /evaluate``: the rule's project and profile, the new server,
the labels that lead the verdict back to the version, and the baseline (the previous
version's server, the one holding an alias, or none).

The evaluation's id is the version's, so an event delivered twice, or announced again
after a crash, finds the evaluation it already started.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from vllmbench.errors import ValidationFailed

_NOT_ID = re.compile(r"[^a-z0-9-]+")


def _refuse(field: str, message: str, expected: str) -> ValidationFailed:
    return ValidationFailed.at(f"data.{field}", message, expected)


def evaluation_id(server: str, profile: str) -> str:
    """``mlflow-<server name>-<profile>``, a DNS label; long names keep a hash of the whole."""
    name = server.rsplit("/", 1)[-1]
    full = _NOT_ID.sub("-", f"mlflow-{name}-{profile}".lower()).strip("-")
    if len(full) <= 63:
        return full
    digest = hashlib.sha256(f"{server}|{profile}".encode()).hexdigest()[:8]
    return f"{full[:54].rstrip('-')}-{digest}"


def request(data: Any) -> dict[str, Any] | None:
    """The ``POST /evaluate`` body for a registered version, or None when its rule asks for no benchmark."""
    if not isinstance(data, dict):
        raise _refuse("data", "the event's data must be an object", "an object")
    benchmark = data.get("benchmark")
    if benchmark is None:
        return None
    if not isinstance(benchmark, dict) or not benchmark.get("profile"):
        raise _refuse("benchmark.profile", "benchmark must name a profile", "a profile name")
    server = data.get("server")
    if not isinstance(server, str) or "/" not in server:
        raise _refuse("server", "server must be <namespace>/<name>", "<namespace>/<name>")
    previous = benchmark.get("baseline_server")
    body: dict[str, Any] = {
        "project": benchmark.get("project"),
        "benchmark": benchmark["profile"],
        "server": server,
        "baseline": f"server:{previous}" if previous and benchmark.get("baseline") != "none" else "none",
        "labels": {str(k): str(v) for k, v in (benchmark.get("labels") or {}).items()},
        "name": evaluation_id(server, str(benchmark["profile"])),
    }
    if benchmark.get("template"):
        body["template"] = benchmark["template"]
    return body
