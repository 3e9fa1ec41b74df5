"""The local runtime's 'API server': objects as JSON files under the runtime's folder.

``<root>/objects/<plural>[.<group>]/<namespace>/<name>.json``, one file per object.
Several processes (the deploy, vllm and eval functions, the shims) share one root, so
every write happens under one ``fcntl`` lock on ``<root>/.lock`` (and a thread lock,
since ``flock`` does not exclude threads of one process), and every file is replaced
atomically. Reads take no lock: a reader sees an object before or after a write.
``resourceVersion`` comes from one counter, bumped only by a write that changes a file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vllmbench.errors import DependencyUnavailable
from vllmbench.runtimes.base import KINDS, Kind
from vllmbench.runtimes.local.procs import write_json

CLUSTER = "_cluster"  # the folder of cluster-scoped objects
LOCK_TIMEOUT_S = 30.0

_locks: dict[Path, "_RootLock"] = {}
_locks_guard = threading.Lock()


def kind_for(api_version: str, kind: str) -> Kind:
    """The known :class:`Kind`, or one made up for a kind vllmbench does not know (it is stored too)."""
    known = KINDS.get((api_version, kind))
    return known or Kind(api_version, kind, kind.lower() + "s")


def kind_dir(kind: Kind) -> str:
    return f"{kind.plural}.{kind.group}" if kind.group else kind.plural


class _RootLock:
    """One exclusive lock per root, shared by the threads of a process and re-entrant."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    def __enter__(self) -> None:
        if not self._thread.acquire(timeout=LOCK_TIMEOUT_S):
            raise DependencyUnavailable("local-runtime", f"another thread holds {self.path} for {LOCK_TIMEOUT_S:.0f} s")
        if self._depth == 0:
            try:
                self._fd = self._take()
            except BaseException:
                self._thread.release()
                raise
        self._depth += 1

    def _take(self) -> int:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DependencyUnavailable("local-runtime", f"cannot open {self.path}: {exc.strerror}") from exc
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                    os.close(fd)
                    raise DependencyUnavailable(
                        "local-runtime", f"another process holds {self.path} for {LOCK_TIMEOUT_S:.0f} s") from exc
                time.sleep(0.002)

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        self._thread.release()


class Store:
    """Objects on disk. ``put`` and ``remove`` must run inside ``with store.lock():``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "objects"
        with _locks_guard:
            self._lock = _locks.setdefault(root.resolve(), _RootLock(root / ".lock"))
        # path -> ((inode, mtime, size), object): a file is replaced, never rewritten in place,
        # so an unchanged stat means an unchanged object and listing skips the JSON parse.
        self._cache: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock:
            yield

    # -- addressing -------------------------------------------------------------------
    def path(self, kind: Kind, namespace: str, name: str) -> Path:
        return self.objects / kind_dir(kind) / (namespace or CLUSTER) / f"{name}.json"

    def path_of(self, obj: dict[str, Any]) -> Path:
        meta = obj["metadata"]
        return self.path(kind_for(obj["apiVersion"], obj["kind"]), meta.get("namespace") or "", meta["name"])

    # -- reading ----------------------------------------------------------------------
    def get(self, kind: Kind, namespace: str, name: str) -> dict[str, Any] | None:
        return self._load(str(self.path(kind, namespace, name)))

    def list(self, kind: Kind, namespace: str | None) -> list[dict[str, Any]]:
        base = self.objects / kind_dir(kind)
        folders = [base / (namespace or CLUSTER)] if namespace is not None else self._subdirs(base)
        out = []
        for folder in folders:
            try:
                entries = sorted(e.name for e in os.scandir(folder) if e.name.endswith(".json"))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for name in entries:
                obj = self._load(f"{folder}/{name}")
                if obj is not None:
                    out.append(obj)
        return out

    def namespaces(self, kind: Kind) -> list[str]:
        return [p.name for p in self._subdirs(self.objects / kind_dir(kind)) if p.name != CLUSTER]

    @staticmethod
    def _subdirs(base: Path) -> list[Path]:
        try:
            return sorted(Path(e.path) for e in os.scandir(base) if e.is_dir())
        except FileNotFoundError:
            return []

    def _load(self, path: str) -> dict[str, Any] | None:
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            self._cache.pop(path, None)
            return None
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        hit = self._cache.get(path)
        if hit is None or hit[0] != key:
            try:
                with open(path) as f:
                    hit = (key, json.load(f))
            except (FileNotFoundError, json.JSONDecodeError):
                return None
            self._cache[path] = hit
        return _copy(hit[1])

    # -- writing (under the lock) -----------------------------------------------------
    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store ``obj`` with the next resourceVersion; returns what was stored."""
        obj = _copy(obj)
        obj["metadata"]["resourceVersion"] = str(self._next_rv())
        path = self.path_of(obj)
        write_json(path, obj)
        return obj

    def remove(self, kind: Kind, namespace: str, name: str) -> bool:
        self._next_rv()  # a delete is a write: a watcher of the counter sees it
        try:
            os.unlink(self.path(kind, namespace, name))
            return True
        except FileNotFoundError:
            return False

    def _next_rv(self) -> int:
        counter = self.root / "resource-version"
        try:
            current = int(counter.read_text() or 0)
        except (FileNotFoundError, ValueError):
            current = 0
        tmp = counter.with_name(f".resource-version.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(str(current + 1))
        os.replace(tmp, counter)
        return current + 1

    def wipe(self, path: Path) -> None:
        """Remove a folder this store keeps beside an object (a pod's, a claim's)."""
        shutil.rmtree(path, ignore_errors=True)


def _copy(obj: dict[str, Any]) -> dict[str, Any]:
    # JSON round trip: objects are JSON by construction, and this is faster than deepcopy.
    return json.loads(json.dumps(obj))
