"""FunctionApp: routes, event handlers and the one dispatcher every function uses."""

from __future__ import annotations

import hmac
import inspect
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vllmbench import logs
from vllmbench.errors import (
    DependencyUnavailable,
    MethodNotAllowed,
    NotFound,
    RetryableError,
    Unauthorized,
    UserError,
    VllmbenchError,
)
from vllmbench.web.bodies import BODY_READ, parse_body, query_to_dict, read_body, require_json, resolve, validate
from vllmbench.web.context import Context, Reply

if TYPE_CHECKING:
    from vllmbench.settings import Settings
    from vllmbench.web.runtime import Runtime

log = logging.getLogger("vllmbench.web")

EVENT_PATHS = ("/", "/events")


@dataclass
class Route:
    method: str
    path: str
    handler: Callable[..., Any]
    body: Any = None  # a type, or "module:Name" imported on first use
    query: Any = None  # a pydantic model, or "module:Name"
    raw_body: bool = False
    status: int = 200
    summary: str = ""
    public: bool = False
    response: Any = None
    tag: str | None = None
    also: dict[int, str] | None = None  # other success statuses, documented with the same body
    media: tuple[str, ...] = ("application/json",)  # what a success answers with
    # "module:function" taking (body bytes, settings): what the handler gets as ``body``,
    # instead of ``body`` validated in this process (which still documents the route).
    parse: str | None = None


@dataclass
class EventHandler:
    type: str
    handler: Callable[..., Any]
    data: Any = None
    summary: str = ""


