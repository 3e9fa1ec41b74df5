"""Terminal sessions of the deployer: who may open which shell, and which are open.

A session is created by an authenticated ``POST`` and opened by a WebSocket that
presents its one-time ticket (stored as a hash, never as given). The WebSocket may
reach another replica than the POST did: everything about a session is here, and
the replica holding an open session closes it when the store says so (DELETE).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from vllmbench.store.mongo import translate

COLLECTION = "terminal_sessions"
OPEN_STATES = ("created", "open")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def ticket_hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


def ensure_indexes(db: Any) -> None:
    with translate("creating terminal session indexes"):
        db[COLLECTION].create_index([("state", 1)])


class TerminalSessions:
    def __init__(self, db: Any) -> None:
        self._c = db[COLLECTION]

    def create(self, doc: dict[str, Any]) -> None:
        with translate("creating a terminal session"):
            self._c.insert_one({**doc, "created_at": _now(), "state": "created"})

    def count_open(self) -> int:
        now = _now()
        with translate("counting terminal sessions"):
            docs = self._c.find({"state": {"$in": list(OPEN_STATES)}}, {"state": 1, "ticket_expires_at": 1})
            return sum(1 for d in docs if d["state"] == "open" or d["ticket_expires_at"] > now)

    def claim(self, session_id: str, ticket: str | None, *, holder: str) -> dict[str, Any] | None:
        """Open a created session with its ticket (once); None when the ticket is wrong, used or old."""
        query: dict[str, Any] = {"_id": session_id, "state": "created", "ticket_expires_at": {"$gt": _now()}}
        if ticket is not None:
            query["ticket_hash"] = ticket_hash(ticket)
        with translate("opening a terminal session"):
            result = self._c.update_one(query, {"$set": {"state": "open", "opened_at": _now(), "holder": holder}})
            if result.modified_count != 1:
                return None
            return self._c.find_one({"_id": session_id})

    def get(self, session_id: str) -> dict[str, Any] | None:
        with translate("reading a terminal session"):
            return self._c.find_one({"_id": session_id})

    def list(self, *, include_closed: bool = False) -> list[dict[str, Any]]:
        query = {} if include_closed else {"state": {"$in": list(OPEN_STATES)}}
        with translate("listing terminal sessions"):
            return list(self._c.find(query, {"ticket_hash": 0}).sort([("created_at", -1)]).limit(200))

    def request_close(self, query: dict[str, Any], reason: str) -> list[str]:
        with translate("closing terminal sessions"):
            ids = [d["_id"] for d in self._c.find({**query, "state": {"$in": list(OPEN_STATES)}}, {"_id": 1})]
            if ids:
                self._c.update_many({"_id": {"$in": ids}, "state": "created"},
                                    {"$set": {"state": "closed", "closed_at": _now(), "close_reason": reason}})
                self._c.update_many({"_id": {"$in": ids}, "state": "open"}, {"$set": {"close_requested": reason}})
        return ids

    def closed(self, session_id: str, reason: str) -> None:
        with translate("recording a closed terminal session"):
            self._c.update_one({"_id": session_id}, {"$set": {"state": "closed", "closed_at": _now(),
                                                              "close_reason": reason}})
