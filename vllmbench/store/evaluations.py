"""Evaluations in the eval function's database: one document each, moved by compare-and-set.

Events about one evaluation may arrive at once (a result and a tick): each transition
reads the document, computes the next one (pure), and writes it only if nobody wrote
in between (``version`` compare-and-set); a loser reads again and re-applies its event,
which the machine makes idempotent. Nothing is lost, nothing is applied twice.

A request's labels are stored as a list of ``{"k": key, "v": value}``: their keys are
Kubernetes-style (``vllmbench.dev/mlflow-model``), a document key may not hold a dot, and
FerretDB stores no nested arrays. Callers see
the mapping; only this module knows the stored form.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from vllmbench.errors import Conflict, NotFound
from vllmbench.store.mongo import translate

COLLECTION = "evaluations"
SCHEDULE_STATE = "schedule_state"


def ensure_indexes(db: Any) -> None:
    with translate("creating evaluation indexes"):
        db[COLLECTION].create_index([("created_at", -1)])
        db[COLLECTION].create_index([("state", 1)])
        db[COLLECTION].create_index([("key", 1), ("state", 1), ("created_at", -1)])


def _stored(doc: dict[str, Any]) -> dict[str, Any]:
    request = doc.get("request")
    if isinstance(request, dict) and isinstance(request.get("labels"), dict):
        doc = {**doc, "request": {**request, "labels": [{"k": k, "v": v} for k, v in request["labels"].items()]}}
    return doc


def _read(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    request = (doc or {}).get("request")
    if isinstance(request, dict) and isinstance(request.get("labels"), list):
        request["labels"] = {str(pair["k"]): pair["v"] for pair in request["labels"]}
    return doc


class Evaluations:
    def __init__(self, db: Any) -> None:
        self._c = db[COLLECTION]
        self._schedules = db[SCHEDULE_STATE]

    def create(self, doc: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Insert; the same id again answers the stored one (a retried request, a redelivered event)."""
        from pymongo.errors import DuplicateKeyError

        doc = {**doc, "version": 1}
        with translate("storing an evaluation"):
            try:
                self._c.insert_one(_stored(doc))
                return doc, True
            except DuplicateKeyError:
                return self.get(doc["_id"]), False

    def get(self, evaluation_id: str) -> dict[str, Any]:
        with translate("reading an evaluation"):
            doc = _read(self._c.find_one({"_id": evaluation_id}))
        if doc is None:
            raise NotFound(f"no evaluation {evaluation_id!r}; GET /evaluations lists them")
        return doc

    def replace(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Write ``doc`` if its version is still the stored one; :class:`Conflict` otherwise."""
        version = doc["version"]
        new = {**doc, "version": version + 1, "updated_at": dt.datetime.now(dt.timezone.utc)}
        with translate("updating an evaluation"):
            result = self._c.replace_one({"_id": doc["_id"], "version": version}, _stored(new))
        if result.matched_count != 1:
            raise Conflict(f"evaluation {doc['_id']!r} changed meanwhile")
        return new

    def active(self) -> list[dict[str, Any]]:
        with translate("listing active evaluations"):
            return [_read(d) for d in self._c.find({"state": {"$in": ["scheduled", "waiting", "running", "collecting"]}})]

    def list(self, *, query: dict[str, Any], limit: int, before: dt.datetime | None) -> list[dict[str, Any]]:
        selector = dict(query)
        if before is not None:
            selector["created_at"] = {"$lt": before}
        with translate("listing evaluations"):
            return [_read(d) for d in self._c.find(selector, {"seen": 0}).sort([("created_at", -1)]).limit(limit)]

    def last_passing(self, key: str, *, exclude: str) -> dict[str, Any] | None:
        """The newest finished evaluation of the same profile and server whose verdict was not worse."""
        with translate("finding a baseline"):
            docs = self._c.find({"key": key, "state": "done"}).sort([("created_at", -1)]).limit(50)
            for doc in map(_read, docs):
                verdict = (doc.get("verdict") or {}).get("verdict")
                if doc["_id"] != exclude and verdict in ("same", "better", "no_baseline"):
                    return doc
        return None

    # -- schedules under the local runtime: when each was last looked at --------------
    def schedule_checked(self, name: str) -> dt.datetime | None:
        with translate("reading schedule state"):
            doc = self._schedules.find_one({"_id": name})
        return doc["checked_at"] if doc else None

    def mark_schedule(self, name: str, checked_at: dt.datetime) -> None:
        with translate("recording schedule state"):
            self._schedules.update_one({"_id": name}, {"$set": {"checked_at": checked_at}}, upsert=True)
