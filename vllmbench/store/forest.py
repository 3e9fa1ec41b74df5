"""A forest of copy-on-write trees in a MongoDB-wire database, committed by root versions.

Collections (``<prefix>_nodes``, ``<prefix>_roots``):
- a node (``vllmbench.store.nodes``) is written once and never changed; leaves hold
  whole records, so the answer of a page is a leaf or two;
- a root version is ``{_id: "v000000000042", v, at, catalog, freed}``: the root of the
  catalog tree (tree name -> [root node id, entries]) as of version ``v``, and the nodes
  that version replaced. A commit is the insert of version v+1: the ``_id`` index makes
  that insert a compare-and-swap, so two writers (threads or processes) never both win,
  and the loser rebuilds its change on top of the winner's.

Documents a commit refers to (records, raw results, sample chunks) are inserted before
the root and are content-addressed, so a commit that failed half-way left only
documents nothing refers to, and its retry writes the same ids again.

Every operation here is an insert, a read by ``_id`` (or ``_id $in``) or a delete by
``_id``: on MongoDB, FerretDB and anything else that speaks the protocol, each is an
``_id`` index lookup, whatever the size of the collections.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from vllmbench.errors import RetryableError
from vllmbench.store import tree
from vllmbench.store.mongo import translate
from vllmbench.store.nodes import NodeCache, Packed, decode_node, encode_node
from vllmbench.store.tree import Key, Node

__all__ = ["Change", "Forest", "NodeCache", "Packed", "Snapshot", "SnapshotGone"]

T = TypeVar("T")

CATALOG = "catalog"
HEAD = "head"
# Nodes replaced by a version are deleted once that version is this old: longer than any
# request holds a snapshot (database calls time out well before).
GC_GRACE_S = 300.0
GC_KEEP_VERSIONS = 50
MAX_COMMIT_ATTEMPTS = 20


class SnapshotGone(RetryableError):
    """A node of an old snapshot was collected; the caller retries on a fresh snapshot."""

    code = "snapshot_gone"


def version_id(version: int) -> str:
    return f"v{version:012d}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class _Pending:
    """A commit built by this process whose writes may still be under way."""

    __slots__ = ("version", "catalog", "done", "ok")

    def __init__(self, version: int, catalog: str | None) -> None:
        self.version, self.catalog = version, catalog
        self.done = threading.Event()
        self.ok = False


class Snapshot:
    """The forest as of one version: reads only. A version committed, or (for a writer) one
    this process built and is committing (``Forest.commit``)."""

    def __init__(self, forest: "Forest", version: int, catalog: str | None) -> None:
        self.forest = forest
        self.version = version
        self.catalog = catalog
        self._trees: dict[str, tuple[str | None, int]] = {}

    def tree(self, name: str) -> tuple[str | None, int]:
        """(root node id, entries) of the tree ``name``; (None, 0) when it has none yet."""
        known = self._trees.get(name)
        if known is None:
            found = tree.get(self.forest.load, self.catalog, [name])
            known = self._trees[name] = (found[0], found[1]) if found else (None, 0)
        return known

    def scan(self, name: str, start: Key | None = None, *, reverse: bool = False,
             inclusive: bool = True) -> Iterator[tuple[Key, Any]]:
        root, _ = self.tree(name)
        return tree.scan(self.forest.load, root, start, reverse=reverse, inclusive=inclusive)

    def get(self, name: str, key: Key) -> Any | None:
        root, _ = self.tree(name)
        return tree.get(self.forest.load, root, key)

    def get_many(self, name: str, keys: list[Key], *, prefix: bool = False) -> dict[tuple[Any, ...], list[Any]]:
        """``tree.get_many`` on the tree ``name``: a round trip per level for all ``keys``."""
        root, _ = self.tree(name)
        return tree.get_many(self.forest.load_many, root, keys, prefix=prefix)


class Change:
    """What one commit writes: tree upserts and documents, read against a snapshot."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.upserts: dict[str, dict[tuple[Any, ...], Any]] = {}
        self.docs: dict[str, dict[str, dict[str, Any]]] = {}

    def put(self, name: str, key: Key, value: Any) -> None:
        self.upserts.setdefault(name, {})[tuple(key)] = value

    def put_all(self, names: Sequence[str], key: tuple[Any, ...], value: Any) -> None:
        """The same entry in each of the trees ``names`` (a record in every listing it belongs to)."""
        upserts = self.upserts
        for name in names:
            staged = upserts.get(name)
            if staged is None:
                staged = upserts[name] = {}
            staged[key] = value

    def get(self, name: str, key: Key) -> Any | None:
        """The value under ``key`` counting this change's own puts."""
        staged = self.upserts.get(name, {}).get(tuple(key))
        return staged if staged is not None else self.snapshot.get(name, key)

    def get_many(self, name: str, keys: list[Key]) -> dict[tuple[Any, ...], Any | None]:
        """``get`` of many keys, by ``tuple(key)``: a tree level at a time for the ones not staged."""
        staged = self.upserts.get(name, {})
        out: dict[tuple[Any, ...], Any | None] = {}
        missing = []
        for key in keys:
            found = staged.get(tuple(key))
            if found is None:
                missing.append(key)
            out[tuple(key)] = found
        if missing:
            for key, hits in self.snapshot.get_many(name, missing).items():
                out[key] = hits[0][1] if hits else None
        return out

    def insert(self, collection: str, doc: dict[str, Any]) -> None:
        self.docs.setdefault(collection, {})[doc["_id"]] = doc

    def __bool__(self) -> bool:
        return bool(self.upserts or self.docs)


