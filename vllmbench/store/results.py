"""Raw and standardized results in the results database."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from typing import Any

from vllmbench.errors import Conflict, NotFound
from vllmbench.models.base import as_utc
from vllmbench.models.results import RawInput, StandardizedRecord
from vllmbench.query import RawQuery, ResultQuery, mongo_filter
from vllmbench.store.mongo import translate
from vllmbench.store.paging import page

log = logging.getLogger("vllmbench.store.results")

RAW = "raw_inputs"
STANDARDIZED = "standardized_outputs"
_LIST_FIELDS = ("project", "model", "run_id", "harness", "tags", "time")


def ensure_indexes(db: Any) -> None:
    """Indexes for every filter of the listing routes (idempotent)."""
    with translate("creating indexes"):
        db["dead_letters"].create_index([("time", -1), ("_id", -1)], name="time_id")
        for name in (RAW, STANDARDIZED):
            collection = db[name]
            collection.create_index([("time", -1), ("_id", -1)], name="time_id")
            for field in ("project", "model", "run_id", "harness", "tags"):
                collection.create_index([(field, 1), ("time", -1)], name=f"{field}_time")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def raw_id(raw: RawInput) -> str:
    """Same content, same id: a raw result posted twice is stored once."""
    canonical = json.dumps(raw.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


class ResultsStore:
    def __init__(self, db: Any) -> None:
        self.raw = db[RAW]
        self.standardized = db[STANDARDIZED]

    # -- raw -----------------------------------------------------------------------
    def insert_raw(self, raw: RawInput) -> tuple[str, bool]:
        """Store ``raw``; returns (id, created). The harness output is kept as its exact JSON text."""
        key = raw_id(raw)
        now = _now()
        doc = {
            "_id": key, "run_id": raw.run_id, "project": raw.project, "model": raw.model,
            "harness": raw.harness.name, "harness_version": raw.harness.version, "tags": raw.tags,
            "config_commit": raw.config_commit, "started_at": raw.started_at, "ended_at": raw.ended_at,
            "time": as_utc(raw.started_at) if raw.started_at else now, "ingested_at": now,
            "data_json": json.dumps(raw.data, separators=(",", ":")),
        }
        from pymongo.errors import DuplicateKeyError

        with translate("storing a raw result"):
            try:
                self.raw.insert_one(doc)
            except DuplicateKeyError:
                return key, False
        return key, True

    def list_raw(self, query: RawQuery) -> dict[str, Any]:
        shape = _raw_out if query.include_data else (lambda d: _raw_out(d, with_data=False))
        return page(self.raw, mongo_filter(query), query, shape)

    # -- standardized --------------------------------------------------------------
    def insert_standardized(self, records: list[StandardizedRecord], *, raw_id: str | None = None) -> dict[str, Any]:
        """Store a batch all or nothing; records already stored with the same content are skipped.

        A record is identified by run id and stage; one stored with other content is a
        409 naming it, and nothing of the batch is written. The batch is inserted
        optimistically and only the keys the database reports as taken are read back:
        FerretDB v1 scans the whole collection for an ``$in`` read, but inserts and
        ``_id`` reads are cheap.
        """
        keys = [r.key() for r in records]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise Conflict(f"the batch holds the same run id and stage twice: {', '.join(dupes[:5])}")
        docs = [self._doc(r, raw_id) for r in records]
        taken = self._insert_new(docs)
        by_key = {d["_id"]: d for d in docs}
        clashing = []
        with translate("reading standardized results"):
            for key in taken:
                stored = self.standardized.find_one({"_id": key}, {"record_json": 1})
                if stored is None or stored["record_json"] != by_key[key]["record_json"]:
                    clashing.append(key)
        if clashing:
            self._undo([k for k in keys if k not in taken])
            raise Conflict("records with these run ids and stages are stored already with other content: "
                           + ", ".join(sorted(clashing)[:5]) + " (post a new run id, or the same content again)")
        return {"stored": len(docs) - len(taken), "unchanged": len(taken), "ids": keys}

    def _insert_new(self, docs: list[dict[str, Any]]) -> set[str]:
        """Insert every document whose key is free; returns the keys that were taken.

        If the database drops mid-batch, the error is a 503 and the client's retry of the
        same batch completes it: the records already in are recognised as unchanged.
        """
        from pymongo.errors import BulkWriteError

        with translate("storing standardized results"):
            try:
                self.standardized.insert_many(docs, ordered=False)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != 11000 for e in errors):
                    raise
                return {docs[e["index"]]["_id"] for e in errors}
        return set()

    def _undo(self, keys: list[str]) -> None:
        if keys:
            with translate("undoing a refused batch"):
                self.standardized.delete_many({"_id": {"$in": keys}})

    @staticmethod
    def _doc(record: StandardizedRecord, raw_id: str | None) -> dict[str, Any]:
        return {
            "_id": record.key(), "run_id": record.run.run_id, "stage": record.run.stage,
            "project": record.run.project, "model": record.scenario.model,
            "harness": record.scenario.harness.name, "tags": record.tags,
            "time": as_utc(record.run.started_at), "ingested_at": _now(), "raw_id": raw_id,
            # JSON text, not a sub-document: labels and failure causes may hold keys with
            # dots, which FerretDB refuses; canonical, so equal content compares equal.
            "record_json": json.dumps(record.model_dump(mode="json"), sort_keys=True, separators=(",", ":")),
        }

    def list_standardized(self, query: ResultQuery) -> dict[str, Any]:
        return page(self.standardized, mongo_filter(query), query, lambda d: json.loads(d["record_json"]))

    def records_of_run(self, run_id: str) -> list[StandardizedRecord]:
        with translate("reading standardized results"):
            docs = list(self.standardized.find({"run_id": run_id}).sort([("stage", 1)]))
        return [StandardizedRecord.model_validate_json(d["record_json"]) for d in docs]

    def raw_of_run(self, run_id: str) -> list[dict[str, Any]]:
        with translate("reading raw results"):
            docs = list(self.raw.find({"run_id": run_id}).sort([("ingested_at", 1)]))
        return [_raw_out(d) for d in docs]

    def run(self, run_id: str) -> dict[str, Any]:
        standardized = self.records_of_run(run_id)
        raw = self.raw_of_run(run_id)
        if not standardized and not raw:
            raise NotFound(f"no results for run {run_id!r}")
        return {"run_id": run_id, "raw": raw, "standardized": [r.model_dump(mode="json") for r in standardized]}


def _raw_out(doc: dict[str, Any], *, with_data: bool = True) -> dict[str, Any]:
    out = {
        "id": doc["_id"], "run_id": doc["run_id"], "project": doc.get("project"), "model": doc.get("model"),
        "harness": {"name": doc["harness"], "version": doc.get("harness_version")}, "tags": doc.get("tags", []),
        "config_commit": doc.get("config_commit"),
        "started_at": doc.get("started_at"), "ended_at": doc.get("ended_at"), "ingested_at": doc.get("ingested_at"),
        "size_bytes": len(doc["data_json"]),
    }
    if with_data:
        out["data"] = json.loads(doc["data_json"])
    return out
