"""The /docs page: Swagger UI 5 (it renders OpenAPI 3.1) served from the files that the
flask-swagger-ui package ships, so that no CDN is needed.

When the API needs a token, the page asks for it once and keeps it in the browser's
local storage; every request the page makes, the spec included, carries it.
"""

from __future__ import annotations

import html
import mimetypes
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vllmbench.errors import NotFound

if TYPE_CHECKING:
    from vllmbench.web.app import FunctionApp

STATIC_FILES = {"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png"}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css">
<link rel="icon" href="/docs/static/favicon-32x32.png">
<style>body{{margin:0}} #token{{padding:8px 16px;font-family:sans-serif;background:#f6f6f6}}</style>
</head><body>
<div id="token">API token (only if this installation sets one):
<input id="tok" type="password" size="40"> <button onclick="saveToken()">Use</button>
<span id="tokmsg"></span></div>
<div id="ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>
function saveToken() {{
  localStorage.setItem("vllmbench_token", document.getElementById("tok").value);
  location.reload();
}}
window.onload = function() {{
  const t = localStorage.getItem("vllmbench_token");
  document.getElementById("tokmsg").textContent = t ? "token set" : "";
  window.ui = SwaggerUIBundle({{
    url: "/openapi.json", dom_id: "#ui", deepLinking: true,
    requestInterceptor: (req) => {{ if (t) req.headers["Authorization"] = "Bearer " + t; return req; }},
  }});
}};
</script></body></html>"""


def page(app: "FunctionApp") -> Any:
    import flask

    title = html.escape(f"{app.title} — vllmbench")
    return flask.Response(PAGE.format(title=title), mimetype="text/html")


def static(name: str) -> Any:
    import flask

    if name not in STATIC_FILES:
        raise NotFound(f"no docs file {name!r}")
    path = _bundle_dir() / name
    if not path.is_file():
        raise NotFound(f"docs file {name!r} is not installed (package flask-swagger-ui)")
    mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    response = flask.Response(path.read_bytes(), mimetype=mimetype)
    response.headers["Cache-Control"] = "public, max-age=3600"  # an upgrade shows within the hour
    return response


def _bundle_dir() -> Path:
    from importlib.util import find_spec

    spec = find_spec("flask_swagger_ui")  # located, not imported: its blueprint is not used
    if spec is None or not spec.submodule_search_locations:
        raise NotFound("the docs page needs the package flask-swagger-ui")
    return Path(next(iter(spec.submodule_search_locations))) / "dist"