class Forest:
    def __init__(self, db: Any, prefix: str, *, cache: NodeCache | None = None, zdict: bytes = b"") -> None:
        """``zdict``: the preset dictionary Packed texts are compressed against (never change it
        for a forest that has data: a new dictionary needs a new prefix)."""
        self.db = db
        self.zdict = zdict
        self.nodes = db[f"{prefix}_nodes"]
        self.roots = db[f"{prefix}_roots"]
        self.cache = cache or NodeCache()
        self._head: tuple[int, str | None] = (0, None)
        self._head_checked = 0.0  # monotonic time the cached head was last known to be the newest
        self._head_lock = threading.Lock()
        self._gc_done = 0
        self._build_lock = threading.Lock()
        self._after_lock = threading.Lock()
        self._tip: _Pending | None = None  # the newest commit this process built, until it is done
        self._built: dict[str, Node] = {}  # nodes of commits built and not yet done

    # -- reading ---------------------------------------------------------------------
    def load(self, node_id: str) -> Node:
        node = self.cache.get(node_id) or self._built.get(node_id)
        if node is not None:
            return node
        with translate("reading the results index"):
            doc = self.nodes.find_one({"_id": node_id})
        if doc is None:
            raise SnapshotGone(f"index node {node_id} is gone (collected after a newer commit); retry")
        node, size = decode_node(doc, self.zdict)
        self.cache.put(node, size)
        return node

    def load_many(self, node_ids: list[str]) -> dict[str, Node]:
        """Nodes by id: from the cache, the rest in one round trip."""
        out: dict[str, Node] = {}
        missing = []
        for node_id in node_ids:
            node = self.cache.get(node_id) or self._built.get(node_id)
            if node is None:
                missing.append(node_id)
            else:
                out[node_id] = node
        if missing:
            with translate("reading the results index"):
                docs = list(self.nodes.find({"_id": {"$in": missing}}))
            for doc in docs:
                node, size = decode_node(doc, self.zdict)
                self.cache.put(node, size)
                out[node.id] = node
            if len(out) != len(node_ids):
                raise SnapshotGone("index nodes are gone (collected after a newer commit); retry")
        return out

    def snapshot(self) -> Snapshot:
        """The newest committed version: the cached head, then a look at the versions after it.

        Roots are collected once they are older than the grace period, so the cached head
        is trusted only while it was confirmed more recently than that: a process idle for
        longer starts from the head hint, as a new one does.
        """
        with self._head_lock:
            version, catalog = self._head
            stale = time.monotonic() - self._head_checked > GC_GRACE_S / 2
        with translate("reading the results index"):
            if version == 0 or stale:
                hint = self.roots.find_one({"_id": HEAD})
                if hint is not None and hint["v"] > version:
                    version, catalog = hint["v"] - 1, None
            steps = 0
            while True:
                doc = self.roots.find_one({"_id": version_id(version + 1)}, {"catalog": 1})
                if doc is None:
                    break
                version, catalog, steps = version + 1, doc["catalog"], steps + 1
                if steps == 8:  # far behind (other processes committed): jump to the hint
                    hint = self.roots.find_one({"_id": HEAD})
                    if hint is not None and hint["v"] > version + 1:
                        found = self.roots.find_one({"_id": version_id(hint["v"])}, {"catalog": 1})
                        if found is not None:
                            version, catalog = hint["v"], found["catalog"]
            if version and catalog is None:  # the hint named a version whose root is not there
                doc = self.roots.find_one({"_id": version_id(version)}, {"catalog": 1})
                if doc is None:
                    raise RetryableError("the results index's newest version is not readable yet; retry")
                catalog = doc["catalog"]
        with self._head_lock:
            if version >= self._head[0]:
                self._head = (version, catalog)
                self._head_checked = time.monotonic()
        return Snapshot(self, version, catalog)

    def read(self, fn: Callable[[Snapshot], T]) -> T:
        """``fn`` on the newest snapshot; once more on a fresh one if an old node was collected."""
        try:
            return fn(self.snapshot())
        except SnapshotGone:
            return fn(self.snapshot())

    # -- writing ---------------------------------------------------------------------
    def commit(self, build: Callable[[Change], T]) -> tuple[T, int]:
        """Run ``build`` on a change against the newest version and commit it; returns (its result, version).

        ``build`` may run several times (another writer committed first); it must only
        read through the change and stage writes in it. A change with nothing staged
        commits nothing (version is the snapshot's).

        Commits of one process are pipelined: a change is built (CPU: its trees, its
        nodes encoded) under the build lock, on top of the newest version *this process*
        has built, committed or not; its writes wait for that version's and go after them.
        So the next batch's trees are built while the last one's documents are on their
        way to the database. A commit never answers before the one it was built on is
        committed, and if that one failed it is built again on the newest committed
        version: nothing is answered from a version that was not committed.
        """
        for _ in range(MAX_COMMIT_ATTEMPTS):
            with self._build_lock:
                base = self._tip
                if base is not None and base.done.is_set():
                    base = self._tip = None
                snapshot = Snapshot(self, base.version, base.catalog) if base else self.snapshot()
                change = Change(snapshot)
                try:
                    result = build(change)
                except SnapshotGone:
                    if base is None:
                        raise
                    base.done.wait()  # a node of a failed commit this one was built on: build again
                    continue
                if not change:
                    mine = None
                else:
                    builder = tree.Builder(self._load_built)
                    catalog_items: list[tuple[Key, Any]] = []
                    for name in sorted(change.upserts):
                        root, _ = snapshot.tree(name)
                        # Keys of one dict differ, so the sort never compares values.
                        items = [[list(k), v] for k, v in sorted(change.upserts[name].items())]
                        new_root, count = builder.upsert(root, items)
                        catalog_items.append(([name], [new_root, count]))
                    catalog, _ = builder.upsert(snapshot.catalog, catalog_items)
                    node_docs, sizes = self._encode_nodes(builder.created.values())
                    mine = _Pending(snapshot.version + 1, catalog)
                    with self._head_lock:
                        self._built.update(builder.created)
                    self._tip = mine
            if base is not None:
                base.done.wait()
            if mine is None:
                if base is not None and not base.ok:
                    continue  # answered from a version that was not committed: again, on what was
                return result, snapshot.version
            committed = False
            try:
                if base is None or base.ok:
                    self._insert_docs(change.docs)
                    _insert_new(self.nodes, node_docs, what="writing the results index")
                    committed = self._insert_root(mine.version, catalog, builder.freed)
                if committed:
                    for node in builder.created.values():
                        self.cache.put(node, sizes[node.id])
                    with self._head_lock:
                        if mine.version > self._head[0]:
                            self._head = (mine.version, catalog)
                            self._head_checked = time.monotonic()
                mine.ok = committed
            finally:
                with self._head_lock:
                    for node_id in builder.created:
                        self._built.pop(node_id, None)
                mine.done.set()
            if committed:
                with self._after_lock:
                    self._after_commit(mine.version)
                return result, mine.version
            if base is None or base.ok:
                self._delete_nodes(list(builder.created))  # lost the race: nothing refers to them
        raise RetryableError("the results index is busy (too many concurrent commits); retry")

    def _load_built(self, node_id: str) -> Node:
        return self._built.get(node_id) or self.load(node_id)

    def _encode_nodes(self, nodes: Iterable[Node]) -> tuple[list[dict[str, Any]], dict[str, int]]:
        docs, sizes = [], {}
        for node in nodes:  # bytes are BSON binary (subtype 0), read back as bytes
            doc, sizes[node.id] = encode_node(node, self.zdict)
            docs.append(doc)
        return docs, sizes

    def _insert_docs(self, docs: dict[str, dict[str, dict[str, Any]]]) -> None:
        for collection, by_id in docs.items():
            _insert_new(self.db[collection], list(by_id.values()), what=f"storing {collection}")

    def _insert_root(self, version: int, catalog: str | None, freed: list[str]) -> bool:
        from pymongo.errors import DuplicateKeyError

        doc = {"_id": version_id(version), "v": version, "at": _now(), "catalog": catalog, "freed": freed}
        with translate("committing to the results index"):
            try:
                self.roots.insert_one(doc)
            except DuplicateKeyError:
                return False
        return True

    def _delete_nodes(self, ids: list[str]) -> None:
        for i in range(0, len(ids), 500):
            with translate("cleaning up the results index"):
                self.nodes.delete_many({"_id": {"$in": ids[i:i + 500]}})

    def _after_commit(self, version: int) -> None:
        """Move the head hint on, and collect what old versions replaced (best effort)."""
        from pymongo.errors import PyMongoError

        try:
            self.roots.replace_one({"_id": HEAD}, {"_id": HEAD, "v": version}, upsert=True)
            self._collect(version)
        except PyMongoError:
            pass  # the commit stands; the hint and the collection catch up on the next one

    def _collect(self, head: int) -> None:
        if not self._gc_done:
            state = self.roots.find_one({"_id": "gc"})
            self._gc_done = state["v"] if state else 0
        cutoff = _now() - dt.timedelta(seconds=GC_GRACE_S)
        upto = self._gc_done
        for version in range(self._gc_done + 1, min(head - GC_KEEP_VERSIONS, self._gc_done + 8) + 1):
            doc = self.roots.find_one({"_id": version_id(version)})
            if doc is not None:
                at = doc["at"] if doc["at"].tzinfo else doc["at"].replace(tzinfo=dt.timezone.utc)
                if at > cutoff:
                    break
                self._delete_nodes(doc.get("freed", []))
                if version > 1:
                    self.roots.delete_one({"_id": version_id(version - 1)})
            upto = version
        if upto != self._gc_done:
            self._gc_done = upto
            self.roots.replace_one({"_id": "gc"}, {"_id": "gc", "v": upto}, upsert=True)


def _insert_new(collection: Any, docs: list[dict[str, Any]], *, what: str) -> None:
    """Insert ``docs``; ids present already hold the same content (content-addressed) and are skipped."""
    from pymongo.errors import BulkWriteError

    for i in range(0, len(docs), 1000):
        with translate(what):
            try:
                collection.insert_many(docs[i:i + 1000], ordered=False)
            except BulkWriteError as exc:
                if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                    raise
