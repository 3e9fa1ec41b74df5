"""The body of POST /standardized_output: validated, and each record prepared for the commit.

A big batch (``OFFLOAD_BYTES`` and more) is parsed, validated, written as canonical JSON,
hashed and compressed in a helper process (``vllmbench.web.offload``), so that the
function's own process, whose Python runs under one GIL, commits one batch while the
next is being validated on the other core (docs/results.md, "Ingest"). The answers are
the same either way: a body the helper refuses is parsed again here, which raises the
400 or 422 the route gives any bad body, with its details.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vllmbench.settings import Settings
    from vllmbench.web.offload import Offload

MAX_BATCH = 1000
OFFLOAD_BYTES = 128 * 1024  # about 50 records: smaller batches cost less than sending them over
PRELOAD = ("functions.results.ingest", "vllmbench.models.results", "vllmbench.store.results", "vllmbench.web.bodies")

_offload: Offload | None = None
_offload_lock = threading.Lock()


class Prepared(list):  # type: ignore[type-arg]
    """``vllmbench.store.results.prepare_records`` of the body's records, in order."""


def parse_batch(data: bytes, settings: Settings) -> Prepared:
    """The route's ``parse``: one record or an array of them, prepared (or the route's 400/422)."""
    if len(data) >= OFFLOAD_BYTES:
        from vllmbench.web.offload import NOT_READY

        done = _pool(settings.ingest_processes).run(prepare, data, settings.max_json_depth)
        if done is not NOT_READY and done is not None:
            return Prepared(done)
    return Prepared(_prepare_here(data, settings.max_json_depth))


def prepare(data: bytes, max_depth: int) -> list[tuple[Any, ...]] | None:
    """In a helper: the prepared records, or None for a body to refuse (the caller says why)."""
    from vllmbench.errors import VllmbenchError

    try:
        return _prepare_here(data, max_depth)
    except VllmbenchError:
        return None


def _prepare_here(data: bytes, max_depth: int) -> list[tuple[Any, ...]]:
    from vllmbench.errors import UserError
    from vllmbench.models.results import RecordOrBatch
    from vllmbench.store.results import prepare_records
    from vllmbench.web.bodies import parse_body

    body = parse_body(RecordOrBatch, data, max_depth=max_depth)
    records = body if isinstance(body, list) else [body]
    if not records:
        raise UserError("the batch is empty; send one record or a non-empty array of records")
    if len(records) > MAX_BATCH:
        raise UserError(f"the batch holds {len(records)} records; send at most {MAX_BATCH} per request")
    return prepare_records(records)


def _pool(processes: int) -> Offload:
    global _offload
    with _offload_lock:
        if _offload is None:
            from vllmbench.web.offload import Offload

            _offload = Offload(processes, PRELOAD)
        return _offload
