"""Emitting CloudEvents to the broker (Knative's K_SINK, or the local broker).

Structured mode over plain HTTP with the standard library: no extra client on the
import path of a function. Emission is best effort after the work is stored: a
broker that is down is logged, never turned into a failed request, because the state
it announces is already in the store and the periodic ticks pick it up.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from typing import Any

from vllmbench.logs import info, scrub

log = logging.getLogger("vllmbench.events")


def make_event(event_type: str, source: str, data: Any, *, event_id: str | None = None,
               subject: str | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": event_type,
        "time": dt.datetime.now(dt.timezone.utc).isoformat(),
        "datacontenttype": "application/json",
        "data": data,
    }
    if subject:
        event["subject"] = subject
    return event


def emit(broker_url: str, event: dict[str, Any], *, timeout_s: float = 3.0) -> bool:
    """POST ``event`` in structured mode to ``broker_url``; True when accepted."""
    if not broker_url:
        info(log, "event not sent: no broker configured", event_type=event["type"], event_id=event["id"])
        return False
    import urllib.error
    import urllib.request

    body = json.dumps(event, default=str).encode()
    request = urllib.request.Request(
        broker_url, data=body, method="POST",
        headers={"Content-Type": "application/cloudevents+json; charset=utf-8"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            ok = 200 <= response.status < 300
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        log.warning("event not delivered to the broker: %s", scrub(str(exc)),
                    extra={"fields": {"event_type": event["type"], "event_id": event["id"]}})
        return False
    info(log, "event emitted", event_type=event["type"], event_id=event["id"], accepted=ok)
    return ok
