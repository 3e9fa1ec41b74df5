"""Calling another function over HTTP (functions never import each other).

The evaluations read profiles and templates from the Manager, results from the Results
service, and ask the vLLM service for servers; the deployer forwards the original
``POST /run`` to the evaluations. Plain ``urllib`` (nothing on the import path), the
API token when one is set, and the callee's errors translated: its 4xx passes on as
the same kind of error (with its message), a callee that is down or answers 5xx is
``DependencyUnavailable`` naming it, so the caller answers 503 with Retry-After.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from vllmbench.errors import (
    Conflict,
    DependencyUnavailable,
    Forbidden,
    NotFound,
    UserError,
    ValidationFailed,
    VllmbenchError,
)
from vllmbench.logs import scrub


class Service:
    def __init__(self, name: str, base_url: str, *, token: str | None = None, timeout_s: float = 30.0) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def request(self, method: str, path: str, *, body: Any = None, query: dict[str, Any] | None = None) -> Any:
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None}, doseq=True)
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body, default=str).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise self._translate(exc.code, exc.read(), method, path) from None
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise DependencyUnavailable(self.name, f"{method} {path} failed: {scrub(str(exc))[:200]}") from exc
        return json.loads(payload) if payload else None

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any, **kwargs: Any) -> Any:
        return self.request("POST", path, body=body, **kwargs)

    def _translate(self, status: int, payload: bytes, method: str, path: str) -> VllmbenchError:
        try:
            body = json.loads(payload)
        except ValueError:
            body = {}
        message = scrub(str((body or {}).get("message") or payload[:200].decode(errors="replace")))
        text = f"{self.name} answered {status} to {method} {path}: {message}"
        if status == 404:
            return NotFound(text)
        if status == 409:
            return Conflict(text)
        if status == 422:
            return ValidationFailed(text, details=(body or {}).get("details") or [])
        if status == 403:
            return Forbidden(text)
        if status < 500 and status not in (408, 429):
            return UserError(text)
        return DependencyUnavailable(self.name, text)
