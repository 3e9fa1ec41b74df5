"""Reading and validating request bodies and query strings into pydantic models."""

from __future__ import annotations

import functools
import importlib
import json
import typing
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from vllmbench.errors import PayloadTooLarge, UserError, ValidationFailed

if TYPE_CHECKING:
    import flask


def resolve(spec: Any) -> Any:
    """A route's body, query or event data type; ``"module:Name"`` is imported on first use,
    so that a function's models stay off its import path (cold start)."""
    return _import_type(spec) if isinstance(spec, str) else spec


@functools.cache
def _import_type(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def read_body(request: "flask.Request", limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes (413) whether or not a length was sent."""
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"request body is {length} bytes; the limit is {limit} bytes")
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
    return data


def _reject_constant(name: str) -> Any:
    raise UserError(f"body is not valid JSON: {name} is not a number JSON allows")


def parse_json(data: bytes, *, max_depth: int) -> Any:
    """Strict JSON: no NaN/Infinity, nesting at most ``max_depth`` levels."""
    if not data.strip():
        raise UserError("request body is empty; expected a JSON document")
    try:
        value = json.loads(data, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise UserError("request body is not UTF-8 text; expected a JSON document") from exc
    except json.JSONDecodeError as exc:
        raise UserError(f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise UserError(f"request body is nested deeper than {max_depth} levels") from exc
    if _depth(value) > max_depth:
        raise UserError(f"request body is nested deeper than {max_depth} levels")
    return value


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in item)
    return deepest


def validation_details(exc: ValidationError, *, prefix: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """One entry per wrong field: where, what is wrong, what was expected."""
    details = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = [*prefix, *[str(part) for part in error["loc"]]]
        entry = {"loc": ".".join(loc) or "(body)", "msg": error["msg"], "type": error["type"]}
        entry["expected"] = _expected(error)
        details.append(entry)
    return details


def _expected(error: Any) -> str:
    ctx = error.get("ctx") or {}
    if "expected" in ctx:
        return str(ctx["expected"])
    msg = error["msg"]
    if msg.startswith("Input should be "):
        return msg[len("Input should be "):]
    if error["type"] == "missing":
        return "a value: this field is required"
    if error["type"] == "extra_forbidden":
        return "no such field: unknown fields are refused"
    return msg


def validate(model: Any, value: Any, *, where: str) -> Any:
    """``value`` validated as ``model`` (a pydantic model or any type), or 422 with details."""
    try:
        if isinstance(model, type) and issubclass(model, BaseModel):
            return model.model_validate(value)
        return TypeAdapter(model).validate_python(value)
    except ValidationError as exc:
        details = validation_details(exc, prefix=(where,))
        first = details[0]
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        raise ValidationFailed(f"{first['loc']}: {first['msg']}{more}", details=details) from exc


def query_to_dict(model: type[BaseModel], args: "flask.Request.args") -> dict[str, Any]:  # type: ignore[name-defined]
    """Query string to a dict for ``model``: list fields take repeated or comma-separated values."""
    known = model.model_fields
    result: dict[str, Any] = {}
    for key in args.keys():
        values = args.getlist(key)
        field = known.get(key)
        if field is not None and _is_list(field.annotation):
            result[key] = [part for value in values for part in value.split(",") if part]
        else:
            result[key] = values[-1] if len(values) == 1 else values
    return result


def _is_list(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, set):
        return True
    return any(_is_list(arg) for arg in typing.get_args(annotation)) if origin is not None else False
