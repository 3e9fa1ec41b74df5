"""Copy-on-write B+trees over immutable nodes, read and written by id only.

The results layout (docs/results.md) keeps every ordered index as such a tree: the
only database operations it needs are an insert and a read by ``_id``, which every
MongoDB-wire server serves from its ``_id`` index (FerretDB included, with the
patch in tools/ferretdb-patches). A change never edits a node: it writes new nodes
for the path it touched and a new root, so a reader holding an old root keeps a
consistent snapshot, and nothing is visible until the commit that names the root.

Keys are JSON lists compared as Python lists (``[time_ms, "run#0"]``); values are
any JSON. This module does no I/O: nodes come from a ``load`` callable.
"""

from __future__ import annotations

import bisect
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

LEAF_CAPACITY = 32
INNER_CAPACITY = 64

Key = list[Any]


@dataclass(frozen=True, slots=True)
class Node:
    """A leaf (level 0) holds ``[key, value]`` pairs; an inner node ``[first_key, child_id, count]``."""

    id: str
    level: int
    entries: list[list[Any]]

    @property
    def count(self) -> int:
        return len(self.entries) if self.level == 0 else sum(e[2] for e in self.entries)

    @property
    def first_key(self) -> Key:
        return self.entries[0][0]


Loader = Callable[[str], Node]


def new_node_id() -> str:
    """The time in ms, then 64 random bits: ids made later sort after, so the database's ``_id``
    index takes new nodes at its end rather than at random places (the cost of an insert into
    a big collection halves; docs/results.md, "Ingest"). Ids of the first form ("n" and 80
    random bits) stay valid: an id is only ever looked up."""
    return f"n{time.time_ns() // 1_000_000:012x}{os.urandom(8).hex()}"


