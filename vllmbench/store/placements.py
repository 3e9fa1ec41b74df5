"""Where the vLLM service keeps its placements: the per-GPU ledger and one record per server.

- ``gpu_ledger``: ONE document holding every GPU claim of our servers (node, GPU index or MIG
  profile, bytes, holder, priority, time placed) and a version. A placement is committed
  with a compare-and-set on that version (a single-document update, atomic on MongoDB and
  FerretDB alike), so two deploys that planned on the same ledger cannot both commit: the
  second finds the version moved, reads the ledger again and plans again. A single
  document keeps a multi-GPU placement all or nothing without transactions.
- ``model_servers``: per server (``_id`` = ``<namespace>/<server>``) its spec, the last
  decision, the phase and its reason, the URL; ``generation`` moves with each phase change,
  by compare-and-set, so that exactly one writer announces a transition.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from vllmbench.store.mongo import translate

LEDGER, SERVERS = "gpu_ledger", "model_servers"
_LEDGER_ID = "ledger"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def ensure_indexes(db: Any) -> None:
    with translate("creating placement indexes"):
        db[SERVERS].create_index([("created_at", 1)])


@dataclass
class LedgerState:
    version: int
    claims: list[dict[str, Any]] = field(default_factory=list)

    def holders(self) -> set[str]:
        return {c["holder"] for c in self.claims}


class Ledger:
    """The per-GPU claims of our servers, one versioned document."""

    def __init__(self, db: Any) -> None:
        self._c = db[LEDGER]

    def read(self) -> LedgerState:
        with translate("reading the GPU ledger"):
            doc = self._c.find_one({"_id": _LEDGER_ID})
        if doc is None:
            return LedgerState(0, [])
        return LedgerState(int(doc.get("version") or 0), list(doc.get("claims") or []))

    def commit(self, expected: int, claims: list[dict[str, Any]], *, writer: str) -> bool:
        """Replace the claims if the ledger is still at ``expected``; False when someone committed first."""
        from pymongo.errors import DuplicateKeyError

        doc = {"_id": _LEDGER_ID, "version": expected + 1, "claims": claims, "writer": writer,
               "updated_at": _now()}
        with translate("committing to the GPU ledger"):
            if expected == 0:
                try:
                    self._c.insert_one(doc)
                    return True
                except DuplicateKeyError:
                    pass  # a ledger that exists at version 0 (never in practice) or another first writer
            result = self._c.replace_one({"_id": _LEDGER_ID, "version": expected}, doc)
        return result.modified_count == 1


class Servers:
    """The record of each ModelServer the service knows (what Git says, what was decided, what runs)."""

    def __init__(self, db: Any) -> None:
        self._c = db[SERVERS]

    def all(self) -> dict[str, dict[str, Any]]:
        with translate("reading model servers"):
            return {doc["_id"]: doc for doc in self._c.find({})}

    def get(self, key: str) -> dict[str, Any] | None:
        with translate("reading a model server"):
            return self._c.find_one({"_id": key})

    def save(self, key: str, fields: dict[str, Any]) -> None:
        """Set ``fields`` (never the phase: :meth:`move` changes that); creates the record when new."""
        now = _now()
        with translate("recording a model server"):
            self._c.update_one({"_id": key}, {"$set": {**fields, "updated_at": now},
                                              "$setOnInsert": {"created_at": now, "generation": 0, "phase": "new"}},
                               upsert=True)

    def move(self, key: str, *, generation: int, phase: str, fields: dict[str, Any]) -> bool:
        """Change the phase if the record is still at ``generation``: True for the one writer that did."""
        now = _now()
        with translate("recording a model server's phase"):
            result = self._c.update_one({"_id": key, "generation": generation},
                                        {"$set": {**fields, "phase": phase, "generation": generation + 1,
                                                  "since": now, "updated_at": now}})
        return result.modified_count == 1

    def forget(self, keys: list[str]) -> None:
        if not keys:
            return
        with translate("forgetting model servers"):
            self._c.delete_many({"_id": {"$in": keys}})
