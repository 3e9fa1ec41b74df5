"""Plain REST calls to a Kubernetes API server through the ``kubernetes`` client's
connection (TLS, tokens, kubeconfig contexts and exec plugins come from it), with
every failure translated into the project's errors at this boundary.

Requests are built by hand for the few kinds vllmbench applies (:data:`KINDS`):
no API discovery (hundreds of milliseconds on the first request), no model classes
(objects stay plain dicts, as the reconcile engine reads them).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from vllmbench.errors import (
    BadGateway,
    Conflict,
    DependencyUnavailable,
    Forbidden,
    NotFound,
    UserError,
    ValidationFailed,
    VllmbenchError,
)
from vllmbench.logs import scrub
from vllmbench.runtimes.base import Kind, ObjectRef, kind_of

CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 30.0


def collection_path(kind: Kind, namespace: str | None) -> str:
    base = f"/api/{kind.version}" if not kind.group else f"/apis/{kind.group}/{kind.version}"
    if kind.namespaced and namespace:
        return f"{base}/namespaces/{quote(namespace, safe='')}/{kind.plural}"
    return f"{base}/{kind.plural}"


def object_path(ref: ObjectRef) -> str:
    kind = _kind(ref.api_version, ref.kind)
    return f"{collection_path(kind, ref.namespace or None)}/{quote(ref.name, safe='')}"


def _kind(api_version: str, kind: str) -> Kind:
    try:
        return kind_of(api_version, kind)
    except KeyError:
        raise UserError(f"kind {kind} ({api_version}) is not one vllmbench applies") from None


class Api:
    """Requests on one ``kubernetes.client.ApiClient``; answers are JSON dicts."""

    def __init__(self, api_client: Any) -> None:
        self.client = api_client

    @property
    def host(self) -> str:
        return str(self.client.configuration.host)

    def request(self, method: str, path: str, *, query: dict[str, Any] | None = None, body: Any = None,
                content_type: str = "application/json", stream: bool = False,
                read_timeout_s: float | None = READ_TIMEOUT_S, what: str = "") -> Any:
        """One request; the parsed JSON answer (or the raw response with ``stream``)."""
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            method, url, headers, body, _ = self.client.param_serialize(
                method, path, query_params=params, header_params=headers, body=body, auth_settings=["BearerToken"])
            response = self.client.call_api(method, url, header_params=headers, body=body,
                                            _request_timeout=(CONNECT_TIMEOUT_S, read_timeout_s))
        except VllmbenchError:
            raise
        except Exception as exc:  # urllib3's connection errors, the client's own ApiException
            status = getattr(exc, "status", None)
            if status:
                raise translate(int(status), getattr(exc, "body", None) or "", what or path) from exc
            raise DependencyUnavailable("kubernetes", f"API server {self.host} cannot be reached ({what or path}): "
                                        f"{_short(exc)}") from exc
        if stream:
            if not 200 <= response.status < 300:
                data = response.response.read()
                response.response.release_conn()
                raise translate(response.status, data, what or path)
            return response.response
        data = response.read()
        if not 200 <= response.status < 300:
            raise translate(response.status, data, what or path)
        return json.loads(data) if data else {}

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)


def translate(status: int, body: Any, what: str) -> VllmbenchError:
    """The project's error for an API answer ``status`` with a Status ``body``."""
    detail = _status(body)
    message = scrub(detail.get("message") or f"HTTP {status}")[:600]
    if status == 500 and "failed to create typed patch object" in message:
        # Server-side apply answers 500 for a manifest its schema cannot hold (an unknown or
        # misspelt field, a wrong type): the object is wrong, not the server.
        field = message.rsplit("): ", 1)[-1]
        return ValidationFailed(f"{what}: {field}", details=[{"loc": field.split(":")[0].lstrip("."),
                                                              "msg": field, "type": "schema",
                                                              "expected": "a field the kind's schema declares"}])
    if status == 404:
        return NotFound(f"{what}: {message}")
    if status == 409:
        return Conflict(f"{what}: {message}")
    if status == 422:
        causes = (detail.get("details") or {}).get("causes") or []
        details = [{"loc": c.get("field") or "(object)", "msg": scrub(c.get("message") or ""),
                    "type": c.get("reason") or "invalid", "expected": "a value the API accepts"} for c in causes]
        return ValidationFailed(f"{what}: {message}", details=details)
    if status == 403:
        return Forbidden(f"{what}: the API server refused it: {message}")
    if status == 401:
        return BadGateway(f"{what}: the API server refused the credentials: {message}")
    if status in (400, 413, 415):
        return UserError(f"{what}: {message}")
    return DependencyUnavailable("kubernetes", f"{what}: the API server answered {status}: {message}")


def _status(body: Any) -> dict[str, Any]:
    if isinstance(body, (bytes, bytearray)):
        body = body.decode(errors="replace")
    if isinstance(body, str):
        try:
            parsed = json.loads(body)
        except ValueError:
            return {"message": body.strip()[:300]}
        return parsed if isinstance(parsed, dict) else {}
    return body if isinstance(body, dict) else {}


def _short(exc: Exception) -> str:
    text = scrub(str(exc))
    return text[:300]
