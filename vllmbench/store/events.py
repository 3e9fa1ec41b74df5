"""Once-per-event processing: an atomic claim, then a record of the events already handled.

Delivery is at least once, and a broker may deliver the same (source, id) several
times at once (a retry after a timeout while the first try still runs). So a handler
runs only under a *claim*: a document inserted with ``_id`` = the event's key, which
the database lets exactly one delivery insert. The others wait a little for the
winner's outcome (answered 200 "duplicate") or are told to retry (409 with
Retry-After). The winner's claim is renewed while the handler runs; a process that
dies stops renewing, the claim expires after ``claim_s`` and a redelivery runs the
handler. A handler that fails releases its claim at once, so the redelivery of a
failed event runs again.

When the handler succeeded its outcome is inserted in ``processed_events`` (kept for
``ttl_s``), then the claim is deleted. Only inserts and ``_id`` reads touch the large
collection: FerretDB v1 answers those cheaply but scans a whole table for an update or
a delete, which here only touch the claims, a handful of documents at any time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import random
import threading
import time
import uuid
from typing import Any

from vllmbench.errors import RetryableError
from vllmbench.models.times import as_utc
from vllmbench.store.mongo import translate

COLLECTION = "processed_events"
CLAIMS = "event_claims"
SWEEP_SHARE = 0.001  # one write in a thousand also removes expired entries

log = logging.getLogger("vllmbench.store.events")


class EventInProgress(RetryableError):
    """Another delivery of the same event is being processed right now (409: brokers retry it)."""

    status = 409
    code = "event_in_progress"
    retry_after = 1


def event_key(source: str, event_id: str) -> str:
    """The identity of a CloudEvent: its source and id."""
    return hashlib.sha256(f"{source}\x00{event_id}".encode()).hexdigest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Claim:
    """The right to run the handler of one event, renewed in the background while held."""

    def __init__(self, ledger: "EventLedger", key: str, token: str, source: str, event_id: str,
                 event_type: str) -> None:
        self._ledger = ledger
        self.key, self.token = key, token
        self.source, self.event_id, self.event_type = source, event_id, event_type
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def __enter__(self) -> "Claim":
        interval = max(self._ledger.claim.total_seconds() / 3, 0.2)
        self._renewer = threading.Thread(target=self._renew_every, args=(interval,), daemon=True,
                                         name=f"claim-{self.key[:8]}")
        self._renewer.start()
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        if exc_type is not None:
            self.release()

    def _renew_every(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                if not self._ledger._renew(self):
                    log.warning("event claim %s was taken over: the handler ran past its claim", self.key)
                    return
            except Exception:  # a renewal that fails now is tried again; the claim may lapse
                log.warning("could not renew event claim %s", self.key, exc_info=True)

    def complete(self, outcome: dict[str, Any]) -> None:
        self._ledger._complete(self, outcome)

    def release(self) -> None:
        try:
            self._ledger._release(self)
        except Exception:  # the claim then expires by itself
            log.warning("could not release event claim %s", self.key, exc_info=True)


class EventLedger:
    def __init__(self, db: Any, *, ttl_s: int, claim_s: float = 10.0, wait_s: float = 5.0) -> None:
        self._collection = db[COLLECTION]
        self._claims = db[CLAIMS]
        self._ttl = dt.timedelta(seconds=ttl_s)
        self.claim = dt.timedelta(seconds=claim_s)
        self._wait_s = wait_s

    def seen(self, source: str, event_id: str) -> dict[str, Any] | None:
        """The stored outcome when (source, id) was processed and has not expired."""
        with translate("reading the event ledger"):
            doc = self._collection.find_one({"_id": event_key(source, event_id)})  # _id alone: pushed down by FerretDB
        if doc is None or as_utc(doc["expires_at"]) <= _now():
            return None
        return doc

    def acquire(self, source: str, event_id: str, event_type: str) -> Claim | dict[str, Any]:
        """A :class:`Claim` to run the handler, or the stored record when the event was processed.

        Raises :class:`EventInProgress` when another delivery holds the claim for longer
        than ``wait_s``.
        """
        from pymongo.errors import DuplicateKeyError

        key = event_key(source, event_id)
        deadline = time.monotonic() + self._wait_s
        delay = 0.01
        while True:
            done = self.seen(source, event_id)
            if done is not None:
                return done
            token = uuid.uuid4().hex
            doc = {"_id": key, "token": token, "source": source, "id": event_id, "type": event_type,
                   "claimed_at": _now(), "expires_at": _now() + self.claim}
            with translate("claiming an event"):
                try:
                    self._claims.insert_one(doc)
                    claim = Claim(self, key, token, source, event_id, event_type)
                    # The holder before us may have finished between our read and our insert
                    # (it records the outcome, then deletes its claim): look once more.
                    done = self.seen(source, event_id)
                    if done is None:
                        return claim
                    claim.release()
                    return done
                except DuplicateKeyError:
                    held = self._claims.find_one({"_id": key})
                    # A claim whose holder stopped renewing it: its process died. Take it over,
                    # compare-and-set on the old token so that one redelivery wins.
                    if held is not None and as_utc(held["expires_at"]) <= _now():
                        if self._claims.replace_one({"_id": key, "token": held["token"]}, doc).matched_count:
                            log.warning("took over the expired claim of event %s from %s", event_id, source)
                            return Claim(self, key, token, source, event_id, event_type)
            if time.monotonic() >= deadline:
                raise EventInProgress(f"event {event_id!r} from {source!r} is being processed by another "
                                      "delivery; retry shortly")
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    def _renew(self, claim: Claim) -> bool:
        with translate("renewing an event claim"):
            result = self._claims.update_one({"_id": claim.key, "token": claim.token},
                                             {"$set": {"expires_at": _now() + self.claim}})
        return result.matched_count == 1

    def _release(self, claim: Claim) -> None:
        with translate("releasing an event claim"):
            self._claims.delete_one({"_id": claim.key, "token": claim.token})

    def _complete(self, claim: Claim, outcome: dict[str, Any]) -> None:
        from pymongo.errors import DuplicateKeyError

        now = _now()
        doc = {"_id": claim.key, "source": claim.source, "id": claim.event_id, "type": claim.event_type,
               "outcome": outcome, "processed_at": now, "expires_at": now + self._ttl}
        # An insert, not an upsert: FerretDB v1 answers inserts and _id reads cheaply but
        # scans the whole table for every update or delete.
        with translate("writing the event ledger"):
            try:
                self._collection.insert_one(doc)
            except DuplicateKeyError:  # an expired entry of the same event: rare, so the scan is fine
                self._collection.replace_one({"_id": doc["_id"]}, doc)
            self._claims.delete_one({"_id": claim.key, "token": claim.token})
            if random.random() < SWEEP_SHARE:
                self._collection.delete_many({"expires_at": {"$lte": now}})
                self._claims.delete_many({"expires_at": {"$lte": now - self.claim}})
