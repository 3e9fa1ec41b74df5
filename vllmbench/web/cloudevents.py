"""Parsing a CloudEvent 1.0 from an HTTP request, binary or structured mode.

The JSON of an event (the whole document in structured mode, the data in binary
mode) is held to the same rules as any request body (``bodies.parse_json``): no
NaN or Infinity, bounded nesting, no lone surrogates; the SDK parses it only after.
"""

from __future__ import annotations

import json
from typing import Any

from vllmbench.errors import UserError
from vllmbench.web.bodies import parse_json

REQUIRED = ("id", "source", "specversion", "type")
MAX_DEPTH = 64


def parse(headers: Any, body: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """The CloudEvent in the request, or a 400 that names what is missing or wrong."""
    from cloudevents import exceptions
    from cloudevents.http import from_http

    content_type = (headers.get("Content-Type") or "").lower()
    if content_type.startswith("application/cloudevents+json"):
        _check_structured(parse_json(body, max_depth=max_depth, what="structured CloudEvent"))
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

    refused: list[UserError] = []

    def data_of(content: Any) -> Any:
        try:
            return _data(content, max_depth)
        except UserError as exc:  # the SDK would wrap it in its own words
            refused.append(exc)
            raise

    try:
        event = from_http(dict(headers), body, data_unmarshaller=data_of)
    except exceptions.GenericException as exc:
        if refused:
            raise refused[0] from None
        # The SDK's text may quote the body: name the kind of problem only.
        raise UserError(f"malformed CloudEvent: {_SDK_PROBLEMS.get(type(exc).__name__, 'it cannot be read')}; "
                        "CloudEvents 1.0 needs the attributes id, source, specversion and type") from exc
    if event["specversion"] != "1.0":
        raise UserError(f"unsupported CloudEvents specversion {event['specversion']!r}; expected '1.0'")
    return event


_SDK_PROBLEMS = {
    "MissingRequiredFields": "a required attribute is missing",
    "InvalidRequiredFields": "a required attribute is invalid",
    "InvalidStructuredJSON": "the document is not a JSON object",
    "DataUnmarshallerError": "its data cannot be read",
}


def _data(content: Any, max_depth: int) -> Any:
    """Event data: strict JSON when it is JSON, else the text or bytes as sent (as the SDK does)."""
    if content in (None, b"", ""):
        return None
    if not content.strip():
        return content
    try:
        return parse_json(content, max_depth=max_depth, what="event data")
    except UserError as exc:
        if isinstance(exc.__cause__, (json.JSONDecodeError, UnicodeDecodeError)):
            return content
        raise


def _check_structured(document: Any) -> None:
    if not isinstance(document, dict):
        raise UserError("structured CloudEvent must be a JSON object")
    missing = [name for name in REQUIRED if not document.get(name)]
    if missing:
        raise UserError("malformed CloudEvent: missing required attribute(s) " + ", ".join(missing))
    wrong = [name for name in REQUIRED if not isinstance(document[name], str)]
    if wrong:
        raise UserError("malformed CloudEvent: attribute(s) " + ", ".join(wrong) + " must be strings")
