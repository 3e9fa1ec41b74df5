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
from vllmbench.store.nodes import LruCache, Packed
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


_TIME_DIGITS = 12  # a record id: "t", the start time in ms in this many hex digits, the content hash


def record_id(time_ms: int, text: str) -> str:
    """A record's ``_id``: its start time, then the hash of its content (so the same content has
    the same id). Ids of records that arrive in time order come in order, and the database's
    ``_id`` index takes them at its end: at 1M records FerretDB spent twice the CPU on an insert
    of a random id (docs/results.md, "Ingest"). Records stored before this had the hash alone."""
    return f"t{max(time_ms, 0):0{_TIME_DIGITS}x}{content_id(text)}"


def same_record(stored_id: str, rid: str) -> bool:
    """Whether a stored record id names the content of ``rid`` (either kind of id, see record_id)."""
    return stored_id == rid or stored_id == rid[1 + _TIME_DIGITS:]


def prepare_records(records: list[StandardizedRecord], texts: list[str] | None = None) -> list[tuple[Any, ...]]:
    """What a commit needs of each record, computed outside it (in another process, for a big
    batch: ``functions/results/ingest.py``): ``(run_id, stage, key, record id, compressed record,
    time_ms, [project, model, harness, tags])``. ``texts``: the records' stored JSON (the
    migration keeps it byte for byte)."""
    out = []
    for i, record in enumerate(records):
        run, scenario = record.run, record.scenario
        key = f"{run.run_id}#{run.stage}"  # StandardizedRecord.key()
        text = texts[i] if texts else record.model_dump_json()
        t = L.to_ms(run.started_at)
        blob = Packed(text=text).blob(L.RECORD_DICTIONARY)
        out.append((run.run_id, run.stage, key, record_id(t, text), blob, t,
                    [run.project, scenario.model, scenario.harness.name, list(record.tags)]))
    return out


class _StdBatch:
    """A standardized batch, prepared outside the commit (``prepare_records``)."""

    def __init__(self, prepared: list[tuple[Any, ...]], raw_key: str | None) -> None:
        keys = [item[2] for item in prepared]
        if len(set(keys)) != len(keys):
            dupes = sorted({k for k in keys if keys.count(k) > 1})
            raise Conflict(f"the batch holds the same run id and stage twice: {', '.join(dupes[:5])}")
        self.keys = keys
        self.raw_key = raw_key
        # Compressed before the commit: a batch is prepared while another one's commit waits on
        # the database (docs/results.md, "Ingest").
        self.items = prepared

    def check(self, change: Change) -> list[int]:
        """Indexes of the records to store; raises Conflict (nothing staged) on other content."""
        stored_ids = change.get_many(L.STD_KEY, [[run_id, stage] for run_id, stage, *_ in self.items])
        new, clashing = [], []
        for i, (run_id, stage, key, rid, *_) in enumerate(self.items):
            stored = stored_ids[(run_id, stage)]
            if stored is None:
                new.append(i)
            elif not same_record(stored[0], rid):
                clashing.append(key)
        if clashing:
            raise Conflict("records with these run ids and stages are stored already with other content: "
                           + ", ".join(sorted(clashing)[:5]) + " (post a new run id, or the same content again)")
        return new

    def stage(self, change: Change, new: list[int]) -> dict[str, Any]:
        for i in new:
            run_id, stage, key, rid, blob, t, attrs = self.items[i]
            project, model, harness, tags = attrs
            # The record once, by its id; every tree's entry names it (docs/results.md, "Records").
            change.insert(L.RECORDS, {"_id": rid, "b": blob})
            change.put_all(L.std_trees(project, model, harness, tuple(tags)), (t, key),
                           [rid, project, model, harness, tags])
            change.put(L.STD_KEY, [run_id, stage], [rid, t, project, model, harness, tags, self.raw_key])
        return {"stored": len(new), "unchanged": len(self.keys) - len(new), "ids": self.keys}


