"""Parsing a CloudEvent 1.0 from an HTTP request, binary or structured mode."""

from __future__ import annotations

import json
from typing import Any

from vllmbench.errors import UserError

REQUIRED = ("id", "source", "specversion", "type")


def parse(headers: Any, body: bytes) -> Any:
    """The CloudEvent in the request, or a 400 that names what is missing or wrong."""
    from cloudevents import exceptions
    from cloudevents.http import from_http

    content_type = (headers.get("Content-Type") or "").lower()
    if content_type.startswith("application/cloudevents+json"):
        _check_structured(body)
    elif content_type.startswith("application/cloudevents-batch+json"):
        raise UserError("batched CloudEvents are not supported; send one event per request")
    else:
        missing = [name for name in REQUIRED if not headers.get(f"ce-{name}")]
        if missing:
            raise UserError(
                "not a CloudEvent: missing required attribute(s) "
                + ", ".join(missing)
                + " (binary mode: send them as headers " + ", ".join(f"ce-{m}" for m in missing)
                + "; structured mode: Content-Type application/cloudevents+json)"
            )
    try:
        event = from_http(dict(headers), body)
    except exceptions.GenericException as exc:
        raise UserError(f"malformed CloudEvent: {exc}") from exc
    if event["specversion"] != "1.0":
        raise UserError(f"unsupported CloudEvents specversion {event['specversion']!r}; expected '1.0'")
    return event


def _check_structured(body: bytes) -> None:
    try:
        document = json.loads(body or b"null")
    except ValueError as exc:
        raise UserError(f"structured CloudEvent is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise UserError("structured CloudEvent must be a JSON object")
    missing = [name for name in REQUIRED if not document.get(name)]
    if missing:
        raise UserError("malformed CloudEvent: missing required attribute(s) " + ", ".join(missing))
