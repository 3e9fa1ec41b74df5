"""Deploy requests of the deployer: what each ``POST /deploy`` or ``/delete`` committed.

The request id is a hash of the namespace and the objects, so the same request sent
twice (a retry, a redelivery) is one request and one commit.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from vllmbench.errors import NotFound
from vllmbench.store.mongo import translate

COLLECTION = "deploy_requests"


def ensure_indexes(db: Any) -> None:
    with translate("creating deploy request indexes"):
        db[COLLECTION].create_index([("created_at", -1)])


class DeployRequests:
    def __init__(self, db: Any) -> None:
        self._c = db[COLLECTION]

    def save(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Store the request; the same id again keeps the first record (and answers it)."""
        from pymongo.errors import DuplicateKeyError

        doc = {**doc, "created_at": dt.datetime.now(dt.timezone.utc)}
        with translate("recording a deploy request"):
            try:
                self._c.insert_one(doc)
            except DuplicateKeyError:
                existing = self._c.find_one({"_id": doc["_id"]})
                if existing is not None and existing.get("commit") != doc.get("commit") and doc.get("created"):
                    self._c.replace_one({"_id": doc["_id"]}, doc)
                    return doc
                return existing or doc
        return doc

    def get(self, request_id: str) -> dict[str, Any]:
        with translate("reading a deploy request"):
            doc = self._c.find_one({"_id": request_id})
        if doc is None:
            raise NotFound(f"no deployment {request_id!r}; GET /deployments lists them")
        return doc

    def list(self, *, namespace: str | None, limit: int) -> list[dict[str, Any]]:
        query = {"namespace": namespace} if namespace else {}
        with translate("listing deploy requests"):
            return list(self._c.find(query).sort([("created_at", -1)]).limit(limit))
