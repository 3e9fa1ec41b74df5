"""Raw and standardized results in the results database (layout: docs/results.md).

Writes are operations committed through a group committer onto a forest of
copy-on-write trees: a batch is visible whole or not at all, to every reader and
every process, and a record is never reported stored (201) or unchanged (200) unless
it is in a committed version. Reads run on one snapshot and touch only what the
answer holds: index nodes (cached, they never change) and the documents returned.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections.abc import Callable
from typing import Any

from vllmbench.errors import Conflict, NotFound
from vllmbench.models.base import as_utc
from vllmbench.models.results import RawInput, StandardizedRecord
from vllmbench.query import RawQuery, ResultQuery
from vllmbench.store import results_layout as L
from vllmbench.store.forest import Change, Forest, Snapshot, _now
from vllmbench.store.group_commit import GroupCommitter
from vllmbench.store.mongo import translate
from vllmbench.store.paging import tree_page

DEAD_LETTERS = "dead_letters"


def ensure_indexes(db: Any) -> None:
    """What the results function needs before its first request (idempotent).

    The results layout reads by ``_id`` only and needs no index of its own; the dead
    letters are listed by time. Results stored in the layout that came before are
    moved over once (``vllmbench.store.results_migrate``).
    """
    from vllmbench.store.results_migrate import migrate

    with translate("creating indexes"):
        db[DEAD_LETTERS].create_index([("time", -1), ("_id", -1)], name="time_id")
    migrate(db, ResultsStore.of(db))


def raw_id(raw: RawInput) -> str:
    """Same content, same id: a raw result posted twice is stored once."""
    canonical = json.dumps(raw.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def content_id(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()[:32]


class _StdBatch:
    """A standardized batch, prepared outside the commit (JSON text, hashes, entries).

    Takes records as JSON-mode dicts (``model_dump(mode="json")``), so that records of
    the first layout are moved as they were stored, without validating them again.
    """

    def __init__(self, records: list[dict[str, Any]], raw_key: str | None) -> None:
        keys = [f"{r['run']['run_id']}#{r['run'].get('stage', 0)}" for r in records]
        dupes = sorted({k for k in keys if keys.count(k) > 1}) if len(set(keys)) != len(keys) else []
        if dupes:
            raise Conflict(f"the batch holds the same run id and stage twice: {', '.join(dupes[:5])}")
        self.keys = keys
        self.raw_key = raw_key
        self.items = []
        for record, key in zip(records, keys):
            text = json.dumps(record, sort_keys=True, separators=(",", ":"))
            run, scenario = record["run"], record["scenario"]
            attrs = {"project": run.get("project"), "model": scenario.get("model"),
                     "harness": scenario["harness"]["name"], "tags": record.get("tags") or []}
            started = dt.datetime.fromisoformat(run["started_at"])
            self.items.append((run["run_id"], int(run.get("stage", 0)), key, content_id(text), text,
                               L.to_ms(started), attrs))

    def check(self, change: Change) -> list[int]:
        """Indexes of the records to store; raises Conflict (nothing staged) on other content."""
        new, clashing = [], []
        for i, (run_id, stage, key, rid, _, _, _) in enumerate(self.items):
            stored = change.get(L.STD_KEY, [run_id, stage])
            if stored is None:
                new.append(i)
            elif stored[0] != rid:
                clashing.append(key)
        if clashing:
            raise Conflict("records with these run ids and stages are stored already with other content: "
                           + ", ".join(sorted(clashing)[:5]) + " (post a new run id, or the same content again)")
        return new

    def stage(self, change: Change, new: list[int]) -> dict[str, Any]:
        for i in new:
            run_id, stage, key, rid, text, t, attrs = self.items[i]
            change.insert(L.RECORDS, {"_id": rid, "key": key, "raw_id": self.raw_key, "json": text})
            value = [rid, *L.entry_attrs(attrs)]
            for name in L.trees_of(L.STD, attrs):
                change.put(name, [t, key], value)
            change.put(L.STD_KEY, [run_id, stage], [rid, t, *L.entry_attrs(attrs)])
        return {"stored": len(new), "unchanged": len(self.keys) - len(new), "ids": self.keys}


class ResultsStore:
    """One per database and process (``ResultsStore.of(db)``): it holds the node cache and the committer."""

    _instances: dict[tuple[int, str], "ResultsStore"] = {}
    _instances_lock = threading.Lock()

    def __init__(self, db: Any) -> None:
        self.db = db
        self.forest = Forest(db, L.PREFIX)
        self.committer = GroupCommitter(self.forest)
        self.records = db[L.RECORDS]
        self.raw = db[L.RAW]
        self.raw_data = db[L.RAW_DATA]
        self.samples = db[L.SAMPLES]

    @classmethod
    def of(cls, db: Any) -> "ResultsStore":
        key = (id(db.client), db.name)
        with cls._instances_lock:
            store = cls._instances.get(key)
            if store is None or store.db.client is not db.client:
                if len(cls._instances) > 64:
                    cls._instances.clear()
                store = cls._instances[key] = cls(db)
            return store

    def commit(self, op: Callable[[Change], Any]) -> Any:
        return self.committer.run(op)

    # -- writing -------------------------------------------------------------------
    def insert_standardized(self, records: list[StandardizedRecord] | list[dict[str, Any]], *,
                            raw_id: str | None = None) -> dict[str, Any]:
        """Store a batch all or nothing; records already stored with the same content are unchanged.

        A record is identified by run id and stage; one stored with other content is a
        409 naming it, and nothing of the batch is written.
        """
        return self.commit(self.standardized_op(records, raw_id=raw_id))

    @staticmethod
    def standardized_op(records: list[StandardizedRecord] | list[dict[str, Any]], *,
                        raw_id: str | None = None) -> Callable[[Change], dict[str, Any]]:
        dicts = [r.model_dump(mode="json") if isinstance(r, StandardizedRecord) else r for r in records]
        batch = _StdBatch(dicts, raw_id)
        return lambda change: batch.stage(change, batch.check(change))

    def insert_raw(self, raw: RawInput, records: list[StandardizedRecord] | None = None) -> dict[str, Any]:
        """Store ``raw`` and the records standardized from it, together or not at all.

        Returns ``{"id", "run_id", "created", "standardized"}``; the same raw result again
        is not created twice (its id is a hash of its content).
        """
        return self.commit(self.raw_op(raw, records))

    @staticmethod
    def raw_op(raw: RawInput, records: list[StandardizedRecord] | None = None, *, key: str | None = None,
               ingested_at: dt.datetime | None = None) -> Callable[[Change], dict[str, Any]]:
        key = key or raw_id(raw)
        data_json = json.dumps(raw.data, separators=(",", ":"))
        ingested = as_utc(ingested_at) if ingested_at else _now()
        time = as_utc(raw.started_at) if raw.started_at else ingested
        meta = {"_id": key, "run_id": raw.run_id, "project": raw.project, "model": raw.model,
                "harness": raw.harness.name, "harness_version": raw.harness.version, "tags": raw.tags,
                "config_commit": raw.config_commit, "started_at": raw.started_at, "ended_at": raw.ended_at,
                "time": time, "ingested_at": ingested, "size_bytes": len(data_json)}
        attrs = {"project": raw.project, "model": raw.model, "harness": raw.harness.name, "tags": raw.tags}
        batch = _StdBatch([r.model_dump(mode="json") for r in records], key) if records else None
        t, t_in = L.to_ms(time), L.to_ms(ingested)

        def op(change: Change) -> dict[str, Any]:
            new = batch.check(change) if batch else []
            created = change.get(L.RAW_ID, [key]) is None
            if created:
                change.insert(L.RAW, meta)
                change.insert(L.RAW_DATA, {"_id": key, "data_json": data_json})
                for name in L.trees_of(L.RAW_TIME, attrs):
                    change.put(name, [t, key], [raw.run_id, *L.entry_attrs(attrs)])
                change.put(L.RAW_RUN, [raw.run_id, t_in, key], t)
                change.put(L.RAW_ID, [key], [raw.run_id, t, t_in])
            standardized = batch.stage(change, new) if batch else None
            return {"id": key, "run_id": raw.run_id, "created": created, "standardized": standardized}

        return op

    # -- reading -------------------------------------------------------------------
    def list_standardized(self, query: ResultQuery) -> dict[str, Any]:
        def read(snap: Snapshot) -> dict[str, Any]:
            if query.run_id:
                entries = [([v[1], f"{k[0]}#{k[1]}"], [v[0], *v[2:]])
                           for k, v in _run_entries(snap, L.STD_KEY, query.run_id)]
                found = tree_page(None, query, entries=entries)
            else:
                found = tree_page(snap, query, base=L.STD)
            docs = self._fetch(self.records, [value[0] for _, value in found["entries"]], "standardized results")
            return {"items": [json.loads(docs[v[0]]["json"]) for _, v in found["entries"]],
                    "count": len(found["entries"]), "next_cursor": found["next_cursor"]}

        return self.forest.read(read)

    def list_raw(self, query: RawQuery) -> dict[str, Any]:
        def read(snap: Snapshot) -> dict[str, Any]:
            if query.run_id:
                entries = [([v[1], k[2]], [query.run_id, *v[2:]]) for k, v in self._raw_run(snap, query.run_id)]
                found = tree_page(None, query, entries=entries)
            else:
                found = tree_page(snap, query, base=L.RAW_TIME)
            ids = [key[1] for key, _ in found["entries"]]
            return {"items": self._raw_docs(ids, with_data=query.include_data),
                    "count": len(ids), "next_cursor": found["next_cursor"]}

        return self.forest.read(read)

    def get_standardized(self, key: str) -> dict[str, Any]:
        """One record by the id POST /standardized_output answered (``run_id#stage``)."""
        parsed = L.parse_key(key)
        stored = self.forest.read(lambda snap: snap.get(L.STD_KEY, list(parsed))) if parsed else None
        if stored is None:
            raise NotFound(f"no standardized record {key!r} (ids are run_id#stage, as POST /standardized_output answers)")
        doc = self._fetch(self.records, [stored[0]], "standardized results")[stored[0]]
        return json.loads(doc["json"])

    def get_raw(self, key: str) -> dict[str, Any]:
        """One raw result by the id POST /raw_input answered."""
        if self.forest.read(lambda snap: snap.get(L.RAW_ID, [key])) is None:
            raise NotFound(f"no raw result {key!r} (ids are what POST /raw_input answers)")
        return self._raw_docs([key], with_data=True)[0]

    def records_of_run(self, run_id: str) -> list[StandardizedRecord]:
        return self.forest.read(lambda snap: self._records_of_run(snap, run_id))

    def _records_of_run(self, snap: Snapshot, run_id: str) -> list[StandardizedRecord]:
        rids = [value[0] for _, value in _run_entries(snap, L.STD_KEY, run_id)]
        docs = self._fetch(self.records, rids, "standardized results")
        return [StandardizedRecord.model_validate_json(docs[rid]["json"]) for rid in rids]

    def raw_of_run(self, run_id: str) -> list[dict[str, Any]]:
        return self.forest.read(lambda snap: self._raw_docs([k[2] for k, _ in self._raw_run(snap, run_id)]))

    def run(self, run_id: str) -> dict[str, Any]:
        def read(snap: Snapshot) -> dict[str, Any]:
            standardized = self._records_of_run(snap, run_id)
            raw = self._raw_docs([k[2] for k, _ in self._raw_run(snap, run_id)])
            if not standardized and not raw:
                raise NotFound(f"no results for run {run_id!r}")
            return {"run_id": run_id, "raw": raw, "standardized": [r.model_dump(mode="json") for r in standardized]}

        return self.forest.read(read)

    @staticmethod
    def _raw_run(snap: Snapshot, run_id: str) -> list[tuple[list[Any], Any]]:
        """[run_id, ingested_ms, raw id] -> time_ms, oldest first; as ([.., .., id], [run_id?, time])."""
        out = []
        for key, time_ms in snap.scan(L.RAW_RUN, [run_id]):
            if key[0] != run_id:
                break
            raw_entry = snap.get(L.RAW_TIME, [time_ms, key[2]])
            out.append((key, [run_id, time_ms, *(raw_entry[1:] if raw_entry else [None, None, None, []])]))
        return out

    def _raw_docs(self, ids: list[str], *, with_data: bool = True) -> list[dict[str, Any]]:
        metas = self._fetch(self.raw, ids, "raw results")
        data = self._fetch(self.raw_data, ids, "raw results") if with_data else {}
        return [_raw_out(metas[i], data.get(i)) for i in ids]

    @staticmethod
    def _fetch(collection: Any, ids: list[str], what: str) -> dict[str, dict[str, Any]]:
        """Documents by id in one round trip; every id must be there (a commit wrote it first)."""
        if not ids:
            return {}
        unique = list(dict.fromkeys(ids))
        with translate(f"reading {what}"):
            docs = {d["_id"]: d for d in collection.find({"_id": {"$in": unique}})}
        missing = [i for i in unique if i not in docs]
        if missing:
            raise RuntimeError(f"the results index names {len(missing)} {what} that are not stored, e.g. {missing[0]}")
        return docs


def _run_entries(snap: Snapshot, tree_name: str, run_id: str) -> list[tuple[list[Any], Any]]:
    out = []
    for key, value in snap.scan(tree_name, [run_id]):
        if key[0] != run_id:
            break
        out.append((key, value))
    return out


def _raw_out(meta: dict[str, Any], data: dict[str, Any] | None) -> dict[str, Any]:
    out = {
        "id": meta["_id"], "run_id": meta["run_id"], "project": meta.get("project"), "model": meta.get("model"),
        "harness": {"name": meta["harness"], "version": meta.get("harness_version")}, "tags": meta.get("tags", []),
        "config_commit": meta.get("config_commit"),
        "started_at": meta.get("started_at"), "ended_at": meta.get("ended_at"), "ingested_at": meta.get("ingested_at"),
        "size_bytes": meta.get("size_bytes"),
    }
    if data is not None:
        out["data"] = json.loads(data["data_json"])
    return out
