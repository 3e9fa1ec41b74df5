"""The mirrored configuration files of each project, by snapshot generation.

Documents are immutable versions: ``(project, path, valid_from)`` with the file's
metadata and content, or a tombstone (``deleted: true``) when the path left the
repository. A reader takes the project's ``generation`` g and, for each path,
sees the newest version with ``valid_from <= g`` (none when that is a tombstone).
A sync to g+1 only *inserts* versions with ``valid_from = g+1``; readers of g see
none of them until the project's pointer moves (one update in
:mod:`vllmbench.store.projects`), so the switch is atomic without multi-document
transactions (FerretDB v1 has none).

Why insert-only: FerretDB v1 (SQLite) rewrites a document by scanning its table,
so an update costs time in proportion to the collection, while an insert does not;
a sync after one change in a repository of thousands of files stays cheap. Old
versions are deleted in batches by :meth:`ConfigFileStore.compact` once enough of
them piled up; it keeps what readers of the current and previous generation see.
"""

from __future__ import annotations

import re
from typing import Any

from vllmbench.errors import NotFound
from vllmbench.models.projects import ConfigFile, ConfigFileContent, FileQuery
from vllmbench.store.mongo import translate

COLLECTION = "config_files"
_BATCH = 500
_NO_CONTENT = {"content": 0, "target": 0}


def ensure_indexes(db: Any) -> None:
    with translate("creating config file indexes"):
        db[COLLECTION].create_index([("project_id", 1), ("path", 1), ("valid_from", -1)])


def _newest(docs: Any, generation: int) -> dict[str, dict[str, Any]]:
    """Path -> the version a reader of ``generation`` sees (tombstones dropped)."""
    newest: dict[str, dict[str, Any]] = {}
    for doc in docs:
        if doc["valid_from"] <= generation:
            seen = newest.get(doc["path"])
            if seen is None or seen["valid_from"] < doc["valid_from"]:
                newest[doc["path"]] = doc
    return {path: doc for path, doc in newest.items() if not doc.get("deleted")}


class ConfigFileStore:
    def __init__(self, db: Any) -> None:
        self._c = db[COLLECTION]

    # -- writing a snapshot (the caller holds the project's sync lease) ----------------

    def undo(self, project_id: str, generation: int) -> None:
        """Forget what an unfinished sync from ``generation`` wrote."""
        with translate("cleaning up an unfinished sync"):
            self._c.delete_many({"project_id": project_id, "valid_from": {"$gt": generation}})

    def stage(self, project_id: str, generation: int, *, upserts: list[dict[str, Any]], deleted: list[str]) -> None:
        """Insert generation ``generation``: the new versions and a tombstone per deleted path."""
        docs = [{**doc, "deleted": False} for doc in upserts]
        docs += [{"path": path, "deleted": True} for path in deleted]
        docs = [{**doc, "_id": f"{project_id}:{generation}:{doc['path']}", "project_id": project_id,
                 "valid_from": generation} for doc in docs]
        with translate("writing the new snapshot"):
            for start in range(0, len(docs), _BATCH):
                self._c.insert_many(docs[start:start + _BATCH], ordered=False)

    def compact(self, project_id: str, generation: int) -> int:
        """Delete versions readers of ``generation`` and ``generation - 1`` cannot see; returns how many."""
        with translate("compacting file versions"):
            docs = list(self._c.find({"project_id": project_id}, {"path": 1, "valid_from": 1, "deleted": 1}))
            keep = {doc["_id"] for view in (generation, generation - 1)
                    for doc in _newest(docs, view).values()}
            paths_kept = {doc["path"] for doc in docs if doc["_id"] in keep}
            # a tombstone stays while an older version of its path does (it hides it)
            keep |= {doc["_id"] for doc in docs if doc.get("deleted") and doc["path"] in paths_kept
                     and doc["valid_from"] <= generation}
            doomed = [doc["_id"] for doc in docs if doc["_id"] not in keep]
            for start in range(0, len(doomed), _BATCH):
                self._c.delete_many({"_id": {"$in": doomed[start:start + _BATCH]}})
        return len(doomed)

    def delete_project(self, project_id: str) -> None:
        with translate("deleting a project's files"):
            self._c.delete_many({"project_id": project_id})

    # -- reading ----------------------------------------------------------------------

    def _view(self, project_id: str, generation: int, selector: dict[str, Any] | None = None,
              projection: dict[str, int] | None = None) -> dict[str, dict[str, Any]]:
        query = {"project_id": project_id, "valid_from": {"$lte": generation}, **(selector or {})}
        return _newest(self._c.find(query, projection), generation)

    def current_shas(self, project_id: str, generation: int) -> dict[str, str]:
        with translate("reading the snapshot's blob shas"):
            view = self._view(project_id, generation, projection={"path": 1, "sha": 1, "valid_from": 1,
                                                                  "deleted": 1})
        return {path: doc["sha"] for path, doc in view.items()}

    def open_paths(self, project_id: str, generation: int) -> list[str]:
        return sorted(self.current_shas(project_id, generation))

    def get(self, project_id: str, generation: int, path: str) -> ConfigFileContent:
        with translate(f"reading {path}"):
            found = self._view(project_id, generation, {"path": path}).get(path)
        if found is None:
            raise NotFound(f"no file {path!r} in project {project_id!r} (at its last sync); "
                           "GET /projects/{id}/files lists them")
        return ConfigFileContent.model_validate(_public(found))

    def list(self, project_id: str, generation: int, query: FileQuery) -> list[ConfigFile]:
        selector: dict[str, Any] = {}
        if query.folder and query.folder.strip("/"):
            selector["path"] = {"$regex": "^" + re.escape(query.folder.strip("/") + "/")}
        with translate(f"listing the files of project {project_id!r}"):
            view = self._view(project_id, generation, selector, _NO_CONTENT)
        chosen = [doc for _, doc in sorted(view.items())
                  if (not query.kind or doc.get("kind") == query.kind)
                  and (not query.status or doc.get("status") == query.status)]
        return [ConfigFile.model_validate(_public(doc)) for doc in chosen[query.offset:query.offset + query.limit]]


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    keep = ConfigFileContent.model_fields
    return {key: value for key, value in doc.items() if key in keep}