@dataclass
class Builder:
    """Applies sorted upserts to trees; collects the nodes to write and the nodes replaced."""

    load: Loader
    leaf_capacity: int = LEAF_CAPACITY
    inner_capacity: int = INNER_CAPACITY
    created: dict[str, Node] = field(default_factory=dict)
    freed: list[str] = field(default_factory=list)

    def upsert(self, root_id: str | None, items: list[Any]) -> tuple[str | None, int]:
        """``items`` (``[key, value]`` lists or pairs) sorted by key, keys unique; returns
        (new root id, entries in the tree). Lists become the new leaves' entries as they are."""
        if not items:
            return root_id, (self._load(root_id).count if root_id else 0)
        if type(items[0]) is not list:
            items = [[k, v] for k, v in items]
        height = 0
        if root_id is None:
            level = self._emit(0, list(items))
        else:
            root = self._load(root_id)
            height = root.level
            level = self._apply(root, items)
        while len(level) > 1:
            height += 1
            level = self._emit(height, level)
        only = level[0]
        return only[1], only[2]

    def _load(self, node_id: str) -> Node:
        return self.created.get(node_id) or self.load(node_id)

    def _apply(self, node: Node, items: list[list[Any]]) -> list[list[Any]]:
        if node.level == 0:
            appended = bool(node.entries) and items[0][0] > node.entries[-1][0]
            if appended and len(node.entries) >= self.leaf_capacity // 2 \
                    and len(node.entries) + len(items) > self.leaf_capacity:
                # Entries after a leaf at least half full that they would overflow: new leaves after
                # it, and the leaf stays as it is (a batch rewrites no leaf of records it did not add).
                return [[node.first_key, node.id, node.count], *self._emit(0, items, fill=True)]
        if self.created.pop(node.id, None) is None:  # a node of this same change is simply dropped
            self.freed.append(node.id)
        if node.level == 0:
            return self._emit(0, _merge(node.entries, items), fill=appended)
        # Each item goes to the last child whose first key is <= its key (the first child if
        # none). Items are sorted: a child's part is the run between two bisections.
        keys = [item[0] for item in items]
        entries = node.entries
        children: list[list[Any]] = []
        start, last = 0, len(entries) - 1
        for i, entry in enumerate(entries):
            end = len(items) if i == last else bisect.bisect_left(keys, entries[i + 1][0], start)
            if end > start:
                children += self._apply(self._load(entry[1]), items[start:end])
                start = end
            else:
                children.append(entry)
        return self._emit(node.level, children)

    def _emit(self, level: int, entries: list[list[Any]], *, fill: bool = False) -> list[list[Any]]:
        """Nodes of ``level`` holding ``entries``, as parent entries. Over capacity they split evenly,
        or (``fill``: entries appended at the end) into full nodes and a short last one, so that the
        leaf every new record lands in, and every commit rewrites, stays small."""
        capacity = self.leaf_capacity if level == 0 else self.inner_capacity
        parts = max(1, -(-len(entries) // capacity))
        size = capacity if fill else -(-len(entries) // parts)
        out = []
        for i in range(0, len(entries), size):
            node = Node(new_node_id(), level, entries[i:i + size])
            self.created[node.id] = node
            out.append([node.first_key, node.id, node.count])
        return out


def _merge(entries: list[list[Any]], items: list[list[Any]]) -> list[list[Any]]:
    """Sorted merge; an item whose key is present replaces that entry's value."""
    if not entries or items[0][0] > entries[-1][0]:  # the usual case: newer than everything here
        return entries + items
    out: list[list[Any]] = []
    i = j = 0
    n, m = len(entries), len(items)
    while i < n and j < m:
        a, b = entries[i][0], items[j][0]
        if a < b:
            out.append(entries[i])
            i += 1
        elif b < a:
            out.append(items[j])
            j += 1
        else:
            out.append(items[j])
            i += 1
            j += 1
    out += entries[i:]
    out += items[j:]
    return out


def scan(load: Loader, root_id: str | None, start: Key | None = None, *, reverse: bool = False,
         inclusive: bool = True) -> Iterator[tuple[Key, Any]]:
    """Entries in key order (``reverse``: descending) from ``start`` on.

    Forward: keys >= start (> start when not ``inclusive``); reverse: keys <= start (<).
    A ``start`` that is a prefix of the keys (``[t]`` for keys ``[t, id]``) sorts before
    every key it prefixes.
    """
    if root_id is None:
        return
    stack: list[tuple[Node, int]] = []
    node = load(root_id)
    while True:
        keys = [e[0] for e in node.entries]
        if start is None:
            index = len(keys) - 1 if reverse else 0
        elif node.level == 0:
            if reverse:
                index = (bisect.bisect_right(keys, start) if inclusive else bisect.bisect_left(keys, start)) - 1
            else:
                index = bisect.bisect_left(keys, start) if inclusive else bisect.bisect_right(keys, start)
        else:
            index = max(0, bisect.bisect_right(keys, start) - 1)
            if reverse and not inclusive and index > 0 and keys[index] == start:
                index -= 1
        if node.level == 0:
            stack.append((node, index))
            break
        stack.append((node, index))
        if not 0 <= index < len(node.entries):
            break
        node = load(node.entries[index][1])
    step = -1 if reverse else 1
    while stack:
        node, index = stack.pop()
        if node.level == 0:
            while 0 <= index < len(node.entries):
                key, value = node.entries[index]
                yield key, value
                index += step
            continue
        index += step
        if 0 <= index < len(node.entries):
            stack.append((node, index))
            child = load(node.entries[index][1])
            while child.level > 0:
                first = len(child.entries) - 1 if reverse else 0
                stack.append((child, first))
                child = load(child.entries[first][1])
            stack.append((child, len(child.entries) - 1 if reverse else 0))


def get(load: Loader, root_id: str | None, key: Key) -> Any | None:
    """The value stored under ``key``, or None."""
    if root_id is None:
        return None
    node = load(root_id)
    while node.level:
        index = max(0, bisect.bisect_right(node.entries, key, key=lambda e: e[0]) - 1)
        node = load(node.entries[index][1])
    index = bisect.bisect_left(node.entries, key, key=lambda e: e[0])
    if index < len(node.entries) and node.entries[index][0] == key:
        return node.entries[index][1]
    return None


def get_many(load_many: Callable[[list[str]], dict[str, Node]], root_id: str | None,
             keys: list[Key], *, prefix: bool = False) -> dict[tuple[Any, ...], list[tuple[Key, Any]] | None]:
    """Many lookups, one level at a time: one ``load_many`` (one round trip) per level.

    Returns, by ``tuple(key)``, the entries found: the entry with that key, or with
    ``prefix``, the entries whose keys start with it. None where the answer may go on
    past the leaf the lookup reached (a prefix match at a leaf's end): ``scan`` those.
    """
    unique = sorted({tuple(k) for k in keys})
    found: dict[tuple[Any, ...], list[tuple[Key, Any]] | None] = {k: [] for k in unique}
    if root_id is None or not unique:
        return found
    frontier: dict[str, list[Key]] = {root_id: [list(k) for k in unique]}
    while frontier:
        nodes = load_many(list(frontier))
        following: dict[str, list[Key]] = {}
        for node_id, wanted in frontier.items():
            node = nodes[node_id]
            entry_keys = [e[0] for e in node.entries]
            for key in wanted:
                if node.level:
                    child = node.entries[max(0, bisect.bisect_right(entry_keys, key) - 1)][1]
                    following.setdefault(child, []).append(key)
                    continue
                at = bisect.bisect_left(entry_keys, key)
                hits = []
                while at < len(entry_keys) and (entry_keys[at][:len(key)] == key if prefix else entry_keys[at] == key):
                    hits.append((entry_keys[at], node.entries[at][1]))
                    at += 1
                    if not prefix:
                        break
                found[tuple(key)] = None if prefix and at == len(entry_keys) else hits
        frontier = following
    return found
