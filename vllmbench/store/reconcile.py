"""What the reconcile engine records: each run with its plan, each object's status, and
the commit an owner last applied. One set of collections per function database.

- ``reconciles``: one document per run (owner, partition, commit, the plan, what each
  action did, the outcome); a run that never finished is marked ``interrupted`` by the
  next one of its owner, which finishes the work from the live state.
- ``objects``: one document per object an owner manages (``_id`` = owner + object):
  its source file, the commit it shows, the last action, its health and last error.
  Written only when something in it changed, so a no-op reconcile is cheap here too.
- ``owners``: per owner (and partition) the desired and the applied commit.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from vllmbench.store.mongo import translate

RECONCILES, OBJECTS, OWNERS = "reconciles", "objects", "owners"
KEEP_RUNS = 200


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def ensure_indexes(db: Any) -> None:
    with translate("creating reconcile indexes"):
        db[RECONCILES].create_index([("owner", 1), ("started_at", -1)])
        db[OBJECTS].create_index([("owner", 1), ("partition", 1)])
        db[OBJECTS].create_index([("kind", 1), ("name", 1)])


def owner_key(owner: str, partition: str | None) -> str:
    return f"{owner}/{partition}" if partition else owner


class ReconcileStore:
    def __init__(self, db: Any, owner: str, partition: str | None = None) -> None:
        self.owner = owner
        self.partition = partition
        self.key = owner_key(owner, partition)
        self._runs = db[RECONCILES]
        self._objects = db[OBJECTS]
        self._owners = db[OWNERS]

    # -- runs -----------------------------------------------------------------------
    def start(self, run_id: str, *, commit: str, trigger: str, took_over: bool = False) -> None:
        """Record a run as running (a small insert). ``took_over``: the lease was taken from a run
        that died, whose record is marked interrupted."""
        now = _now()
        with translate("recording a reconcile"):
            if took_over:
                self._runs.update_many({"owner": self.key, "state": "running"},
                                       {"$set": {"state": "interrupted", "finished_at": now,
                                                 "error": "did not finish; the next reconcile took over"}})
            self._runs.insert_one({"_id": run_id, "owner": self.key, "commit": commit, "trigger": trigger,
                                   "state": "running", "started_at": now, "plan": None, "results": []})

    def finish(self, run_id: str, *, state: str, results: list[dict[str, Any]], writes: int,
               duration_ms: float, counts: dict[str, int], error: str | None = None) -> None:
        """The run's outcome in one write: every action with what it did (the plan, carried out)."""
        now = _now()
        with translate("recording a reconcile"):
            self._runs.update_one({"_id": run_id}, {"$set": {
                "state": state, "results": results, "counts": counts, "writes": writes,
                "duration_ms": duration_ms, "error": error, "finished_at": now}})

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        with translate("listing reconciles"):
            docs = list(self._runs.find({"owner": self.key}).sort([("started_at", -1)]).limit(limit))
        return [_public(doc) for doc in docs]

    def run(self, run_id: str) -> dict[str, Any] | None:
        with translate("reading a reconcile"):
            doc = self._runs.find_one({"_id": run_id})
        return _public(doc) if doc else None

    def trim(self) -> None:
        """Keep the newest runs only (history, not a log of everything); called now and then."""
        with translate("trimming reconcile history"):
            old = [d["_id"] for d in self._runs.find({"owner": self.key}, {"_id": 1}).sort([("started_at", -1)])
                   .skip(KEEP_RUNS)]
            if old:
                self._runs.delete_many({"_id": {"$in": old}})

    # -- objects --------------------------------------------------------------------
    def objects(self) -> dict[str, dict[str, Any]]:
        query: dict[str, Any] = {"owner": self.owner}
        if self.partition:
            query["partition"] = self.partition
        with translate("reading object statuses"):
            return {doc["_id"]: doc for doc in self._objects.find(query)}

    def save_objects(self, docs: list[dict[str, Any]], *, forget: list[str] = ()) -> int:  # type: ignore[assignment]
        """Write the documents that changed (compared without their time stamps); drop ``forget``."""
        current = self.objects()
        written = 0
        with translate("recording object statuses"):
            for doc in docs:
                doc = {**doc, "owner": self.owner, "partition": self.partition}
                old = current.get(doc["_id"])
                if old is not None and _same(old, doc):
                    continue
                doc["updated_at"] = _now()
                if old is None:
                    self._objects.insert_one(doc)
                else:
                    self._objects.replace_one({"_id": doc["_id"]}, doc)
                written += 1
            gone = [key for key in forget if key in current]
            if gone:
                self._objects.delete_many({"_id": {"$in": gone}})
        return written

    # -- the owner's commits --------------------------------------------------------
    def state(self) -> dict[str, Any]:
        with translate("reading reconcile state"):
            doc = self._owners.find_one({"_id": self.key})
        return _public(doc) if doc else {"owner": self.key, "desired_commit": None, "applied_commit": None}

    def set_state(self, **fields: Any) -> None:
        with translate("recording reconcile state"):
            self._owners.update_one({"_id": self.key}, {"$set": {**fields, "owner": self.key, "updated_at": _now()}},
                                    upsert=True)


def _same(old: dict[str, Any], new: dict[str, Any]) -> bool:
    ignore = {"updated_at", "since"}
    return {k: v for k, v in old.items() if k not in ignore} == {k: v for k, v in new.items() if k not in ignore}


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in doc.items() if k != "_id"}
    out["id"] = doc["_id"]
    return out
