"""The mirrored configuration files of each project, by snapshot generation.

One document per file path (``_id = "<project>:<path>"``) holds the versions of
that file, each valid for the generations ``[valid_from, valid_to)``. A reader
takes the project's ``generation`` g and picks the version with
``valid_from <= g < valid_to``. A sync to g+1 appends the new versions and closes
the replaced ones with ``valid_to = g+1``; readers of g see none of it until the
project's pointer moves (one update in :mod:`vllmbench.store.projects`). No
multi-document transaction is needed (FerretDB v1 has none).

Every write of an incremental sync addresses a document by ``_id``: FerretDB v1
answers those without scanning the collection, which is what keeps a sync after one
change cheap in a repository of thousands of files. Versions no reader can see any
more (closed before the previous generation) are dropped when the document is next
written; a path deleted at generation g is removed by the sync after g.
"""

from __future__ import annotations

import re
from typing import Any

from vllmbench.errors import NotFound
from vllmbench.models.projects import ConfigFile, ConfigFileContent, FileQuery
from vllmbench.store.mongo import translate

COLLECTION = "config_files"
OPEN = 2**62  # valid_to of a version no generation has replaced yet
_BATCH = 500


def ensure_indexes(db: Any) -> None:
    with translate("creating config file indexes"):
        db[COLLECTION].create_index([("project_id", 1)])


def _key(project_id: str, path: str) -> str:
    return f"{project_id}:{path}"


def _visible(doc: dict[str, Any], generation: int) -> dict[str, Any] | None:
    for version in doc.get("versions", []):
        if version["valid_from"] <= generation < version["valid_to"]:
            return version
    return None


class ConfigFileStore:
    def __init__(self, db: Any) -> None:
        self._c = db[COLLECTION]

    # -- writing a snapshot (the caller holds the project's sync lease) ----------------

    def undo(self, project_id: str, generation: int, paths: list[str] | None) -> None:
        """Forget what an unfinished sync from ``generation`` wrote (``paths`` None: it was a full sync)."""
        with translate("cleaning up an unfinished sync"):
            docs = (self._c.find({"project_id": project_id}) if paths is None
                    else (self._c.find_one({"_id": _key(project_id, p)}) for p in paths))
            for doc in docs:
                if doc is None:
                    continue
                versions = [{**v, "valid_to": OPEN if v["valid_to"] > generation else v["valid_to"]}
                            for v in doc["versions"] if v["valid_from"] <= generation]
                self._write(doc["_id"], project_id, doc["path"], versions)

    def stage(self, project_id: str, generation: int, *, upserts: list[dict[str, Any]],
              removed: list[str], first: bool = False) -> None:
        """Write generation ``generation``: close the replaced versions, add the new ones.

        ``first``: the project has no documents yet (first sync), so plain inserts do.
        """
        with translate("writing the new snapshot"):
            if first:
                docs = [{"_id": _key(project_id, d["path"]), "project_id": project_id, "path": d["path"],
                         "versions": [{**d, "valid_from": generation, "valid_to": OPEN}]} for d in upserts]
                for start in range(0, len(docs), _BATCH):
                    self._c.insert_many(docs[start:start + _BATCH], ordered=False)
                return
            new_by_path = {d["path"]: d for d in upserts}
            for path in sorted(set(removed) | set(new_by_path)):
                doc = self._c.find_one({"_id": _key(project_id, path)})
                versions = [v for v in (doc or {}).get("versions", []) if v["valid_to"] > generation - 1]
                versions = [{**v, "valid_to": generation} if v["valid_to"] == OPEN else v for v in versions]
                if path in new_by_path:
                    versions.append({**new_by_path[path], "valid_from": generation, "valid_to": OPEN})
                self._write(_key(project_id, path), project_id, path, versions)

    def open_paths(self, project_id: str, generation: int) -> list[str]:
        """Paths with a version visible at ``generation`` (scans the project: full syncs only)."""
        with translate("listing the snapshot's paths"):
            return [doc["path"] for doc in self._c.find({"project_id": project_id}, {"versions.content": 0})
                    if _visible(doc, generation) is not None]

    def retire(self, project_id: str, paths: list[str], generation: int) -> None:
        """Delete the documents of ``paths`` that no reader of ``generation`` or later can see."""
        with translate("deleting files gone from the snapshot"):
            for path in paths:
                doc = self._c.find_one({"_id": _key(project_id, path)}, {"versions.content": 0})
                if doc is not None and all(v["valid_to"] <= generation for v in doc["versions"]):
                    self._c.delete_one({"_id": doc["_id"]})

    def delete_project(self, project_id: str) -> None:
        with translate("deleting a project's files"):
            self._c.delete_many({"project_id": project_id})

    def _write(self, key: str, project_id: str, path: str, versions: list[dict[str, Any]]) -> None:
        if versions:
            self._c.update_one({"_id": key}, {"$set": {"project_id": project_id, "path": path, "versions": versions}},
                               upsert=True)
        else:
            self._c.delete_one({"_id": key})

    # -- reading ----------------------------------------------------------------------

    def current_shas(self, project_id: str, generation: int) -> dict[str, str]:
        with translate("reading the snapshot's blob shas"):
            found = {}
            for doc in self._c.find({"project_id": project_id}, {"versions.content": 0}):
                version = _visible(doc, generation)
                if version is not None:
                    found[doc["path"]] = version["sha"]
            return found

    def get(self, project_id: str, generation: int, path: str) -> ConfigFileContent:
        with translate(f"reading {path}"):
            doc = self._c.find_one({"_id": _key(project_id, path)})
        version = _visible(doc, generation) if doc else None
        if version is None:
            raise NotFound(f"no file {path!r} in project {project_id!r} (at its last sync); "
                           "GET /projects/{id}/files lists them")
        return ConfigFileContent.model_validate(_public(version))

    def list(self, project_id: str, generation: int, query: FileQuery) -> list[ConfigFile]:
        prefix = query.folder.strip("/") + "/" if query.folder and query.folder.strip("/") else ""
        with translate(f"listing the files of project {project_id!r}"):
            selector: dict[str, Any] = {"project_id": project_id}
            if prefix:
                selector["path"] = {"$regex": "^" + re.escape(prefix)}
            docs = list(self._c.find(selector, {"versions.content": 0, "versions.target": 0}))
        chosen = []
        for doc in docs:
            version = _visible(doc, generation)
            if version is None or (query.kind and version["kind"] != query.kind):
                continue
            if query.status and version["status"] != query.status:
                continue
            chosen.append(version)
        chosen.sort(key=lambda v: v["path"])
        return [ConfigFile.model_validate(_public(v)) for v in chosen[query.offset:query.offset + query.limit]]


def _public(version: dict[str, Any]) -> dict[str, Any]:
    keep = ConfigFileContent.model_fields
    return {key: value for key, value in version.items() if key in keep}
