"""The OpenAPI 3.1 document of a function, generated from its routes' pydantic models."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, TypeAdapter

from vllmbench.web.bodies import resolve

if TYPE_CHECKING:
    from vllmbench.web.app import FunctionApp

_PATH_ARG = re.compile(r"<(?:(\w+):)?(\w+)>")
REF = "#/components/schemas/{model}"

ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "machine-readable code"},
        "message": {"type": "string", "description": "what is wrong and what was expected"},
        "details": {"type": "array", "items": {"type": "object", "properties": {
            "loc": {"type": "string"}, "msg": {"type": "string"}, "type": {"type": "string"},
            "expected": {"type": "string"}}}},
    },
    "required": ["error", "message"],
}


def build(app: "FunctionApp") -> dict[str, Any]:
    components: dict[str, Any] = {"Error": ERROR_SCHEMA}
    paths: dict[str, Any] = {}
    for route in app.routes:
        path = _PATH_ARG.sub(lambda m: "{" + m.group(2) + "}", route.path)
        operation: dict[str, Any] = {
            "summary": route.summary,
            "operationId": f"{route.handler.__name__}_{route.method.lower()}_{len(paths)}",
            "tags": [route.tag or app.name],
            "parameters": [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for _, name in _PATH_ARG.findall(route.path)
            ],
            "responses": _responses(route, components),
        }
        if route.query is not None:
            operation["parameters"] += _query_parameters(resolve(route.query), components)
        if route.body is not None:
            operation["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": _schema(resolve(route.body), components)}}}
        elif route.raw_body:
            operation["requestBody"] = {"required": True, "content": {"*/*": {"schema": {}}}}
        if route.tag == "events" and app.events:
            operation["description"] = "Event types handled: " + ", ".join(
                f"`{t}` ({h.summary})" if h.summary else f"`{t}`" for t, h in sorted(app.events.items()))
        if not route.public:
            operation["security"] = [{"bearer": []}]
        paths.setdefault(path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": app.title, "version": _version(), "description": app.description},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }


def _responses(route: Any, components: dict[str, Any]) -> dict[str, Any]:
    schema = _schema(resolve(route.response), components) if route.response else {}
    successes = {route.status: "success", **(route.also or {})}
    responses: dict[str, Any] = {}
    for status, description in sorted(successes.items()):
        responses[str(status)] = {"description": description}
        if status != 204:
            responses[str(status)]["content"] = {media: {"schema": schema} for media in route.media}
    responses["default"] = {"description": "error (every error has this body)", "content": {
        "application/json": {"schema": {"$ref": REF.format(model="Error")}}}}
    return responses


def _schema(model: Any, components: dict[str, Any]) -> dict[str, Any]:
    schema = TypeAdapter(model).json_schema(ref_template=REF)
    components.update(schema.pop("$defs", {}))
    if isinstance(model, type) and issubclass(model, BaseModel):
        components[model.__name__] = schema
        return {"$ref": REF.format(model=model.__name__)}
    return schema


def _query_parameters(model: type[BaseModel], components: dict[str, Any]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    components.update(schema.pop("$defs", {}))
    required = set(schema.get("required", []))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": prop,
         **({"description": prop["description"]} if "description" in prop else {})}
        for name, prop in schema.get("properties", {}).items()
    ]


def _version() -> str:
    import vllmbench

    return vllmbench.__version__
