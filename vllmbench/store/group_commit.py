"""Group commit: concurrent writers of one process share commits.

Each writer queues an operation. One of them leads: it takes every operation queued by
the time the forest lets it build (``Forest.commit`` builds one change at a time, and
pipelines their writes) and commits them as one change; the others wait for its answer.
Under 8 concurrent writers that is one commit (a few node writes and one root insert)
for many small batches, instead of a queue of commits racing for the same root version;
and while one group's documents are being written, the next group is built.
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
        self.done = threading.Event()


class GroupCommitter:
    """``run(op)``: ``op(change)`` checks against the change, stages its writes, and returns
    its outcome; it raises a ``UserError`` (409, 404, ...) *before* staging anything to be
    refused alone. ``op`` may run more than once (a retry on a newer snapshot)."""

    def __init__(self, forest: Forest) -> None:
        self.forest = forest
        self._queue: list[_Slot] = []
        self._queue_lock = threading.Lock()
        self._leader_waiting = False  # a leader that has not taken the queue yet

    def run(self, op: Operation) -> Any:
        slot = _Slot(op)
        with self._queue_lock:
            self._queue.append(slot)
            lead = not self._leader_waiting
            if lead:
                self._leader_waiting = True
        if lead:
            self._lead()
        slot.done.wait()
        if slot.error is not None:
            raise slot.error
        return slot.outcome

    def _take(self) -> list[_Slot]:
        with self._queue_lock:
            group, self._queue = self._queue, []
            self._leader_waiting = False
        return group

    def _lead(self) -> None:
        group: list[_Slot] | None = None

        def build(change: Change) -> None:
            nonlocal group
            if group is None:  # taken when the forest lets this change be built: all queued by then
                group = self._take()
            for slot in group:
                slot.outcome, slot.error = None, None
                try:
                    slot.outcome = slot.op(change)
                except UserError as exc:
                    slot.error = exc

        try:
            self.forest.commit(build)
        except BaseException as exc:
            if group is None:
                group = self._take()
            for slot in group:
                slot.error = exc
        finally:
            if group is None:
                group = self._take()
            for slot in group:
                slot.done.set()
