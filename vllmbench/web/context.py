"""What a handler receives: the request's context and a way to shape a reply."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vllmbench.events import emit, make_event

if TYPE_CHECKING:
    import flask
    from pymongo.database import Database

    from vllmbench.settings import Settings
    from vllmbench.web.runtime import Runtime


@dataclass
class Reply:
    """A body with a chosen status and headers (ETag, Location, Retry-After...)."""

    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


class Context:
    def __init__(self, runtime: "Runtime", request: "flask.Request | None", request_id: str) -> None:
        self._runtime = runtime
        self.request = request
        self.request_id = request_id
        self.log = logging.getLogger(f"vllmbench.{runtime.name}")

    @property
    def settings(self) -> "Settings":
        return self._runtime.settings

    @property
    def db(self) -> "Database[dict[str, Any]]":
        """This function's database; its indexes exist (on_start ran)."""
        return self._runtime.database()

    @property
    def runtime(self) -> "Runtime":
        return self._runtime

    def emit(self, event_type: str, data: Any, *, subject: str | None = None, id: str | None = None) -> bool:
        event = make_event(event_type, self._runtime.source, data, event_id=id, subject=subject)
        return emit(self.settings.broker_url, event)
