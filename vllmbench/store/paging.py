"""Cursor pages: over a MongoDB collection sorted by (time, _id), and over the results trees.

Both give the same cursors (``vllmbench.query``): the sort key and id of the last item
seen, so a page after a cursor is the same whatever was inserted since, and a cursor
given out by one layout keeps working in the other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from vllmbench.query import PageQuery, ResultQuery, decode_cursor, encode_cursor, sort_spec
from vllmbench.store import results_layout as L
from vllmbench.store.mongo import translate

if TYPE_CHECKING:
    from vllmbench.store.forest import Snapshot


def page(collection: Any, filter_: dict[str, Any], query: PageQuery,
         shape: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """One page: ``items`` shaped, ``count``, and ``next_cursor`` (None on the last page)."""
    with translate(f"listing {collection.name}"):
        docs = list(collection.find(filter_).sort(sort_spec(query)).limit(query.limit + 1))
    more = len(docs) > query.limit
    docs = docs[: query.limit]
    next_cursor = encode_cursor(docs[-1]["time"], docs[-1]["_id"]) if more and docs else None
    return {"items": [shape(d) for d in docs], "count": len(docs), "next_cursor": next_cursor}


def pick_tree(snap: Snapshot, query: ResultQuery, base: str) -> tuple[str, int]:
    """The smallest tree that holds every match of the query's filters: (name, entries)."""
    candidates = [L.facet_tree(base, f, getattr(query, f)) for f in L.FACETS if getattr(query, f) is not None]
    candidates += [L.facet_tree(base, "tag", t) for t in query.tag]
    if not candidates:
        return base, snap.tree(base)[1]
    sized = [(snap.tree(name)[1], name) for name in candidates]
    count, name = min(sized)
    return name, count


def tree_page(snap: Snapshot | None, query: ResultQuery, *, base: str | None = None,
              entries: Iterable[tuple[list[Any], list[Any]]] | None = None) -> dict[str, Any]:
    """One page of ``([time_ms, id], [x, project, model, harness, tags])`` entries.

    From the smallest matching tree of ``snap`` (``base``), or from ``entries`` given in
    memory (the few records of one run). Returns ``{"entries", "next_cursor"}``.
    """
    reverse = query.sort == "-time"
    since = L.to_ms(query.since) if query.since else None
    until = L.to_ms(query.until) if query.until else None
    cursor = None
    if query.cursor:
        time, last_id = decode_cursor(query.cursor)
        cursor = [L.to_ms(time), last_id]
    wanted = {"project": query.project, "model": query.model, "harness": query.harness, "tag": query.tag}
    # One filter is the tree itself: its entries need no check.
    check = sum(getattr(query, f) is not None for f in L.FACETS) + len(query.tag) > (0 if entries is not None else 1)
    if entries is not None:
        ordered = sorted(entries, key=lambda e: e[0], reverse=reverse)
        if cursor is not None:
            ordered = [e for e in ordered if (e[0] < cursor if reverse else e[0] > cursor)]
        source: Iterable[tuple[list[Any], list[Any]]] = ordered
    else:
        assert snap is not None and base is not None
        name, count = pick_tree(snap, query, base)
        if count == 0:
            return {"entries": [], "next_cursor": None}
        start, inclusive = None, True
        if cursor is not None:
            start, inclusive = cursor, False
        elif reverse and until is not None:
            start = [until]
        elif not reverse and since is not None:
            start = [since]
        source = snap.scan(name, start, reverse=reverse, inclusive=inclusive)
    out: list[tuple[list[Any], list[Any]]] = []
    for key, value in source:
        time_ms = key[0]
        if (since is not None and time_ms < since) or (until is not None and time_ms >= until):
            if (reverse and since is not None and time_ms < since) or (not reverse and until is not None
                                                                       and time_ms >= until):
                break
            continue
        if check and not L.matches(value[1:5], wanted):
            continue
        out.append((key, value))
        if len(out) > query.limit:
            break
    more = len(out) > query.limit
    out = out[: query.limit]
    next_cursor = encode_cursor(L.from_ms(out[-1][0][0]), out[-1][0][1]) if more and out else None
    return {"entries": out, "next_cursor": next_cursor}
