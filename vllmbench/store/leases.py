"""Named leases in the store: one holder at a time, expiring so that a crash frees them.

A lease is one document ``{_id: name, holder, expires_at}``. Taking it is an insert
(the first holder) or a conditional update of an expired one; both are atomic on a
single document, on MongoDB and FerretDB alike. A holder that dies simply lets it
expire; the next holder finishes the work (every use is written to be resumable).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from vllmbench.errors import RetryableError
from vllmbench.store.mongo import translate

COLLECTION = "leases"


class LeaseBusy(RetryableError):
    """Someone else holds the lease: try again shortly (409 with Retry-After: Knative retries it)."""

    status = 409
    code = "busy"
    retry_after = 2


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Leases:
    def __init__(self, db: Any) -> None:
        self._c = db[COLLECTION]

    def try_acquire(self, name: str, holder: str, *, ttl_s: float) -> str | None:
        """``"free"`` when the lease was free, ``"expired"`` when it was taken over from a holder that
        let it expire (it died mid-way), None when someone holds it."""
        from pymongo.errors import DuplicateKeyError

        now = _now()
        doc = {"_id": name, "holder": holder, "expires_at": now + dt.timedelta(seconds=ttl_s), "taken_at": now}
        with translate(f"taking lease {name!r}"):
            try:
                self._c.insert_one(doc)
                return "free"
            except DuplicateKeyError:
                pass
            result = self._c.update_one({"_id": name, "expires_at": {"$lt": now}},
                                        {"$set": {"holder": holder, "expires_at": doc["expires_at"], "taken_at": now}})
        return "expired" if result.modified_count == 1 else None

    def acquire(self, name: str, holder: str, *, ttl_s: float, wait_s: float = 0.0, what: str = "") -> str:
        """Take the lease, waiting up to ``wait_s``; :class:`LeaseBusy` when it stays taken.
        Returns how it was taken (see :meth:`try_acquire`)."""
        deadline = time.monotonic() + wait_s
        delay = 0.02
        while (taken := self.try_acquire(name, holder, ttl_s=ttl_s)) is None:
            if time.monotonic() >= deadline:
                raise LeaseBusy(f"{what or name} is running elsewhere; try again shortly")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        return taken

    def renew(self, name: str, holder: str, *, ttl_s: float) -> bool:
        with translate(f"renewing lease {name!r}"):
            result = self._c.update_one({"_id": name, "holder": holder},
                                        {"$set": {"expires_at": _now() + dt.timedelta(seconds=ttl_s)}})
        return result.matched_count == 1

    def release(self, name: str, holder: str) -> None:
        with translate(f"releasing lease {name!r}"):
            self._c.delete_one({"_id": name, "holder": holder})

    def holder(self, name: str) -> dict[str, Any] | None:
        with translate(f"reading lease {name!r}"):
            doc = self._c.find_one({"_id": name})
        if doc is None or doc["expires_at"] <= _now():
            return None
        return doc
