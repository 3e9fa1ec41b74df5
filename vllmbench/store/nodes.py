"""Tree nodes as documents, and the cache that keeps them decoded.

A node document is ``{_id, lv, z[, b, bl]}``: its level, its entries' JSON (zlib) and,
for a leaf of records, the records' compressed bytes back to back (``b``) with their
lengths (``bl``). docs/results.md, "The layout", has the details.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any

from vllmbench.store.tree import Node

try:  # about 15 times as fast as json for a leaf entry; any JSON reader reads what either writes
    import orjson
except ImportError:  # pragma: no cover - a platform without its wheel
    orjson = None  # type: ignore[assignment]

try:  # ISA-L's deflate writes zlib's format (any zlib reads it back) about three times as fast
    from isal import isal_zlib as zlib
except ImportError:  # pragma: no cover - a platform without its wheel
    import zlib  # type: ignore[no-redef]


class LruCache:
    """Values by key, least recently used out first, up to ``max_bytes`` (each put says its size)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> Any | None:
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def put_value(self, key: str, value: Any, size: int) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            self._bytes += size - (old[1] if old else 0)
            self._items[key] = (value, size)
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped


class NodeCache(LruCache):
    """Nodes by id, up to ``max_bytes`` of their decoded size. Nodes never change, so a hit is never stale."""

    def __init__(self, max_bytes: int = 48 << 20) -> None:
        super().__init__(max_bytes)

    def put(self, node: Node, size: int) -> None:
        self.put_value(node.id, node, size)


# A leaf's records (a Packed at the end of an entry's value) are kept beside the
# entries' JSON, each compressed alone against a preset dictionary: a record is
# compressed once (when it arrives) however many trees and rewrites hold it, read
# without JSON escaping, decompressed only when an answer holds it, and still about
# 5 times smaller than its text (docs/results.md, "Nodes").
class Packed:
    """A long text kept compressed against the forest's dictionary; both forms made lazily.

    It also keeps the JSON of the last leaf entry written with it: the same record sits
    under the same key in every tree that holds it, and in every rewrite of a leaf.
    """

    __slots__ = ("_text", "_blob", "_zdict", "_entry_key", "_entry_json")

    def __init__(self, *, text: str | None = None, blob: bytes | None = None, zdict: bytes = b"") -> None:
        self._text, self._blob, self._zdict = text, blob, zdict
        self._entry_key: Any = None
        self._entry_json = b""

    @property
    def text(self) -> str:
        if self._text is None:
            assert self._blob is not None
            self._text = zlib.decompressobj(zdict=self._zdict).decompress(self._blob).decode()
        return self._text

    def blob(self, zdict: bytes) -> bytes:
        if self._blob is None or self._zdict != zdict:
            packer = zlib.compressobj(1, zdict=zdict)
            self._blob, self._zdict = packer.compress(self.text.encode()) + packer.flush(), zdict
        return self._blob

    def entry_json(self, key: Any, value: list[Any]) -> bytes:
        if self._entry_key != key:
            self._entry_json = _dumps([key, [*value[:-1], _BLOB]])
            self._entry_key = key
        return self._entry_json


def _dumps(value: Any) -> bytes:
    if orjson is not None:
        try:
            return orjson.dumps(value)
        except TypeError:  # what only json writes (an integer past 64 bits): as json writes it
            pass
    return json.dumps(value, separators=(",", ":")).encode()


def _loads(data: bytes) -> Any:
    if orjson is not None:
        try:
            return orjson.loads(data)
        except ValueError:  # what only json reads (an integer past 64 bits)
            pass
    return json.loads(data)


_BLOB = {"$b": 1}  # where a Packed was: the leaf's blobs follow in the order of these marks


def encode_node(node: Node, zdict: bytes) -> tuple[dict[str, Any], int]:
    """``{_id, lv, z[, b, bl]}`` and about how much memory the node takes decoded.

    A leaf entry whose value ends with a Packed keeps it in ``b`` (its place marked
    ``{"$b": 1}``); a leaf may hold entries of both kinds (a facet tree's leaf written
    when its entries held records, with entries appended since that hold ids).
    """
    blobs: list[bytes] = []
    head = None
    if node.level == 0:
        parts: list[bytes] | None = None
        entries = node.entries
        for i, (key, value) in enumerate(entries):
            if type(value) is list and value and type(value[-1]) is Packed:
                if parts is None:
                    parts = [_dumps(e) for e in entries[:i]]
                packed = value[-1]
                blobs.append(packed.blob(zdict))
                parts.append(packed.entry_json(key, value))
            elif parts is not None:
                parts.append(_dumps([key, value]))
        if parts is not None:
            head = b"[" + b",".join(parts) + b"]"
    if head is None:
        head = _dumps(node.entries)
    doc: dict[str, Any] = {"_id": node.id, "lv": node.level, "z": zlib.compress(head, 1)}
    if blobs:
        doc["b"], doc["bl"] = b"".join(blobs), [len(b) for b in blobs]
    return doc, 2 * len(head) + sum(len(b) for b in blobs)


def decode_node(doc: dict[str, Any], zdict: bytes) -> tuple[Node, int]:
    head = zlib.decompress(doc["z"])
    entries = _loads(head)
    size = 2 * len(head)
    if doc.get("bl"):
        data, at, lengths = doc["b"], 0, iter(doc["bl"])
        for entry in entries:
            value = entry[1]
            if type(value) is list and value and value[-1] == _BLOB:
                length = next(lengths)
                value[-1] = Packed(blob=data[at:at + length], zdict=zdict)
                at += length
        size += at
    return Node(doc["_id"], doc["lv"], entries), size
