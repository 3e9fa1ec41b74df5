"""What the MLflow service keeps: registered models (their cursors and aliases), model
versions as seen and written, the service's status, and the poll lease.

Records are stored as JSON text beside the few fields that are searched: MLflow tag
keys hold dots and file paths hold slashes, which MongoDB (and FerretDB) field names
may not. Reads are by ``_id`` or a small filter: these collections stay small.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from vllmbench.errors import NotFound, RetryableError
from vllmbench.models.mlflow import ModelVersionRecord, RegisteredModelRecord
from vllmbench.store.mongo import translate

MODELS = "mlflow_models"
VERSIONS = "mlflow_versions"
STATE = "mlflow_state"
STATUS_ID = "status"
LEASE_ID = "poll-lease"


class PollBusy(RetryableError):
    code = "poll_running"
    retry_after = 10


def ensure_indexes(db: Any) -> None:
    with translate("creating MLflow indexes"):
        db[VERSIONS].create_index([("model", 1), ("version", -1)])
        db[VERSIONS].create_index([("server", 1)])


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def version_id(model: str, version: int) -> str:
    return f"{model}:{int(version):012d}"  # ':' never occurs in a registered model's name


class MlflowStore:
    def __init__(self, db: Any) -> None:
        self._models = db[MODELS]
        self._versions = db[VERSIONS]
        self._state = db[STATE]

    # -- registered models ---------------------------------------------------------------
    def model(self, name: str) -> RegisteredModelRecord | None:
        with translate(f"reading registered model {name!r}"):
            doc = self._models.find_one({"_id": name})
        return None if doc is None else RegisteredModelRecord.model_validate_json(doc["record"])

    def save_model(self, record: RegisteredModelRecord, *, alias_files: dict[str, str] | None = None) -> None:
        doc: dict[str, Any] = {"record": record.model_dump_json(), "k8s_name": record.k8s_name}
        if alias_files is not None:
            doc["alias_files"] = json.dumps(alias_files)
        with translate(f"saving registered model {record.name!r}"):
            self._models.update_one({"_id": record.name}, {"$set": doc}, upsert=True)

    def alias_files(self, name: str) -> dict[str, str]:
        """path -> blob sha of the alias files we wrote for a model."""
        with translate(f"reading registered model {name!r}"):
            doc = self._models.find_one({"_id": name}, {"alias_files": 1})
        return json.loads(doc.get("alias_files") or "{}") if doc else {}

    def models(self) -> list[RegisteredModelRecord]:
        with translate("listing registered models"):
            docs = list(self._models.find({}, {"record": 1}))
        return sorted((RegisteredModelRecord.model_validate_json(d["record"]) for d in docs), key=lambda m: m.name)

    def model_for_k8s_name(self, k8s_name: str) -> str | None:
        with translate("finding a registered model by its Kubernetes name"):
            doc = self._models.find_one({"k8s_name": k8s_name}, {"_id": 1})
        return None if doc is None else doc["_id"]

    # -- versions ---------------------------------------------------------------------------
    def version(self, model: str, version: int) -> ModelVersionRecord | None:
        with translate(f"reading version {version} of {model!r}"):
            doc = self._versions.find_one({"_id": version_id(model, version)})
        return None if doc is None else ModelVersionRecord.model_validate_json(doc["record"])

    def save_version(self, record: ModelVersionRecord) -> None:
        doc = {"model": record.model, "version": record.version, "server": record.server,
               "record": record.model_dump_json()}
        with translate(f"saving version {record.version} of {record.model!r}"):
            self._versions.update_one({"_id": version_id(record.model, record.version)}, {"$set": doc}, upsert=True)

    def versions(self, model: str, *, limit: int = 50, before: int | None = None) -> list[ModelVersionRecord]:
        query: dict[str, Any] = {"model": model}
        if before is not None:
            query["version"] = {"$lt": before}
        with translate(f"listing versions of {model!r}"):
            docs = list(self._versions.find(query, {"record": 1, "version": 1}).sort("version", -1).limit(limit))
        return [ModelVersionRecord.model_validate_json(d["record"]) for d in docs]

    def version_numbers(self, model: str) -> list[int]:
        with translate(f"listing versions of {model!r}"):
            return sorted(int(d["version"]) for d in self._versions.find({"model": model}, {"version": 1}))

    def version_of_server(self, server: str) -> ModelVersionRecord | None:
        """The version whose ModelServer is ``<namespace>/<name>``."""
        with translate(f"finding the version of server {server!r}"):
            doc = self._versions.find_one({"server": server}, {"record": 1})
        return None if doc is None else ModelVersionRecord.model_validate_json(doc["record"])

    # -- status -----------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        with translate("reading the MLflow service's status"):
            doc = self._state.find_one({"_id": STATUS_ID})
        return json.loads(doc["status"]) if doc else {}

    def update_status(self, **changes: Any) -> dict[str, Any]:
        """Merge ``changes`` into the status (one document; one poll writes it at a time)."""
        status = {**self.status(), **json.loads(json.dumps(changes, default=_json_default))}
        with translate("saving the MLflow service's status"):
            self._state.update_one({"_id": STATUS_ID}, {"$set": {"status": json.dumps(status)}}, upsert=True)
        return status

    # -- one poll at a time -------------------------------------------------------------------
    def acquire(self, holder: str, *, lease_s: float = 300, wait_s: float = 0) -> None:
        """Take the poll lease (waiting up to ``wait_s``); :class:`PollBusy` when another poll holds it."""
        from pymongo.errors import DuplicateKeyError

        deadline = time.monotonic() + wait_s
        delay = 0.05
        while True:
            now = _now()
            lease = {"holder": holder, "expires_at": now + dt.timedelta(seconds=lease_s)}
            with translate("taking the poll lease"):
                try:
                    self._state.insert_one({"_id": LEASE_ID, **lease})
                    return
                except DuplicateKeyError:
                    taken = self._state.update_one(
                        {"_id": LEASE_ID, "$or": [{"holder": None}, {"expires_at": {"$lt": now}}]}, {"$set": lease})
                    if taken.matched_count == 1:
                        return
            if time.monotonic() >= deadline:
                raise PollBusy("another poll of MLflow is running; try again in a few seconds")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def release(self, holder: str) -> None:
        with translate("releasing the poll lease"):
            self._state.update_one({"_id": LEASE_ID, "holder": holder}, {"$set": {"holder": None}})


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    return str(value)


def require_model(store: MlflowStore, name: str) -> RegisteredModelRecord:
    found = store.model(name)
    if found is None:
        raise NotFound(f"no registered model {name!r} is followed here; GET /models lists those that are")
    return found
