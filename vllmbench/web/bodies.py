"""Reading and validating request bodies and query strings into pydantic models."""

from __future__ import annotations

import functools
import importlib
import json
import re
import types
import typing
from typing import TYPE_CHECKING, Any


from vllmbench.errors import PayloadTooLarge, UserError, ValidationFailed

if TYPE_CHECKING:
    import flask
    from pydantic import BaseModel, TypeAdapter, ValidationError


def resolve(spec: Any) -> Any:
    """A route's body, query or event data type; ``"module:Name"`` is imported on first use,
    so that a function's models stay off its import path (cold start)."""
    return _import_type(spec) if isinstance(spec, str) else spec


@functools.cache
def _import_type(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


BODY_READ = "vllmbench.body_read"  # set in the WSGI environ once the whole body was read


class BodyTimeout(UserError):
    """The client did not send its body in time (408: the connection is closed)."""

    status = 408
    code = "request_timeout"


class UnsupportedMediaType(UserError):
    status = 415
    code = "unsupported_media_type"


def read_body(request: "flask.Request", limit: int, *, timeout_s: float | None = None) -> bytes:
    """The raw body, refusing more than ``limit`` bytes (413) whether or not a length was sent,
    and a body that has not arrived within ``timeout_s`` (408)."""
    from werkzeug.exceptions import ClientDisconnected

    from vllmbench.web import watchdog

    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"request body is {length} bytes; the limit is {limit} bytes")
    watch = watchdog.watch(request.environ, timeout_s) if timeout_s and length != 0 else None
    try:
        data = request.stream.read(limit + 1)
        cut_short = length is not None and len(data) < length
    except (ClientDisconnected, OSError):
        cut_short = True
    finally:
        late = watchdog.finish(watch)
    if late:
        raise BodyTimeout(f"the request body did not arrive within {timeout_s:g} s")
    if cut_short:
        raise UserError(f"the request body ended before its Content-Length of {length} bytes")
    if len(data) > limit:
        raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
    request.environ[BODY_READ] = True
    request._cached_data = data  # functions-framework's after-request read finds it read
    return data


