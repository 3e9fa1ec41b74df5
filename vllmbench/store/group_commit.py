"""Group commit: concurrent writers of one process share commits.

Each writer queues an operation and waits for the commit lock; whoever holds it takes
every queued operation and commits them as one change. Under 8 concurrent writers
that is one commit (a few node writes and one root insert) for many small batches,
instead of a queue of commits racing for the same root version.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from vllmbench.errors import UserError
from vllmbench.store.forest import Change, Forest

Operation = Callable[[Change], Any]


class _Slot:
    __slots__ = ("op", "outcome", "error", "done")

    def __init__(self, op: Operation) -> None:
        self.op = op
        self.outcome: Any = None
        self.error: BaseException | None = None
        self.done = False


class GroupCommitter:
    """``run(op)``: ``op(change)`` checks against the change, stages its writes, and returns
    its outcome; it raises a ``UserError`` (409, 404, ...) *before* staging anything to be
    refused alone. ``op`` may run more than once (a retry on a newer snapshot)."""

    def __init__(self, forest: Forest) -> None:
        self.forest = forest
        self._queue: list[_Slot] = []
        self._queue_lock = threading.Lock()
        self._commit_lock = threading.Lock()

    def run(self, op: Operation) -> Any:
        slot = _Slot(op)
        with self._queue_lock:
            self._queue.append(slot)
        with self._commit_lock:
            if not slot.done:
                with self._queue_lock:
                    group, self._queue = self._queue, []
                self._commit(group)
        if slot.error is not None:
            raise slot.error
        return slot.outcome

    def _commit(self, group: list[_Slot]) -> None:
        def build(change: Change) -> None:
            for slot in group:
                slot.outcome, slot.error = None, None
                try:
                    slot.outcome = slot.op(change)
                except UserError as exc:
                    slot.error = exc

        try:
            self.forest.commit(build)
        except BaseException as exc:
            for slot in group:
                slot.error = exc
        finally:
            for slot in group:
                slot.done = True
