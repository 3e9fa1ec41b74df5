"""Per-request samples kept with their raw result: VBS1 chunks, one document each.

A chunk is stored under the hash of its bytes and named in the ``samples`` tree under
``[raw id, chunk index]`` by the commit that attaches it, so a chunk is there for
readers whole or not at all, and uploading the same chunk again changes nothing.
A run's samples are the chunks of its raw results, in the order the raw results
arrived; a result whose chunks have not all arrived says so (``complete``).
"""

from __future__ import annotations

import base64
import json
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from vllmbench import samples as vbs
from vllmbench.errors import Conflict, NotFound, UserError
from vllmbench.store import results_layout as L
from vllmbench.store.forest import Change, Snapshot
from vllmbench.store.mongo import translate

if TYPE_CHECKING:
    from vllmbench.store.results import ResultsStore

MAX_CHUNK_BYTES = 16 << 20


class Chunks:
    """VBS1 chunks to attach to the raw result ``raw_key``, checked before anything is staged."""

    def __init__(self, raw_key: str, chunks: list[bytes]) -> None:
        from vllmbench.store.results import content_id

        self.raw_key = raw_key
        self.prepared = []
        for data in chunks:
            try:
                header = vbs.read_header(data)
            except vbs.SamplesError as exc:
                raise UserError(f"samples: {exc}") from exc
            self.prepared.append((header, content_id(data), data))

    def check(self, change: Change, *, raw_staged: bool = False) -> list[dict[str, Any]]:
        """What attaching would do, per chunk; raises (nothing staged) when it cannot."""
        if not raw_staged and change.get(L.RAW_ID, [self.raw_key]) is None:
            raise NotFound(f"no raw result {self.raw_key!r} to attach samples to; POST /raw_input first")
        outcome = []
        for header, cid, _ in self.prepared:
            stored = change.get(L.RUN_SAMPLES, [self.raw_key, header["chunk"]])
            if stored is not None and stored[0] != cid:
                raise Conflict(f"chunk {header['chunk']} of the samples of {self.raw_key} is stored already with "
                               "other content; samples are kept as first uploaded")
            outcome.append({"chunk": header["chunk"], "requests": header["count"], "created": stored is None})
        return outcome

    def stage(self, change: Change, outcome: list[dict[str, Any]]) -> dict[str, Any]:
        from bson import Binary

        for (header, cid, data), result in zip(self.prepared, outcome):
            if result["created"]:
                change.insert(L.SAMPLES, {"_id": cid, "raw_id": self.raw_key, "index": header["chunk"],
                                          "data": Binary(data)})
                change.put(L.RUN_SAMPLES, [self.raw_key, header["chunk"]],
                           [cid, header["count"], header["first"], header["chunks"], len(data)])
        return {"raw_id": self.raw_key, "chunks": outcome}

    def op(self, change: Change) -> dict[str, Any]:
        return self.stage(change, self.check(change))


class _ChunkCache:
    """Chunks' bytes by id, up to ``max_bytes``: chunks never change, so a hit is never stale."""

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self._chunks: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, chunk_id: str) -> bytes | None:
        with self._lock:
            data = self._chunks.get(chunk_id)
            if data is not None:
                self._chunks.move_to_end(chunk_id)
            return data

    def put(self, chunk_id: str, data: bytes) -> None:
        with self._lock:
            if chunk_id in self._chunks:
                return
            self._chunks[chunk_id] = data
            self._size += len(data)
            while self._size > self.max_bytes and len(self._chunks) > 1:
                _, dropped = self._chunks.popitem(last=False)
                self._size -= len(dropped)


