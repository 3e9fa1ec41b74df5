"""Once-per-event processing: a store-backed record of the events already handled.

Delivery is at least once, so a handler may see the same (source, id) twice. The
record is written after the handler succeeded; a failed handler leaves no record and
the redelivery runs it again. Entries expire after a TTL (checked on read and swept
now and then, since FerretDB v1 has no TTL indexes).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from typing import Any

from vllmbench.models.base import as_utc
from vllmbench.store.mongo import translate

COLLECTION = "processed_events"
SWEEP_SHARE = 0.001  # one write in a thousand also removes expired entries


def event_key(source: str, event_id: str) -> str:
    """The identity of a CloudEvent: its source and id."""
    return hashlib.sha256(f"{source}\x00{event_id}".encode()).hexdigest()


class EventLedger:
    def __init__(self, db: Any, *, ttl_s: int) -> None:
        self._collection = db[COLLECTION]
        self._ttl = dt.timedelta(seconds=ttl_s)

    def seen(self, source: str, event_id: str) -> dict[str, Any] | None:
        """The stored outcome when (source, id) was processed and has not expired."""
        now = dt.datetime.now(dt.timezone.utc)
        with translate("reading the event ledger"):
            doc = self._collection.find_one({"_id": event_key(source, event_id)})  # _id alone: pushed down by FerretDB
        if doc is None or as_utc(doc["expires_at"]) <= now:
            return None
        return doc

    def record(self, source: str, event_id: str, event_type: str, outcome: dict[str, Any]) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        doc = {
            "_id": event_key(source, event_id),
            "source": source,
            "id": event_id,
            "type": event_type,
            "outcome": outcome,
            "processed_at": now,
            "expires_at": now + self._ttl,
        }
        from pymongo.errors import DuplicateKeyError

        # An insert, not an upsert: FerretDB v1 answers inserts and _id reads cheaply but
        # scans the whole table for every update or delete.
        with translate("writing the event ledger"):
            try:
                self._collection.insert_one(doc)
            except DuplicateKeyError:  # an expired entry of the same event: rare, so the scan is fine
                self._collection.replace_one({"_id": doc["_id"]}, doc)
            if random.random() < SWEEP_SHARE:
                self._collection.delete_many({"expires_at": {"$lte": now}})
