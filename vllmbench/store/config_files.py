"""The mirrored configuration files of each project, by snapshot generation.

Every document is valid for the generations ``[valid_from, valid_to)``. A reader
takes the project's ``generation`` g and sees exactly the documents with
``valid_from <= g < valid_to``. A sync to g+1 inserts the new versions with
``valid_from = g+1`` and closes the replaced ones with ``valid_to = g+1``; readers
of g see none of it until the pointer moves (one update in
:mod:`vllmbench.store.projects`). Multi-document transactions are not needed
(FerretDB v1 has none). Leftovers of a sync that died before the switch are
undone by the next one; versions closed before the previous generation are
deleted, so a reader of the previous generation keeps its view.
"""

from __future__ import annotations

import re
from typing import Any

from vllmbench.errors import NotFound
from vllmbench.models.projects import ConfigFile, ConfigFileContent, FileQuery
from vllmbench.store.mongo import translate

COLLECTION = "config_files"
OPEN = 2**62  # valid_to of the versions no generation has replaced yet
_INSERT_BATCH = 500
_META = {"content": 0, "target": 0}


def ensure_indexes(db: Any) -> None:
    with translate("creating config file indexes"):
        db[COLLECTION].create_index([("project_id", 1), ("path", 1), ("valid_to", 1)])
        db[COLLECTION].create_index([("project_id", 1), ("valid_to", 1)])


def _visible(project_id: str, generation: int) -> dict[str, Any]:
    return {"project_id": project_id, "valid_from": {"$lte": generation}, "valid_to": {"$gt": generation}}


class ConfigFileStore:
    def __init__(self, db: Any) -> None:
        self._c = db[COLLECTION]

    # -- writing a snapshot (the caller holds the project's sync lease) ----------------

    def undo_unfinished(self, project_id: str, generation: int) -> None:
        """Forget what a sync that never switched from ``generation`` wrote."""
        with translate("cleaning up an unfinished sync"):
            self._c.delete_many({"project_id": project_id, "valid_from": {"$gt": generation}})
            self._c.update_many({"project_id": project_id, "valid_to": {"$gt": generation, "$lt": OPEN}},
                                {"$set": {"valid_to": OPEN}})

    def current_shas(self, project_id: str, generation: int) -> dict[str, str]:
        with translate("reading the snapshot's blob shas"):
            cursor = self._c.find(_visible(project_id, generation), {"path": 1, "sha": 1, "_id": 0})
            return {doc["path"]: doc["sha"] for doc in cursor}

    def stage(self, project_id: str, generation: int, *, upserts: list[dict[str, Any]],
              removed: list[str], replace_all: bool = False) -> None:
        """Write generation ``generation``: close replaced versions, insert the new ones."""
        with translate("writing the new snapshot"):
            if replace_all:
                self._c.update_many({"project_id": project_id, "valid_to": OPEN},
                                    {"$set": {"valid_to": generation}})
            else:
                closing = sorted(set(removed) | {doc["path"] for doc in upserts})
                for start in range(0, len(closing), _INSERT_BATCH):
                    self._c.update_many(
                        {"project_id": project_id, "valid_to": OPEN,
                         "path": {"$in": closing[start:start + _INSERT_BATCH]}},
                        {"$set": {"valid_to": generation}})
            docs = [{**doc, "project_id": project_id, "valid_from": generation, "valid_to": OPEN}
                    for doc in upserts]
            for start in range(0, len(docs), _INSERT_BATCH):
                self._c.insert_many(docs[start:start + _INSERT_BATCH], ordered=False)

    def collect(self, project_id: str, generation: int) -> None:
        """Delete versions no reader of ``generation`` or later can see."""
        with translate("deleting superseded file versions"):
            self._c.delete_many({"project_id": project_id, "valid_to": {"$lte": generation - 1}})

    def delete_project(self, project_id: str) -> None:
        with translate("deleting a project's files"):
            self._c.delete_many({"project_id": project_id})

    # -- reading ----------------------------------------------------------------------

    def get(self, project_id: str, generation: int, path: str) -> ConfigFileContent:
        with translate(f"reading {path}"):
            doc = self._c.find_one({**_visible(project_id, generation), "path": path})
        if doc is None:
            raise NotFound(f"no file {path!r} in project {project_id!r} (at its last sync); "
                           "GET /projects/{id}/files lists them")
        return ConfigFileContent.model_validate(_public(doc))

    def list(self, project_id: str, generation: int, query: FileQuery) -> list[ConfigFile]:
        selector = _visible(project_id, generation)
        if query.kind:
            selector["kind"] = query.kind
        if query.status:
            selector["status"] = query.status
        if query.folder and query.folder.strip("/"):
            selector["path"] = {"$regex": "^" + re.escape(query.folder.strip("/") + "/")}
        with translate(f"listing the files of project {project_id!r}"):
            cursor = self._c.find(selector, _META).sort("path", 1).skip(query.offset).limit(query.limit)
            return [ConfigFile.model_validate(_public(doc)) for doc in cursor]


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    keep = ConfigFileContent.model_fields
    return {key: value for key, value in doc.items() if key in keep}