class FunctionApp:
    """A function: its routes and event handlers. ``handle`` is the functions-framework target."""

    def __init__(self, name: str, *, service: str, title: str, description: str = "", port: int | None = None) -> None:
        self.name = name
        self.service = service
        self.title = title
        self.description = description
        self.port = port
        self.routes: list[Route] = []
        self.events: dict[str, EventHandler] = {}
        self.ws_routes: list[Route] = []
        self._start_hooks: list[Callable[[Context], None]] = []
        self._ready_checks: dict[str, Callable[[Context], None]] = {"mongodb": lambda ctx: ctx.runtime.store.ping()}
        self._runtime: "Runtime | None" = None
        self._runtime_lock = threading.Lock()
        self._url_map: Any = None
        self._static: dict[tuple[str, str], int] | None = None
        from vllmbench.web import builtins

        builtins.install(self)

        def handle(request: Any) -> Any:
            """The functions-framework HTTP target: every path and method comes here."""
            return self._handle(request)

        # functions-framework wants a plain function as its target, not a bound method.
        self.handle = handle
        self._adopt_framework_errors()

    def _adopt_framework_errors(self) -> None:
        """functions-framework answers a few requests itself, in HTML and before ``handle``
        (a path its routing cannot match, such as one with a newline; /favicon.ico; /robots.txt).
        It loads this module inside its Flask app's context: answer those in JSON too."""
        import flask

        if not flask.has_app_context():
            return
        from werkzeug.exceptions import HTTPException

        def framework_error(exc: HTTPException) -> Any:
            request = flask.request
            request_id = _request_id(request.headers.get("X-Request-Id"))
            with logs.bind(request_id=request_id, function=self.name):
                error: VllmbenchError
                if exc.code == 404:
                    error = NotFound(f"no route {request.method} {request.path!r}; see /docs for the routes")
                elif exc.code is not None and 400 <= exc.code < 500:
                    error = UserError(exc.description or exc.name)
                    error.status = exc.code
                else:
                    error = VllmbenchError(f"internal error; see the logs for request {request_id}")
                return _to_response(_error_reply(error), request_id)

        flask.current_app.register_error_handler(HTTPException, framework_error)

    # -- declaring -----------------------------------------------------------------
    def route(self, method: str, path: str, *, body: Any = None, query: Any = None,
              raw_body: bool = False, status: int = 200, summary: str = "", public: bool = False,
              response: Any = None, tag: str | None = None, also: dict[int, str] | None = None,
              media: tuple[str, ...] = ("application/json",),
              parse: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Declare a route. ``also``: other success statuses it answers (e.g. ``{200: "unchanged"}``
        beside 201), so that the OpenAPI document names every status a client can get. ``parse``:
        a "module:function" that turns the JSON body (bytes, and the settings) into what the handler gets, with the
        same answers to a bad body as ``body`` (the model it documents) would give."""
        def register(handler: Callable[..., Any]) -> Callable[..., Any]:
            self.routes.append(Route(method.upper(), path, handler, body, query, raw_body, status,
                                     summary or (inspect.getdoc(handler) or "").split("\n")[0], public,
                                     response, tag, also, media, parse))
            self._url_map = self._static = None
            return handler

        return register

    def event(self, event_type: str, *, data: Any = None, summary: str = "") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(handler: Callable[..., Any]) -> Callable[..., Any]:
            self.events[event_type] = EventHandler(event_type, handler, data,
                                                   summary or (inspect.getdoc(handler) or "").split("\n")[0])
            return handler

        return register

    def websocket(self, path: str, *, summary: str = "", tag: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """A WebSocket route: ``handler(ctx, ws, **path_args)``. Browsers cannot send headers on a
        WebSocket, so the handler authenticates (e.g. a ticket in the first message)."""
        from vllmbench.web import websocket

        websocket.install_hook(self.handle)

        def register(handler: Callable[..., Any]) -> Callable[..., Any]:
            doc = summary or (inspect.getdoc(handler) or "").split("\n")[0]
            self.ws_routes.append(Route("GET", path, handler, summary=doc, public=True, tag=tag))
            self._ws_map = None

            def not_upgraded(ctx: Context, **kwargs: Any) -> Reply:
                return Reply({"error": "upgrade_required", "message": f"{path} is a WebSocket: connect with "
                              "'Connection: Upgrade' and 'Upgrade: websocket'"}, 426, {"Upgrade": "websocket"})

            self.route("GET", path, summary=f"WebSocket: {doc}", public=True, tag=tag, status=426)(not_upgraded)
            return handler

        return register

    def on_start(self, hook: Callable[[Context], None]) -> Callable[[Context], None]:
        self._start_hooks.append(hook)
        return hook

    def ready_check(self, name: str, check: Callable[[Context], None]) -> None:
        self._ready_checks[name] = check

    def configure(self, settings: "Settings") -> None:
        """Use these settings instead of the environment's (tests, the embedded stack)."""
        from vllmbench.web.runtime import Runtime

        with self._runtime_lock:
            if self._runtime is not None:
                self._runtime.close()
            self._runtime = Runtime.build(self.name, self.service, self._start_hooks, settings)

    @property
    def runtime(self) -> "Runtime":
        """Settings and store, built on the first request that needs them (pydantic-settings
        and the secret files stay off the import path: cold start)."""
        if self._runtime is None:
            from vllmbench.web.runtime import Runtime

            with self._runtime_lock:
                if self._runtime is None:
                    self._runtime = Runtime.build(self.name, self.service, self._start_hooks)
        return self._runtime

    @property
    def ready_checks(self) -> dict[str, Callable[[Context], None]]:
        return dict(self._ready_checks)

    # -- serving -------------------------------------------------------------------
    def _match(self, method: str, path: str) -> tuple[int, dict[str, Any]]:
        """The route for a request: a path without variables is looked up in a dict, so that a
        first request to one (/health, /docs, an event on /) does not build werkzeug's Map, which
        compiles a URL builder for every rule (about 1 ms a rule, 20-30 ms a function). Anything
        else (variables, another method, a trailing slash, HEAD) goes to the Map, which decides
        as before: a rule without variables that matches exactly is the one it picks too."""
        if self._static is None:
            static: dict[tuple[str, str], int] = {}
            for index, route in enumerate(self.routes):
                if "<" not in route.path:
                    static.setdefault((route.method, route.path), index)
            self._static = static
        found = self._static.get((method, path))
        if found is not None:
            return found, {}
        endpoint, args = self._map().bind("localhost", url_scheme="http").match(path, method=method)
        return endpoint, args

    def _map(self) -> Any:
        if self._url_map is None:
            from werkzeug.routing import Map, Rule

            rules = [Rule(r.path, methods=[r.method], endpoint=i) for i, r in enumerate(self.routes)]
            self._url_map = Map(rules, strict_slashes=False, merge_slashes=False)
        return self._url_map

    def _handle(self, request: Any) -> Any:
        started = time.perf_counter()
        request_id = _request_id(request.headers.get("X-Request-Id"))
        with logs.bind(request_id=request_id, function=self.name):
            try:
                reply = self._dispatch(request, request_id)
            except VllmbenchError as exc:
                reply = _error_reply(exc)
            except Exception:  # the last line of defence: never a stack trace in a response
                log.exception("unhandled error in %s %s", request.method, request.path)
                reply = Reply({"error": "internal", "message": f"internal error; see the logs for request {request_id}"}, 500)
            response = _to_response(reply, request_id)
            if _body_left_unread(request):
                # Refused before its body was read, or the read was cut: close the connection, so
                # that what is left is never read as the next request, and tell functions-framework
                # (which reads the rest of every body after the response) that there is nothing to wait for.
                response.headers["Connection"] = "close"
                request._cached_data = b""
            if request.path not in ("/health", "/ready"):
                logs.info(log, "request", method=request.method, path=request.path, status=reply.status,
                          ms=round((time.perf_counter() - started) * 1000, 2))
            return response

    def _dispatch(self, request: Any, request_id: str) -> Reply:
        from werkzeug.exceptions import MethodNotAllowed as WzMethodNotAllowed
        from werkzeug.exceptions import NotFound as WzNotFound

        if self.ws_routes:
            from vllmbench.web import websocket

            if websocket.is_upgrade(request.environ):
                return self._dispatch_websocket(request, request_id)
        try:
            endpoint, args = self._match(request.method, request.path)
        except WzMethodNotAllowed as exc:
            allowed = sorted(exc.valid_methods or [])
            raise MethodNotAllowed(f"{request.method} is not allowed on {request.path}; allowed: {', '.join(allowed)}",
                                   allowed=allowed) from None
        except WzNotFound:
            raise NotFound(f"no route {request.method} {request.path}; see /docs for the routes") from None
        route = self.routes[endpoint]
        if route.path == "/health":
            # Liveness needs nothing: no settings, no secrets read, no database.
            return Reply(route.handler(None))
        if not route.public and (route.tag != "events" or self.runtime.settings.events_require_token):
            self._authorize(request)
        ctx = Context(self.runtime, request, request_id)
        kwargs: dict[str, Any] = dict(args)
        settings = self.runtime.settings
        if route.raw_body:
            kwargs["body"] = read_body(request, settings.max_body_bytes, timeout_s=settings.body_timeout_s)
        elif route.body is not None:
            require_json(request.headers.get("Content-Type"))
            data = read_body(request, settings.max_body_bytes, timeout_s=settings.body_timeout_s)
            if route.parse is not None:
                kwargs["body"] = resolve(route.parse)(data, settings)
            else:
                kwargs["body"] = parse_body(resolve(route.body), data, max_depth=settings.max_json_depth)
        if route.query is not None:
            query = resolve(route.query)
            kwargs["query"] = validate(query, query_to_dict(query, request.args), where="query")
        result = _call_translating(route.handler, ctx, kwargs)
        if isinstance(result, Reply):
            return result
        return Reply(result, route.status)

    def _dispatch_websocket(self, request: Any, request_id: str) -> Reply:
        from werkzeug.exceptions import HTTPException
        from werkzeug.routing import Map, Rule

        from vllmbench.web import websocket

        if getattr(self, "_ws_map", None) is None:
            self._ws_map = Map([Rule(r.path, endpoint=i) for i, r in enumerate(self.ws_routes)], strict_slashes=False)
        try:
            endpoint, args = self._ws_map.bind("localhost", url_scheme="http").match(request.path, method="GET")
        except HTTPException:
            raise NotFound(f"no WebSocket route {request.path}") from None
        ctx = Context(self.runtime, request, request_id)
        ws = websocket.accept(request.environ)
        try:
            self.ws_routes[endpoint].handler(ctx, ws, **args)
        except Exception:  # the socket is ours now: log, never answer HTTP on it
            log.exception("WebSocket handler of %s failed", request.path)
        return Reply(websocket.finished_response(ws))

    def _authorize(self, request: Any) -> None:
        token = self.runtime.settings.api_token
        if token is None or not token.get_secret_value():
            return
        # The scheme is case-insensitive (RFC 9110); the token is compared in constant time.
        scheme, _, given = request.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(),
                                                                 token.get_secret_value().encode()):
            raise Unauthorized("missing or invalid bearer token (send 'Authorization: Bearer <token>')")


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _request_id(given: str | None) -> str:
    """The caller's X-Request-Id when it is a plain token (it is echoed and logged), else a new one."""
    return given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex


def _body_left_unread(request: Any) -> bool:
    environ = request.environ
    declared = (request.content_length or 0) > 0 or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    return declared and not environ.get(BODY_READ)


def _call_translating(handler: Callable[..., Any], ctx: Context, kwargs: dict[str, Any]) -> Any:
    """Call a handler; a database error that escaped an adapter still becomes a 503."""
    try:
        return handler(ctx, **kwargs)
    except VllmbenchError:
        raise
    except Exception as exc:
        if type(exc).__module__.startswith(("pymongo", "bson")):
            from vllmbench.store.mongo import translate

            with translate("database call"):
                raise
        raise


def _error_reply(exc: VllmbenchError) -> Reply:
    headers: dict[str, str] = {}
    if isinstance(exc, RetryableError):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, MethodNotAllowed):
        headers["Allow"] = ", ".join(exc.allowed)
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="vllmbench"'
    level = logging.WARNING if isinstance(exc, (UserError, DependencyUnavailable)) else logging.ERROR
    log.log(level, "%s: %s", exc.code, exc.message, exc_info=not isinstance(exc, (UserError, RetryableError)))
    body = exc.to_dict()
    if body.get("details"):
        body["details"] = [_detail(d) for d in body["details"]]
    return Reply(body, exc.status, headers)


def _detail(detail: Any) -> Any:
    """One error detail as the documented Error schema has it: ``loc`` a dotted path, text fields text
    (adapters build some with ``loc`` as a list)."""
    if not isinstance(detail, dict):
        return {"msg": str(detail)}
    shaped = dict(detail)
    if isinstance(shaped.get("loc"), (list, tuple)):
        shaped["loc"] = ".".join(str(part) for part in shaped["loc"])
    for key in ("loc", "msg", "type", "expected"):
        if key in shaped and not isinstance(shaped[key], str):
            shaped[key] = str(shaped[key])
    return shaped


def _to_response(reply: Reply, request_id: str) -> Any:
    import flask

    body = reply.body
    if isinstance(body, flask.Response):
        body.headers["X-Request-Id"] = request_id
        return body
    # pydantic models by their method, so that pydantic loads only when a route needs it (cold start)
    if hasattr(body, "model_dump_json"):
        payload = body.model_dump_json()
    elif isinstance(body, list) and body and hasattr(body[0], "model_dump_json"):
        payload = "[" + ",".join(item.model_dump_json() for item in body) + "]"
    elif body is None and reply.status == 204:
        payload = ""
    else:
        payload = json.dumps(body, default=_json_default, separators=(",", ":"))
    response = flask.Response(logs.scrub(payload), status=reply.status,
                              mimetype="application/json" if payload else None)
    for key, value in reply.headers.items():
        response.headers[key] = value
    response.headers["X-Request-Id"] = request_id
    return response


def _json_default(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
