"""Events the broker gave up on (the Triggers' dead-letter sink)."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from vllmbench.query import PageQuery, cursor_filter
from vllmbench.store.events import event_key
from vllmbench.store.mongo import translate
from vllmbench.store.paging import page

COLLECTION = "dead_letters"


class DeadLetters:
    def __init__(self, db: Any) -> None:
        self.collection = db[COLLECTION]

    def add(self, attributes: dict[str, Any], body: bytes) -> bool:
        from pymongo.errors import DuplicateKeyError

        key = event_key(str(attributes.get("source")), str(attributes.get("id")))
        error_data = attributes.get("knativeerrordata")
        doc = {
            "_id": key, "time": dt.datetime.now(dt.timezone.utc),
            "event": {k: str(v) for k, v in attributes.items() if not k.startswith("knativeerror")},
            "error": {"code": attributes.get("knativeerrorcode"), "destination": attributes.get("knativeerrordest"),
                      "response": _decode(error_data)},
            "body": body.decode(errors="replace")[:100_000],
        }
        with translate("storing a dead letter"):
            try:
                self.collection.insert_one(doc)
            except DuplicateKeyError:
                return False
        return True

    def list(self, query: PageQuery) -> dict[str, Any]:
        return page(self.collection, cursor_filter(query), query,
                    lambda d: {**{k: v for k, v in d.items() if k != "_id"}, "id": d["_id"]})


def _decode(value: Any) -> str | None:
    if not value:
        return None
    try:
        return base64.b64decode(value).decode(errors="replace")
    except (ValueError, TypeError):
        return str(value)
