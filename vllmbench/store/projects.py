"""Projects of the Manager: one document per project, holding its snapshot pointer.

The snapshot pointer (``generation`` and ``commit``) moves in one single-document
update with a compare-and-set on the previous generation; that update is the
atomic switch of a sync (see :mod:`vllmbench.store.config_files`). A sync lease
on the document keeps two syncs of one project from interleaving.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from vllmbench.errors import Conflict, NotFound, RetryableError
from vllmbench.models.projects import Project, ProjectCreate, SyncResult
from vllmbench.store.mongo import translate

COLLECTION = "projects"


class SyncBusy(RetryableError):
    code = "sync_running"


def ensure_indexes(db: Any) -> None:
    with translate("creating project indexes"):
        db[COLLECTION].create_index([("repo_key", 1), ("branch", 1)])


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class ProjectStore:
    def __init__(self, db: Any) -> None:
        self._c = db[COLLECTION]

    def create(self, body: ProjectCreate, *, repo_key: str, root: str) -> Project:
        now = _now()
        doc = {"_id": body.name, **body.model_dump(), "root": root, "repo_key": repo_key,
               "created_at": now, "updated_at": now, "generation": 0, "commit": None,
               "source": None, "synced_at": None, "last_sync": None, "last_error": None, "sync_lease": None,
               "pending": None, "garbage": 0}
        try:
            with translate(f"creating project {body.name!r}"):
                self._c.insert_one(doc)
        except Conflict as exc:
            raise Conflict(f"project {body.name!r} exists already; choose another name or PATCH it") from exc
        return _project(doc)

    def doc(self, project_id: str) -> dict[str, Any]:
        with translate(f"reading project {project_id!r}"):
            doc = self._c.find_one({"_id": project_id})
        if doc is None:
            raise NotFound(f"no project {project_id!r}; GET /projects lists them")
        return doc

    def get(self, project_id: str) -> Project:
        return _project(self.doc(project_id))

    def list(self) -> list[Project]:
        with translate("listing projects"):
            return [_project(doc) for doc in self._c.find({}).sort("_id", 1)]

    def ids_for(self, repo_keys: set[str], branch: str) -> list[str]:
        with translate("finding projects of a repository"):
            cursor = self._c.find({"repo_key": {"$in": sorted(repo_keys)}, "branch": branch}, {"_id": 1})
            return [doc["_id"] for doc in cursor]

    def all_ids(self) -> list[str]:
        with translate("listing projects"):
            return [doc["_id"] for doc in self._c.find({}, {"_id": 1}).sort("_id", 1)]

    def update(self, project_id: str, changes: dict[str, Any]) -> Project:
        with translate(f"updating project {project_id!r}"):
            result = self._c.update_one({"_id": project_id}, {"$set": {**changes, "updated_at": _now()}})
        if result.matched_count == 0:
            raise NotFound(f"no project {project_id!r}; GET /projects lists them")
        return self.get(project_id)

    def delete(self, project_id: str) -> None:
        with translate(f"deleting project {project_id!r}"):
            result = self._c.delete_one({"_id": project_id})
        if result.deleted_count == 0:
            raise NotFound(f"no project {project_id!r}; GET /projects lists them")

    # -- sync ------------------------------------------------------------------------

    def acquire_sync(self, project_id: str, holder: str, *, lease_s: float = 300, wait_s: float = 60) -> None:
        """Take the project's sync lease, waiting up to ``wait_s`` for a running sync."""
        deadline = time.monotonic() + wait_s
        delay = 0.02
        while True:
            now = _now()
            with translate(f"locking project {project_id!r} for sync"):
                result = self._c.update_one(
                    {"_id": project_id, "$or": [{"sync_lease": None}, {"sync_lease.expires_at": {"$lt": now}}]},
                    {"$set": {"sync_lease": {"holder": holder, "expires_at": now + dt.timedelta(seconds=lease_s)}}},
                )
            if result.matched_count == 1:
                return
            self.doc(project_id)  # NotFound when it was deleted meanwhile
            if time.monotonic() >= deadline:
                raise SyncBusy(f"a sync of project {project_id!r} is running; try again shortly")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def release_sync(self, project_id: str, holder: str) -> None:
        with translate(f"unlocking project {project_id!r}"):
            self._c.update_one({"_id": project_id, "sync_lease.holder": holder}, {"$set": {"sync_lease": None}})

    def mark_pending(self, project_id: str, generation: int) -> None:
        """Note that a sync is writing ``generation``, so that a sync that dies can be undone."""
        with translate(f"recording the sync of project {project_id!r}"):
            self._c.update_one({"_id": project_id}, {"$set": {"pending": generation}})

    def switch(self, project_id: str, *, from_generation: int, result: SyncResult, source: str,
               garbage: int) -> None:
        """Point readers at the new snapshot: one update, only if nobody switched meanwhile.

        ``garbage`` counts the file versions the new snapshot made invisible (see ``compact``).
        """
        with translate(f"switching the snapshot of project {project_id!r}"):
            outcome = self._c.update_one(
                {"_id": project_id, "generation": from_generation},
                {"$set": {"generation": result.generation, "commit": result.commit, "source": source,
                          "synced_at": _now(), "last_sync": result.model_dump(mode="json"), "last_error": None,
                          "pending": None, "garbage": garbage}},
            )
        if outcome.matched_count != 1:
            raise Conflict(f"project {project_id!r} changed during the sync; sync again")

    def touch_synced(self, project_id: str, result: SyncResult) -> None:
        with translate(f"recording the sync of project {project_id!r}"):
            self._c.update_one({"_id": project_id}, {"$set": {
                "synced_at": _now(), "last_sync": result.model_dump(mode="json"), "last_error": None}})

    def record_error(self, project_id: str, message: str) -> None:
        with translate(f"recording a sync error of project {project_id!r}"):
            self._c.update_one({"_id": project_id}, {"$set": {"last_error": message}})


def _project(doc: dict[str, Any]) -> Project:
    fields = {key: doc.get(key) for key in Project.model_fields if key != "id"}
    fields["generation"] = doc.get("generation") or 0
    return Project(id=doc["_id"], **fields)
