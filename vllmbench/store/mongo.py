"""Connection to a MongoDB-wire server (MongoDB or FerretDB) and error translation."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from vllmbench.errors import Conflict, DependencyUnavailable, ValidationFailed, VllmbenchError
from vllmbench.logs import scrub

if TYPE_CHECKING:
    from pymongo import MongoClient
    from pymongo.database import Database

# Auth failures and "not primary" style errors: the server is there but cannot serve.
_UNAVAILABLE_CODES = {6, 7, 13, 18, 89, 91, 189, 10107, 11600, 11602, 13435, 13436}


@contextlib.contextmanager
def translate(action: str = "database call") -> Iterator[None]:
    """Turn pymongo errors raised inside the block into the project's errors."""
    from pymongo import errors

    from bson.errors import BSONError

    try:
        yield
    except (BSONError, OverflowError) as exc:  # encoding the document failed: a value the database cannot hold
        raise ValidationFailed(f"{action}: a value cannot be stored (integers must fit in 64 bits, "
                               "text must be valid Unicode, keys must not start with '$')") from exc
    except errors.DuplicateKeyError as exc:
        raise Conflict(f"{action}: the document exists already") from exc
    except errors.ConnectionFailure as exc:  # refused, timed out, server selection failed
        raise DependencyUnavailable("mongodb", f"{action} failed: {_short(exc)}") from exc
    except errors.OperationFailure as exc:
        if exc.code in _UNAVAILABLE_CODES:
            raise DependencyUnavailable("mongodb", f"{action} refused: {_short(exc)}") from exc
        raise VllmbenchError(f"{action} failed: {_short(exc)}") from exc
    except errors.PyMongoError as exc:
        raise DependencyUnavailable("mongodb", f"{action} failed: {_short(exc)}") from exc


def _short(exc: Exception) -> str:
    text = scrub(str(exc).split(", Timeout:")[0])
    return text[:300]


class MongoStore:
    """A lazily connected client. Creating it does no I/O."""

    def __init__(self, url: str, *, timeout_ms: int = 2000, app_name: str = "vllmbench",
                 username: str | None = None, password: str | None = None, auth_source: str = "admin") -> None:
        self._url = url
        self._timeout_ms = timeout_ms
        self._app_name = app_name
        # A user given apart from the URL (each function its own: manifests/base/mongodb).
        self._credentials = ({"username": username, "password": password or "", "authSource": auth_source}
                             if username else {})
        self._client: MongoClient[dict[str, Any]] | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> "MongoClient[dict[str, Any]]":
        if self._client is None:
            with self._lock:
                if self._client is None:
                    from pymongo import MongoClient

                    with translate("connecting"):
                        self._client = MongoClient(
                            self._url,
                            serverSelectionTimeoutMS=self._timeout_ms,
                            connectTimeoutMS=self._timeout_ms,
                            # Reaching the server fails fast (503 in about timeout_ms); an answer
                            # may take long: FerretDB v1 sorts a large listing in memory.
                            socketTimeoutMS=max(self._timeout_ms * 30, 60000),
                            tz_aware=True,
                            appname=self._app_name,
                            retryWrites=False,
                            **self._credentials,
                        )
        return self._client

    def database(self, name: str) -> "Database[dict[str, Any]]":
        return self.client[name]

    def ping(self) -> None:
        with translate("ping"):
            self.client.admin.command("ping")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
