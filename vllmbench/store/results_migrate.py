"""Results stored in the first layout (``raw_inputs``, ``standardized_outputs``) move to the trees once.

The first layout kept one document per raw result and per record, found by field
filters. On start the results function copies every such document into the current
layout (docs/results.md), keeping its id (so ``GET /raw_input/{id}`` answers for ids
given out before) and its ingest time, then records that the move is done. The copy
is idempotent: an interrupted move is finished by the next start, and a record
already copied is recognised as unchanged. The old collections are left in place.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import TYPE_CHECKING, Any

from vllmbench.errors import Conflict
from vllmbench.models.results import Harness, RawInput, StandardizedRecord
from vllmbench.store.mongo import translate

if TYPE_CHECKING:
    from vllmbench.store.results import ResultsStore

log = logging.getLogger("vllmbench.store.results")

OLD_RAW = "raw_inputs"
OLD_STANDARDIZED = "standardized_outputs"
MARKER = "migrated-v1"
BATCH = 500


def migrate(db: Any, store: ResultsStore) -> dict[str, int]:
    """Copy the first layout's results into ``store``; returns what was copied (nothing when done before)."""
    roots = store.forest.roots
    with translate("reading the migration state"):
        if roots.find_one({"_id": MARKER}) is not None:
            return {"raw": 0, "standardized": 0}
        old_raw, old_std = db[OLD_RAW], db[OLD_STANDARDIZED]
        has_old = old_raw.find_one({}, {"_id": 1}) is not None or old_std.find_one({}, {"_id": 1}) is not None
    copied = {"raw": 0, "standardized": 0}
    if has_old:
        copied["raw"] = _copy_raw(old_raw, store)
        copied["standardized"] = _copy_standardized(old_std, store)
        log.info("moved results from the first layout", extra={"copied": copied})
    with translate("recording the migration"):
        roots.replace_one({"_id": MARKER}, {"_id": MARKER, "at": dt.datetime.now(dt.timezone.utc), **copied},
                          upsert=True)
    return copied


def _copy_raw(collection: Any, store: ResultsStore) -> int:
    ops = []
    count = 0
    with translate("reading results of the first layout"):
        for doc in collection.find({}, batch_size=100):
            # Built without validating again: the output was accepted as-is when it was posted.
            raw = RawInput.model_construct(
                run_id=doc["run_id"], project=doc.get("project"), model=doc.get("model"),
                harness=Harness.model_construct(name=doc["harness"], version=doc.get("harness_version")),
                tags=doc.get("tags") or [], config_commit=doc.get("config_commit"),
                started_at=doc.get("started_at"), ended_at=doc.get("ended_at"), data=json.loads(doc["data_json"]))
            ops.append(store.raw_op(raw, key=doc["_id"], ingested_at=doc.get("ingested_at")))
            if len(ops) >= 100:
                count += _commit(store, ops)
                ops = []
    return count + _commit(store, ops)


def _copy_standardized(collection: Any, store: ResultsStore) -> int:
    """Records are validated by today's model; one that no longer passes stays in the old
    collection, named in a warning, rather than stranding the rest."""
    from pydantic import ValidationError

    ops = []
    count = 0
    with translate("reading results of the first layout"):
        for doc in collection.find({}, batch_size=BATCH):
            try:
                record = StandardizedRecord.model_validate_json(doc["record_json"])
            except ValidationError as exc:
                log.warning("record %s of the first layout was not moved: %s", doc["_id"], exc.errors()[0]["msg"])
                continue
            ops.append(store.standardized_op([record], raw_id=doc.get("raw_id")))
            if len(ops) >= BATCH:
                count += _commit(store, ops)
                ops = []
    return count + _commit(store, ops)


def _commit(store: ResultsStore, ops: list[Any]) -> int:
    def run_all(change: Any) -> int:
        copied = 0
        for op in ops:
            try:
                op(change)  # checks before it stages: a refused one leaves nothing behind
                copied += 1
            except Conflict as exc:
                log.warning("a result of the first layout was not moved: %s", exc.message)
        return copied

    return store.commit(run_all) if ops else 0