class RunSamples:
    """The samples of one run as a list of chunks."""

    cache = _ChunkCache()

    def __init__(self, store: ResultsStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.chunks, self.complete = store.forest.read(self._list)
        if not self.chunks:
            raise NotFound(f"run {run_id!r} has no per-request samples (a raw result that holds them, or "
                           "POST /raw_input/{id}/requests, brings them)")
        self.total = sum(c["requests"] for c in self.chunks)

    def _list(self, snap: Snapshot) -> tuple[list[dict[str, Any]], bool]:
        chunks, complete = [], True
        for key, _ in _prefix(snap, L.RAW_RUN, [self.run_id]):
            raw_key = key[2]
            found = [v for _, v in _prefix(snap, L.RUN_SAMPLES, [raw_key])]
            if found and len(found) != found[0][3]:
                complete = False
            chunks += [{"raw_id": raw_key, "id": v[0], "requests": v[1]} for v in found]
        return chunks, complete

    _decoded: OrderedDict[str, vbs.Samples] = OrderedDict()  # the last chunks paged through, decoded
    _decoded_lock = threading.Lock()

    def decoded(self, chunk: dict[str, Any]) -> vbs.Samples:
        with self._decoded_lock:
            found = self._decoded.get(chunk["id"])
        if found is None:
            found = vbs.decode(self.raw_bytes([chunk])[0])[1]
            with self._decoded_lock:
                self._decoded[chunk["id"]] = found
                while len(self._decoded) > 2:
                    self._decoded.popitem(last=False)
        return found

    def raw_bytes(self, chunks: list[dict[str, Any]]) -> list[bytes]:
        """The chunks' bytes: from the cache, the rest in one round trip."""
        found = {c["id"]: self.cache.get(c["id"]) for c in chunks}
        missing = [i for i, data in found.items() if data is None]
        if missing:
            with translate("reading per-request samples"):
                for doc in self.store.samples.find({"_id": {"$in": missing}}):
                    found[doc["_id"]] = bytes(doc["data"])
                    self.cache.put(doc["_id"], found[doc["_id"]])
        return [found[c["id"]] for c in chunks]

    def page(self, cursor: str | None, limit: int, stage: int | None) -> dict[str, Any]:
        position = _decode_cursor(cursor) if cursor else 0
        rows: list[dict[str, Any]] = []
        at = 0
        for chunk in self.chunks:
            if at + chunk["requests"] <= position:
                at += chunk["requests"]
                continue
            part = self.decoded(chunk)
            begin = max(0, position - at)
            for i, row in enumerate(part.slice(begin, begin + limit if stage is None else len(part)).rows(),
                                    start=begin):
                if stage is None or row["stage"] == stage:
                    rows.append(row)
                if len(rows) == limit:
                    nxt = at + i + 1
                    more = nxt < self.total
                    return {"items": rows, "count": len(rows), "total": self.total, "complete": self.complete,
                            "next_cursor": _encode_cursor(nxt) if more else None}
            at += chunk["requests"]
        return {"items": rows, "count": len(rows), "total": self.total, "complete": self.complete, "next_cursor": None}

    def rows(self, stage: int | None = None):  # noqa: ANN201 - a generator of rows
        """Every request as a row (``Samples.rows``), chunk by chunk."""
        for chunk in self.chunks:
            for row in self.decoded(chunk).rows():
                if stage is None or row["stage"] == stage:
                    yield row

    def jsonl(self, stage: int | None):  # noqa: ANN201 - a generator of lines
        for row in self.rows(stage):
            yield json.dumps(row, separators=(",", ":")) + "\n"

    def percentiles(self, metric: str, ps: list[float], *, stage: int | None, everything: bool) -> dict[str, Any]:
        names = vbs.COLUMNS_FOR.get(metric)
        parts = [vbs.decode(data, names)[1] for data in self.raw_bytes(self.chunks)]
        merged = vbs.concat(parts)
        if stage is not None:
            keep = merged.columns["stage"] == stage
            merged = _select(merged, keep)
        try:
            values = vbs.metric_values(merged, metric, measured_only=not everything)
            figures = vbs.percentiles(values, ps)
        except vbs.SamplesError as exc:
            raise UserError(f"metric {metric}: {exc}") from exc
        units = "tokens" if metric.endswith("_tokens") else ("ms/token" if metric in ("tpot", "ntpot") else "ms")
        return {"run_id": self.run_id, "metric": metric, "units": units, "stage": stage, "count": int(values.size),
                "measured_only": not everything, "complete": self.complete,
                "percentiles": {_label(p): v for p, v in zip(ps, figures)}}


def _select(samples: vbs.Samples, keep: Any) -> vbs.Samples:
    import numpy as np

    cols = {name: col[keep] for name, col in samples.columns.items() if name != "itl"}
    cols["itl"] = samples.columns["itl"][np.repeat(keep, samples.columns["itl_count"])]
    return vbs.Samples(cols, samples.outcomes, samples.tokens_from, samples.itl_unit_us)


def _label(p: float) -> str:
    return f"p{p:g}"


def _prefix(snap: Snapshot, tree_name: str, prefix: list[Any]) -> list[tuple[list[Any], Any]]:
    out = []
    for key, value in snap.scan(tree_name, prefix):
        if key[: len(prefix)] != prefix:
            break
        out.append((key, value))
    return out


def _encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(json.dumps(["req", position]).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        tag, position = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if tag != "req" or not isinstance(position, int) or position < 0:
            raise ValueError(cursor)
        return position
    except (ValueError, TypeError) as exc:
        raise UserError("cursor is not one this route gave out; use next_cursor from the previous page") from exc