class ResultsStore:
    """One per database and process (``ResultsStore.of(db)``): it holds the node cache and the committer."""

    _instances: dict[tuple[int, str], "ResultsStore"] = {}
    _instances_lock = threading.Lock()

    def __init__(self, db: Any) -> None:
        self.db = db
        self.forest = Forest(db, L.PREFIX, zdict=L.RECORD_DICTIONARY)
        self.committer = GroupCommitter(self.forest)
        self.records = db[L.RECORDS]
        # Records by id (content-addressed: a hit is never stale), for the pages of the facet
        # trees and the point reads: 16 MB holds about 25,000 compressed records.
        self.record_cache = LruCache(16 << 20)
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
    def insert_standardized(self, records: list[StandardizedRecord], *, raw_id: str | None = None) -> dict[str, Any]:
        """Store a batch all or nothing; records already stored with the same content are unchanged.

        A record is identified by run id and stage; one stored with other content is a
        409 naming it, and nothing of the batch is written.
        """
        return self.commit(self.standardized_op(records, raw_id=raw_id))

    def insert_prepared(self, prepared: list[tuple[Any, ...]]) -> dict[str, Any]:
        """``insert_standardized`` of records given as ``prepare_records`` made them."""
        batch = _StdBatch(prepared, None)
        return self.commit(lambda change: batch.stage(change, batch.check(change)))

    @staticmethod
    def standardized_op(records: list[StandardizedRecord], *, raw_id: str | None = None,
                        texts: list[str] | None = None) -> Callable[[Change], dict[str, Any]]:
        """The commit operation of a batch; ``texts`` keeps records' stored JSON (migration)."""
        batch = _StdBatch(prepare_records(records, texts), raw_id)
        return lambda change: batch.stage(change, batch.check(change))

    def insert_raw(self, raw: RawInput, records: list[StandardizedRecord] | None = None, *,
                   samples: Any = None) -> dict[str, Any]:
        """Store ``raw``, the records standardized from it and its per-request ``samples``
        (``vllmbench.samples.Samples``), together or not at all.

        Returns ``{"id", "run_id", "created", "standardized", "samples"}``; the same raw
        result again is not created twice (its id is a hash of its content).
        """
        return self.commit(self.raw_op(raw, records, samples=samples))

    def attach_samples(self, raw_key: str, chunks: list[bytes]) -> dict[str, Any]:
        """Attach VBS1 chunks to a stored raw result (``vllmbench.store.samples``)."""
        from vllmbench.store.samples import Chunks

        return self.commit(Chunks(raw_key, chunks).op)

    @staticmethod
    def raw_op(raw: RawInput, records: list[StandardizedRecord] | None = None, *, key: str | None = None,
               ingested_at: dt.datetime | None = None, samples: Any = None) -> Callable[[Change], dict[str, Any]]:
        key = key or raw_id(raw)
        attach = None
        if samples is not None and len(samples):
            from vllmbench.samples import encode_chunks
            from vllmbench.store.samples import Chunks

            attach = Chunks(key, encode_chunks(samples))
        data_json = json.dumps(raw.data, separators=(",", ":"))
        ingested = as_utc(ingested_at) if ingested_at else _now()
        time = as_utc(raw.started_at) if raw.started_at else ingested
        meta = {"id": key, "run_id": raw.run_id, "project": raw.project, "model": raw.model,
                "harness": {"name": raw.harness.name, "version": raw.harness.version}, "tags": list(raw.tags),
                "config_commit": raw.config_commit, "started_at": _iso(raw.started_at),
                "ended_at": _iso(raw.ended_at), "ingested_at": _iso(ingested), "size_bytes": len(data_json)}
        attrs = {"project": raw.project, "model": raw.model, "harness": raw.harness.name, "tags": raw.tags}
        value = [raw.run_id, *L.entry_attrs(attrs), meta]
        batch = _StdBatch(prepare_records(records), key) if records else None
        t, t_in = L.to_ms(time), L.to_ms(ingested)

        def op(change: Change) -> dict[str, Any]:
            new = batch.check(change) if batch else []
            chunks = attach.check(change, raw_staged=True) if attach else []
            created = change.get(L.RAW_ID, [key]) is None
            if created:
                change.insert(L.RAW_DATA, {"_id": key, "data_json": data_json})
                for name in L.trees_of(L.RAW_TIME, attrs):
                    change.put(name, [t, key], value)
                change.put(L.RAW_RUN, [raw.run_id, t_in, key], value)
                change.put(L.RAW_ID, [key], value)
            standardized = batch.stage(change, new) if batch else None
            if attach:
                attach.stage(change, chunks)
            return {"id": key, "run_id": raw.run_id, "created": created, "standardized": standardized,
                    "samples": sum(c["requests"] for c in chunks)}

        return op

    # -- reading -------------------------------------------------------------------
    def list_standardized(self, query: ResultQuery) -> dict[str, Any]:
        return json.loads(self.list_standardized_json(query))

    def list_standardized_json(self, query: ResultQuery) -> str:
        """The page as JSON text: the stored records are spliced in, never parsed and written again."""
        def read(snap: Snapshot) -> str:
            if query.run_id:
                found = tree_page(None, query, entries=self._run_entries_with_records(snap, query.run_id))
            else:
                found = tree_page(snap, query, base=L.STD)
            return _page_json(self._entry_texts(found["entries"]), found["next_cursor"])

        return self.forest.read(read)

    def _entry_texts(self, entries: list[tuple[list[Any], list[Any]]]) -> list[str]:
        """The records of listing entries: in the leaf (the time tree, and facet leaves written
        before ids replaced records there), else from ``results_records`` in one ``$in``."""
        missing = [value[0] for _, value in entries if len(value) < 6]
        blobs = self._fetch_records(missing) if missing else {}
        return [value[5].text if len(value) > 5 else Packed(blob=blobs[value[0]], zdict=L.RECORD_DICTIONARY).text
                for _, value in entries]

    def _run_entries_with_records(self, snap: Snapshot, run_id: str) -> list[tuple[list[Any], list[Any]]]:
        """A run's records as entries of the time tree: ([time_ms, key], [id, attrs..., Packed])."""
        hits = _run_stages(snap, [run_id])[run_id]
        blobs = self._fetch_records([value[0] for _, value in hits])
        return [([value[1], f"{run_id}#{stage}"], [*value[:1], *value[2:6],
                                                    Packed(blob=blobs[value[0]], zdict=L.RECORD_DICTIONARY)])
                for (_, stage), value in hits]

    def list_raw(self, query: RawQuery) -> dict[str, Any]:
        def read(snap: Snapshot) -> dict[str, Any]:
            if query.run_id:
                entries = [([_ms_of(v[5]), k[2]], v) for k, v in _run_entries(snap, L.RAW_RUN, query.run_id)]
                found = tree_page(None, query, entries=entries)
            else:
                found = tree_page(snap, query, base=L.RAW_TIME)
            metas = [value[5] for _, value in found["entries"]]
            return {"items": self._with_data(metas) if query.include_data else metas,
                    "count": len(metas), "next_cursor": found["next_cursor"]}

        return self.forest.read(read)

    def get_standardized(self, key: str) -> dict[str, Any]:
        return json.loads(self.get_standardized_json(key))

    def get_standardized_json(self, key: str) -> str:
        """One record (its stored JSON text) by the id POST /standardized_output answered (``run_id#stage``)."""
        parsed = L.parse_key(key)
        stored = self.forest.read(lambda snap: snap.get(L.STD_KEY, list(parsed))) if parsed else None
        if stored is None:
            raise NotFound(f"no standardized record {key!r} (ids are run_id#stage, as POST /standardized_output answers)")
        return Packed(blob=self._fetch_records([stored[0]])[stored[0]], zdict=L.RECORD_DICTIONARY).text

    def get_raw(self, key: str) -> dict[str, Any]:
        """One raw result, with its data, by the id POST /raw_input answered."""
        stored = self.forest.read(lambda snap: snap.get(L.RAW_ID, [key]))
        if stored is None:
            raise NotFound(f"no raw result {key!r} (ids are what POST /raw_input answers)")
        return self._with_data([stored[5]])[0]

    def records_of_run(self, run_id: str) -> list[StandardizedRecord]:
        return self.records_of_runs([run_id])[run_id]

    def records_of_runs(self, run_ids: list[str]) -> dict[str, list[StandardizedRecord]]:
        """Each run's records by stage, read together (one snapshot, a round trip per tree level)."""
        texts = self._record_texts(list(dict.fromkeys(run_ids)))
        return {run_id: [StandardizedRecord.model_validate_json(t) for t in found] for run_id, found in texts.items()}

    def _record_texts(self, run_ids: list[str], stages: dict[str, Any] | None = None) -> dict[str, list[str]]:
        if stages is None:
            stages = self.forest.read(lambda snap: _run_stages(snap, run_ids))
        rids = [value[0] for hits in stages.values() for _, value in hits]
        blobs = self._fetch_records(rids)
        return {run_id: [Packed(blob=blobs[value[0]], zdict=L.RECORD_DICTIONARY).text for _, value in hits]
                for run_id, hits in stages.items()}

    def _fetch_records(self, rids: list[str]) -> dict[str, bytes]:
        """Compressed records by id: from the cache, the rest in one ``$in``."""
        found: dict[str, bytes] = {}
        missing = []
        for rid in dict.fromkeys(rids):
            blob = self.record_cache.get(rid)
            if blob is None:
                missing.append(rid)
            else:
                found[rid] = blob
        if missing:
            with translate("reading standardized results"):
                for doc in self.records.find({"_id": {"$in": missing}}):
                    blob = found[doc["_id"]] = bytes(doc["b"])
                    self.record_cache.put_value(doc["_id"], blob, len(blob) + 100)
            if len(found) != len(set(rids)):
                raise RuntimeError("the results index names records that are not stored")
        return found

    def raw_of_run(self, run_id: str) -> list[dict[str, Any]]:
        entries = self.forest.read(lambda snap: _run_entries(snap, L.RAW_RUN, run_id))
        return self._with_data([value[5] for _, value in entries])

    def run(self, run_id: str) -> dict[str, Any]:
        return json.loads(self.run_json(run_id))

    def run_json(self, run_id: str) -> str:
        """A run's raw results (oldest first, with data) and standardized records (by stage), as JSON text."""
        stages, raw = self.forest.read(lambda snap: (_run_stages(snap, [run_id]), _run_entries(snap, L.RAW_RUN, run_id)))
        std = self._record_texts([run_id], stages)[run_id]
        if not std and not raw:
            raise NotFound(f"no results for run {run_id!r}")
        raws = self._data_json([value[5] for _, value in raw])
        return f'{{"run_id":{json.dumps(run_id)},"raw":[{",".join(raws)}],"standardized":[{",".join(std)}]}}'

    def _data_json(self, metas: list[dict[str, Any]]) -> list[str]:
        """Each raw result's metadata with its data spliced in, as JSON text."""
        if not metas:
            return []
        ids = list(dict.fromkeys(m["id"] for m in metas))
        with translate("reading raw results"):
            docs = {d["_id"]: d["data_json"] for d in self.raw_data.find({"_id": {"$in": ids}})}
        missing = [i for i in ids if i not in docs]
        if missing:
            raise RuntimeError(f"the results index names raw data that is not stored: {missing[0]}")
        return [json.dumps(meta, separators=(",", ":"))[:-1] + ',"data":' + docs[meta["id"]] + "}" for meta in metas]

    def _with_data(self, metas: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [json.loads(text) for text in self._data_json(metas)]


def _run_entries(snap: Snapshot, tree_name: str, run_id: str) -> list[tuple[list[Any], Any]]:
    out = []
    for key, value in snap.scan(tree_name, [run_id]):
        if key[0] != run_id:
            break
        out.append((key, value))
    return out


def _page_json(items: list[str], next_cursor: str | None) -> str:
    return f'{{"items":[{",".join(items)}],"count":{len(items)},"next_cursor":{json.dumps(next_cursor)}}}'


def _run_stages(snap: Snapshot, run_ids: list[str]) -> dict[str, list[tuple[list[Any], list[Any]]]]:
    """Each run's ``std:key`` entries, a round trip per tree level for all of them."""
    by_run = snap.get_many(L.STD_KEY, [[r] for r in run_ids], prefix=True)
    return {r: by_run[(r,)] if by_run[(r,)] is not None else _run_entries(snap, L.STD_KEY, r) for r in run_ids}


def _iso(value: dt.datetime | None) -> str | None:
    return as_utc(value).astimezone(dt.timezone.utc).isoformat() if value is not None else None


def _ms_of(meta: dict[str, Any]) -> int:
    """The listing time of a raw result: when its run started, else when it was ingested."""
    return L.to_ms(dt.datetime.fromisoformat(meta["started_at"] or meta["ingested_at"]))
