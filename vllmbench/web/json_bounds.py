"""What a schema lets through that strict JSON refuses, read off pydantic's core schema and the bytes.

A body is validated in one pass of pydantic's JSON parser (``bodies.parse_body``). That
parser already refuses what ``bodies.parse_json`` refuses (bad syntax, bad UTF-8, lone
surrogate escapes, integers of more than 4,300 digits), except three things: NaN and
Infinity, numbers beyond a float, and nesting deeper than our limit (its own is 200).
Those can reach a validated value only through a field the schema leaves free: ``Any``
(``dict[str, Any]``, an open model's extra fields), a float that admits non-finite
values, or a recursive type. ``bounds`` says, once per type, how deep a valid document
can nest (None: no bound) and whether a non-finite number can pass; the byte scans below
check a body only when the schema cannot.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

# Schema types that are one level of JSON nesting (an array or an object) ...
_ARRAYS = {"list", "tuple", "set", "frozenset", "deque", "generator"}
_OBJECTS = {"dict", "model-fields", "typed-dict", "dataclass-args", "frozendict", "ordered-dict", "counter"}
# ... and those that hold no JSON container (a float is handled on its own).
_SCALARS = {"none", "bool", "int", "decimal", "fraction", "str", "bytes", "date", "time", "datetime", "timedelta",
            "literal", "missing-sentinel", "enum", "url", "multi-host-url", "uuid", "complex", "invalid",
            "is-instance", "is-subclass", "callable", "ellipsis"}
# Keys of a schema that hold no schema the validator runs on JSON input.
_NOT_VALIDATED = {"metadata", "serialization", "computed_fields", "config", "cls", "ref", "schema_ref",
                  "python_schema", "default", "default_factory", "function", "expected"}


@dataclass(frozen=True)
class Bounds:
    depth: int | None  # the deepest a valid document nests; None: unbounded (free-form or recursive)
    non_finite: bool  # a valid document can hold NaN, Infinity or a float overflow


FREE = Bounds(None, True)


@functools.lru_cache(maxsize=128)
def bounds(model: Any) -> Bounds:
    """The bounds of ``model`` (a pydantic model or any type pydantic validates)."""
    from pydantic import BaseModel, TypeAdapter

    try:
        schema = (model.__pydantic_core_schema__ if isinstance(model, type) and issubclass(model, BaseModel)
                  else TypeAdapter(model).core_schema)
        if not isinstance(schema, dict):  # a model with a deferred build: build it
            model.model_rebuild(force=True)
            schema = model.__pydantic_core_schema__
        return _Walk().bounds(schema, allow_inf_nan=True)
    except Exception:  # a schema this walk does not know: check every body
        return FREE


class _Walk:
    def __init__(self) -> None:
        self.definitions: dict[str, dict[str, Any]] = {}
        self.visiting: set[str] = set()

    def bounds(self, schema: dict[str, Any], *, allow_inf_nan: bool) -> Bounds:
        kind = schema.get("type")
        if kind == "definitions":
            for definition in schema["definitions"]:
                self.definitions[definition["ref"]] = definition
        if kind == "definition-ref":
            ref = schema["schema_ref"]
            if ref in self.visiting:
                return Bounds(None, False)  # recursive: unbounded; its floats are counted where it starts
            self.visiting.add(ref)
            try:
                return self.bounds(self.definitions[ref], allow_inf_nan=allow_inf_nan)
            finally:
                self.visiting.discard(ref)
        if kind == "any" or kind == "json" or kind == "function-plain":
            return FREE  # anything: a free value, a JSON text parsed again, a function of the raw input
        if kind == "float":
            return Bounds(0, schema.get("allow_inf_nan", allow_inf_nan))
        if kind in _SCALARS:
            return Bounds(0, False)
        if kind in ("model", "typed-dict", "dataclass"):
            config = schema.get("config") or {}
            allow_inf_nan = config.get("allow_inf_nan", True)
            inner = schema.get("schema", schema)
            if inner.get("extra_behavior", config.get("extra_fields_behavior", "ignore")) != "forbid":
                return FREE  # unknown fields kept as they came, or skipped unread: any JSON at all
        if kind in _ARRAYS and "items_schema" not in schema:
            return FREE  # a bare list: items of any kind
        if kind == "dict" and "values_schema" not in schema:
            return FREE
        children = [self.bounds(child, allow_inf_nan=allow_inf_nan) for child in _subschemas(schema)]
        if not children and kind not in _ARRAYS | _OBJECTS:
            return FREE  # a schema type this walk does not know
        depth: int | None = max((c.depth for c in children if c.depth is not None), default=0)
        if any(c.depth is None for c in children):
            depth = None
        elif kind in _ARRAYS or kind in _OBJECTS:
            depth += 1
        return Bounds(depth, any(c.non_finite for c in children))


def _subschemas(schema: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    def collect(value: Any) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("type"), str):
                found.append(value)
            else:  # fields by name, tagged-union choices by tag
                for item in value.values():
                    collect(item)
        elif isinstance(value, (list, tuple)):  # union choices (maybe (schema, label)), tuple items
            for item in value:
                collect(item)

    for key, value in schema.items():
        if key not in _NOT_VALIDATED and key != "type" and key != "definitions":
            collect(value)
    return found


_NOT_STRUCTURE = bytes(set(range(256)) - set(b'"[]{}'))
_STRING = re.compile(rb'"[^"]*"')
_PAIR = re.compile(rb"\[\]|\{\}")


def nesting_depth(data: bytes, limit: int) -> int:
    """How deep the arrays and objects of the JSON text ``data`` nest (counted up to ``limit + 1``).

    C-speed passes over the bytes: drop escaped backslashes and quotes, keep only quotes
    and brackets, drop strings (brackets in text), then remove innermost pairs until none
    is left: one pass a level. ``data`` must be valid JSON (the parser said so).
    """
    structure = data.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    structure = _STRING.sub(b"", structure)
    depth = 0
    while structure and depth <= limit:
        inner = _PAIR.sub(b"", structure)
        if len(inner) == len(structure):
            break  # unbalanced: not JSON (the parser reports it)
        structure, depth = inner, depth + 1
    return depth


_NUMBER_SHAPE = bytes.maketrans(b"0123456789E-", b"0000000000e+")


def may_hold_non_finite(data: bytes) -> bool:
    """Whether the JSON text ``data`` may hold NaN, Infinity or a float beyond ~1.8e308.

    A superset, found by substring search: the tokens, an exponent of three digits or
    more, or a run of 200 digits (a mantissa big enough to overflow with a two-digit
    exponent). Text that merely looks so costs a precise check, never a wrong answer.
    """
    if b"NaN" in data or b"Infinity" in data:
        return True
    shape = data.translate(_NUMBER_SHAPE)
    return b"e000" in shape or b"e+000" in shape or b"0" * 200 in shape
