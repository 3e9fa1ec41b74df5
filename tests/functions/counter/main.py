"""A function for the event-ledger tests: each run of its handler leaves one document.

Not one of the six: it exists so that a test can count how often a handler ran (the
visible effect) while deliveries of one event race, fail or find a dead claim.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from vllmbench.errors import DependencyUnavailable
from vllmbench.web import Context, FunctionApp

app = FunctionApp("counter", service="counter", title="counter (tests only)")
handle = app.handle

COUNT = "dev.vllmbench.test.count"


@app.event(COUNT)
def count(ctx: Context, event: Any, data: Any) -> dict[str, Any]:
    """Record one run; ``sleep`` widens the race, ``fail_first`` fails the first run of an event."""
    runs = ctx.db["runs"]
    if data.get("fail_first") and runs.count_documents({"event": event["id"], "failed": True}) == 0:
        runs.insert_one({"_id": uuid.uuid4().hex, "event": event["id"], "failed": True})
        raise DependencyUnavailable("downstream", "the first run of this event fails on purpose")
    time.sleep(float(data.get("sleep", 0)))
    runs.insert_one({"_id": uuid.uuid4().hex, "event": event["id"], "failed": False})
    return {"ran": True}
