"""Cursor pages over a collection sorted by (time, _id)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vllmbench.query import PageQuery, encode_cursor, sort_spec
from vllmbench.store.mongo import translate


def page(collection: Any, filter_: dict[str, Any], query: PageQuery,
         shape: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """One page: ``items`` shaped, ``count``, and ``next_cursor`` (None on the last page)."""
    with translate(f"listing {collection.name}"):
        docs = list(collection.find(filter_).sort(sort_spec(query)).limit(query.limit + 1))
    more = len(docs) > query.limit
    docs = docs[: query.limit]
    next_cursor = encode_cursor(docs[-1]["time"], docs[-1]["_id"]) if more and docs else None
    return {"items": [shape(d) for d in docs], "count": len(docs), "next_cursor": next_cursor}
