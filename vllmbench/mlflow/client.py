"""MLflow's REST API over plain HTTP: the one place that talks to an MLflow server.

``mlflow`` itself is never imported (``from mlflow import MlflowClient`` costs about
0.8 s of cold start, FIELD-NOTES "MLflow"); the registry API is a handful of JSON
calls. Errors leave as the project's own: a server that cannot be reached, times out
or answers 5xx is :class:`DependencyUnavailable` (503 with Retry-After), refused
credentials or an answer we cannot read is :class:`BadGateway`, a missing model or
version is ``None``.

Authentication as MLflow's own clients take it: ``MLFLOW_TRACKING_TOKEN`` (bearer) or
``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` (basic). They reach the
request headers only, never a URL, a log line or an error.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

from vllmbench.errors import BadGateway, DependencyUnavailable, UserError
from vllmbench.logs import scrub

API = "/api/2.0/mlflow"
VERSION_PAGE = 200
MODEL_PAGE = 1000  # MLflow's largest page of registered models


def quote_name(name: str) -> str:
    """``name`` as a string literal of MLflow's search filter (it has no escape for quotes)."""
    if "'" not in name:
        return f"'{name}'"
    if '"' not in name:
        return f'"{name}"'
    raise UserError(f"registered model {name!r} has both quote characters; MLflow's search filter cannot name it")


class MlflowClient:
    def __init__(self, base_url: str, *, token: str | None = None, username: str | None = None,
                 password: str | None = None, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._headers = {"Accept": "application/json", "User-Agent": "vllmbench-mlflow"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        elif username:
            basic = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self._headers["Authorization"] = f"Basic {basic}"

    # -- the server ------------------------------------------------------------------
    def server_version(self) -> str:
        """MLflow's version (``GET /version``); raises when the server cannot be reached."""
        return self._request("GET", "/version", raw=True).strip()

    # -- registered models ---------------------------------------------------------------
    def get_model(self, name: str) -> dict[str, Any] | None:
        found = self._request("GET", f"{API}/registered-models/get", params={"name": name}, missing_ok=True)
        return None if found is None else found.get("registered_model")

    def search_models(self, name_like: str | None = None) -> Iterator[dict[str, Any]]:
        """Every registered model (whose name is ``LIKE name_like``), a page at a time.

        Registered models have no cursor to search by: these page tokens are offsets, so a
        model created during the listing may be missed. The next poll lists it.
        """
        params: dict[str, Any] = {"max_results": MODEL_PAGE, "order_by": "name ASC"}
        if name_like:
            params["filter"] = f"name LIKE {quote_name(name_like)}"
        for _ in range(10_000):
            page = self._request("GET", f"{API}/registered-models/search", params=params) or {}
            yield from page.get("registered_models", [])
            token = page.get("next_page_token")
            if not token:
                return
            params["page_token"] = token

    # -- model versions ----------------------------------------------------------------
    def versions_after(self, name: str, after: int, *, limit: int = VERSION_PAGE) -> list[dict[str, Any]]:
        """Versions of ``name`` numbered above ``after``, lowest first, at most ``limit``.

        A cursor on ``version_number`` rather than page tokens (offsets: a version created
        between two pages would shift them). Search results carry no aliases (mlflow#9783).
        """
        params = {"filter": f"name = {quote_name(name)} AND version_number > {int(after)}",
                  "order_by": "version_number ASC", "max_results": limit}
        page = self._request("GET", f"{API}/model-versions/search", params=params) or {}
        return page.get("model_versions", [])

    def get_version(self, name: str, version: int) -> dict[str, Any] | None:
        """One version with its aliases."""
        found = self._request("GET", f"{API}/model-versions/get", params={"name": name, "version": str(version)},
                              missing_ok=True)
        return None if found is None else found.get("model_version")

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        self._request("POST", f"{API}/model-versions/set-tag",
                      body={"name": name, "version": str(version), "key": key, "value": value})

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self._request("POST", f"{API}/registered-models/alias",
                      body={"name": name, "alias": alias, "version": str(version)})

    # -- runs -----------------------------------------------------------------------------
    def get_run(self, run_id: str) -> dict[str, Any] | None:
        found = self._request("GET", f"{API}/runs/get", params={"run_id": run_id}, missing_ok=True)
        return None if found is None else found.get("run")

    # -- webhooks (MLflow >= 3.3, SQL backends) ------------------------------------------
    def list_webhooks(self) -> list[dict[str, Any]]:
        webhooks: list[dict[str, Any]] = []
        params: dict[str, Any] = {"max_results": 100}
        for _ in range(1000):
            page = self._request("GET", f"{API}/webhooks", params=params) or {}
            webhooks.extend(page.get("webhooks", []))
            if not page.get("next_page_token"):
                break
            params["page_token"] = page["next_page_token"]
        return webhooks

    def create_webhook(self, body: dict[str, Any]) -> dict[str, Any]:
        return (self._request("POST", f"{API}/webhooks", body=body) or {}).get("webhook", {})

    def update_webhook(self, webhook_id: str, body: dict[str, Any]) -> dict[str, Any]:
        path = f"{API}/webhooks/{urllib.parse.quote(webhook_id, safe='')}"
        return (self._request("PATCH", path, body=body) or {}).get("webhook", {})

    # -- transport ------------------------------------------------------------------------
    def _request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                 body: dict[str, Any] | None = None, missing_ok: bool = False, raw: bool = False) -> Any:
        url = self.base_url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        headers = dict(self._headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        where = f"MLflow at {self.base_url}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            text = exc.read()[:2000].decode(errors="replace")
            code = _error_code(text)
            if exc.code == 404 and missing_ok and code in ("RESOURCE_DOES_NOT_EXIST", ""):
                return None
            if exc.code in (401, 403):
                raise BadGateway(f"{where} refused the credentials ({exc.code}) for {method} {path}") from exc
            if exc.code >= 500 or exc.code == 429:
                raise DependencyUnavailable("mlflow", f"{where} answered {exc.code} to {method} {path}") from exc
            raise BadGateway(f"{where} answered {exc.code} to {method} {path}: "
                             f"{scrub(_error_message(text))[:300]}") from exc
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DependencyUnavailable("mlflow", f"{where} cannot be reached: {scrub(str(reason))[:200]}") from exc
        if raw:
            return payload.decode(errors="replace")
        if not payload.strip():
            return {}
        try:
            return json.loads(payload)
        except ValueError as exc:
            raise BadGateway(f"{where} answered {method} {path} with something that is not JSON") from exc


def _error_code(text: str) -> str:
    try:
        return str(json.loads(text).get("error_code", ""))
    except (ValueError, AttributeError):
        return ""


def _error_message(text: str) -> str:
    try:
        document = json.loads(text)
        return f"{document.get('error_code', '')}: {document.get('message', '')}"
    except (ValueError, AttributeError):
        return text