def require_json(content_type: str | None) -> None:
    """A JSON body must say so: ``application/json`` or a ``+json`` type (415 otherwise)."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise UnsupportedMediaType(f"Content-Type is {media or 'missing'!r}; send the body as application/json")


def _reject_constant(name: str) -> Any:
    raise UserError(f"body is not valid JSON: {name} is not a number JSON allows")


def parse_json(data: bytes | str, *, max_depth: int, what: str = "request body") -> Any:
    """Strict JSON: no NaN/Infinity (nor numbers too large for a float), nesting at most
    ``max_depth`` levels, no text that cannot be written back as UTF-8 (lone surrogates)."""
    if not data.strip():
        raise UserError(f"{what} is empty; expected a JSON document")
    try:
        value = json.loads(data, parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise UserError(f"{what} is not UTF-8 text; expected a JSON document") from exc
    except json.JSONDecodeError as exc:
        raise UserError(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except RecursionError as exc:
        raise UserError(f"{what} is nested deeper than {max_depth} levels") from exc
    except ValueError as exc:  # int() of more than sys.get_int_max_str_digits() digits
        raise UserError(f"{what} holds a number with too many digits") from exc
    # Lone surrogates come only from \uD800-\uDFFF escapes: look at the strings only if one is there.
    raw = data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass")
    check_document(value, max_depth=max_depth, what=what, text=_SURROGATE_ESCAPE.search(raw) is not None)
    return value


def check_document(value: Any, *, max_depth: int, what: str = "request body", text: bool = True) -> None:
    """Refuse what a store or a JSON reader cannot take back: too deep, a non-finite number,
    and (when ``text``) a string or key with a lone UTF-16 surrogate. The error names where."""
    stack: list[tuple[Any, int, Any]] = [(value, 1, None)]
    while stack:
        item, level, loc = stack.pop()
        if isinstance(item, dict):
            if level > max_depth:
                raise UserError(f"{what} is nested deeper than {max_depth} levels")
            for key, child in item.items():
                if text and not _encodable(key):
                    raise UserError(f"{what}: the key at {_where(loc)} is not valid Unicode (a lone surrogate)")
                stack.append((child, level + 1, (loc, key)))
        elif isinstance(item, list):
            if level > max_depth:
                raise UserError(f"{what} is nested deeper than {max_depth} levels")
            stack.extend((child, level + 1, (loc, index)) for index, child in enumerate(item))
        elif isinstance(item, float):
            if item != item or item in (_INF, -_INF):
                raise UserError(f"{what}: the number at {_where(loc)} is out of range (NaN and Infinity "
                                "are not JSON numbers)")
        elif text and isinstance(item, str) and not _encodable(item):
            raise UserError(f"{what}: the text at {_where(loc)} is not valid Unicode (a lone surrogate)")


_INF = float("inf")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _where(loc: Any) -> str:
    parts: list[str] = []
    while loc is not None:
        loc, key = loc
        parts.append(str(key))
    return ".".join(reversed(parts)) or "(top level)"


def parse_body(model: Any, data: bytes, *, max_depth: int, where: str = "body") -> Any:
    """A JSON body validated as ``model`` (strict) in one pass of pydantic's JSON parser.

    Same answers as ``validate(model, parse_json(data), strict=True, text=data)``, at a
    fraction of the cost: the body is parsed once, in Rust, and what that parser admits
    but ``parse_json`` refuses (NaN, Infinity, numbers beyond a float, nesting past
    ``max_depth``) is looked for in the bytes only when the schema lets it through
    (``json_bounds``). A body the parser or the model refuses is read again by
    ``parse_json``, so that a malformed one keeps its precise 400 (line and column, where
    the NaN or the lone surrogate is) before any 422.
    """
    from pydantic import ValidationError

    from vllmbench.web import json_bounds

    try:
        value = _validate_json(_fast_type(model, data), data)
    except ValidationError as exc:
        parse_json(data, max_depth=max_depth)  # raises the 400 of a body that is not strict JSON
        if _fast_type(model, data) is not model:
            try:  # the errors as the declared type gives them (a union names its members)
                _validate_json(model, data)
            except ValidationError as full:
                exc = full
        raise _failed(exc, where) from exc
    shape = json_bounds.bounds(model)
    if shape.depth is None or shape.depth > max_depth:
        if json_bounds.nesting_depth(data, max_depth) > max_depth:
            raise UserError(f"request body is nested deeper than {max_depth} levels")
    if shape.non_finite and json_bounds.may_hold_non_finite(data):
        parse_json(data, max_depth=max_depth)
    return value


def _validate_json(model: Any, data: bytes) -> Any:
    from pydantic import BaseModel

    if isinstance(model, type) and issubclass(model, BaseModel):
        return model.model_validate_json(data, strict=True)
    return _adapter(model).validate_json(data, strict=True)


def _fast_type(model: Any, data: bytes) -> Any:
    """For ``Model | list[Model]``, the member the body's first byte picks: pydantic's smart
    union would also try the other. Errors are still reported as the union gives them."""
    members = _object_or_array(model)
    if members is None:
        return model
    start = _FIRST_BYTE.match(data)
    first = start.group(1) if start else b""
    return members[0] if first == b"{" else members[1] if first == b"[" else model


_FIRST_BYTE = re.compile(rb"[ \t\r\n]*(.)", re.DOTALL)


@functools.lru_cache(maxsize=64)
def _object_or_array(model: Any) -> tuple[Any, Any] | None:
    from pydantic import BaseModel

    if typing.get_origin(model) not in (typing.Union, types.UnionType):
        return None
    objects = [m for m in typing.get_args(model) if isinstance(m, type) and issubclass(m, BaseModel)]
    arrays = [m for m in typing.get_args(model) if typing.get_origin(m) is list]
    if len(objects) != 1 or len(arrays) != 1 or len(typing.get_args(model)) != 2:
        return None
    return objects[0], arrays[0]


def _failed(exc: "ValidationError", where: str) -> ValidationFailed:
    details = validation_details(exc, prefix=(where,))
    first = details[0]
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return ValidationFailed(f"{first['loc']}: {first['msg']}{more}", details=details)


def validation_details(exc: "ValidationError", *, prefix: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """One entry per wrong field: where, what is wrong, what was expected."""
    details = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = [*prefix, *[str(part) for part in error["loc"]]]
        # pydantic prefixes our validators' messages with "Value error, ": the reader needs the rest.
        entry = {"loc": ".".join(loc) or "(body)", "msg": error["msg"].removeprefix("Value error, "),
                 "type": error["type"]}
        entry["expected"] = _expected(error)
        details.append(entry)
    return details


def _expected(error: Any) -> str:
    ctx = error.get("ctx") or {}
    if "expected" in ctx:
        return str(ctx["expected"])
    msg = error["msg"].removeprefix("Value error, ")
    if msg.startswith("Input should be "):
        return msg[len("Input should be "):]
    if error["type"] == "missing":
        return "a value: this field is required"
    if error["type"] == "extra_forbidden":
        return "no such field: unknown fields are refused"
    return msg


def validate(model: Any, value: Any, *, where: str, strict: bool = False, text: bytes | str | None = None) -> Any:
    """``value`` validated as ``model`` (a pydantic model or any type), or 422 with details.

    ``strict``: no coercion ("0", true or 1.0 is not an int), for JSON documents, where
    the sender chose the types; validated as JSON (``text``, else ``value`` written
    back), where a date is text. Query strings are all text, so they are validated lax.
    """
    from pydantic import BaseModel, ValidationError  # on first use: pydantic is off the import path

    try:
        adapter = model if isinstance(model, type) and issubclass(model, BaseModel) else None
        if strict:
            document = text if text is not None else json.dumps(value)
            if adapter is not None:
                return adapter.model_validate_json(document, strict=True)
            return _adapter(model).validate_json(document, strict=True)
        if adapter is not None:
            return adapter.model_validate(value)
        return _adapter(model).validate_python(value)
    except ValidationError as exc:
        raise _failed(exc, where) from exc


@functools.lru_cache(maxsize=64)
def _adapter(model: Any) -> "TypeAdapter[Any]":
    from pydantic import TypeAdapter

    return TypeAdapter(model)


def query_to_dict(model: "type[BaseModel]", args: "flask.Request.args") -> dict[str, Any]:  # type: ignore[name-defined]
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
