"""Routes every function has: health, readiness, the API description, and events."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vllmbench import logs
from vllmbench.errors import UserError, ValidationFailed, VllmbenchError
from vllmbench.web.bodies import resolve, validate
from vllmbench.web.context import Context, Reply

if TYPE_CHECKING:
    from vllmbench.web.app import FunctionApp


STATIC_MEDIA = ("application/javascript", "text/javascript", "text/css", "image/png", "application/json",
                "text/plain", "application/octet-stream")


def install(app: "FunctionApp") -> None:
    @app.route("GET", "/health", public=True, tag="meta")
    def health(ctx: Context) -> dict[str, Any]:
        """Liveness: the process answers. No I/O."""
        return {"status": "ok", "function": app.name, "service": app.service}

    @app.route("GET", "/ready", public=True, tag="meta")
    def ready(ctx: Context) -> Reply:
        """Readiness: every dependency answers (503 naming the ones that do not)."""
        checks: dict[str, str] = {}
        failing: list[str] = []
        for name, check in app.ready_checks.items():
            try:
                check(ctx)
                checks[name] = "ok"
            except VllmbenchError as exc:
                checks[name] = exc.message
                failing.append(name)
        if failing:
            body = {"status": "unavailable", "error": "dependency_unavailable",
                    "message": f"not ready: {', '.join(failing)} unavailable", "checks": checks}
            return Reply(body, 503, {"Retry-After": "5"})
        return Reply({"status": "ready", "checks": checks})

    @app.route("GET", "/openapi.json", tag="meta")
    def openapi(ctx: Context) -> dict[str, Any]:
        """This API's OpenAPI 3.1 document."""
        from vllmbench.web.openapi import build

        return build(app)

    @app.route("GET", "/docs", public=True, tag="meta", media=("text/html",))
    def docs(ctx: Context) -> Any:
        """A page to read and try this API (the token, when one is needed, is asked for there)."""
        from vllmbench.web.docs import page

        return Reply(page(app))

    @app.route("GET", "/docs/static/<name>", public=True, tag="meta", media=STATIC_MEDIA)
    def docs_static(ctx: Context, name: str) -> Any:
        """Static files of the docs page."""
        from vllmbench.web.docs import static

        return Reply(static(name))

    for path in ("/", "/events"):
        app.route("POST", path, raw_body=True, status=202, tag="events",
                  also={200: "a duplicate delivery: the event was processed already (its outcome again)"},
                  summary="Receive a CloudEvent (binary or structured mode)")(_make_receiver(app))


def _make_receiver(app: "FunctionApp") -> Any:
    def receive(ctx: Context, body: bytes) -> Reply:
        from vllmbench.web.cloudevents import parse

        event = parse(ctx.request.headers, body, max_depth=ctx.settings.max_json_depth)
        event_type, event_id, source = event["type"], event["id"], event["source"]
        handler = app.events.get(event_type)
        if handler is None:
            handled = ", ".join(sorted(app.events)) or "none"
            raise UserError(f"{app.service} does not handle events of type {event_type!r}; it handles: {handled}")
        from vllmbench.store.events import Claim, EventLedger

        with logs.bind(event_id=event_id, event_type=event_type, event_source=source):
            data = event.data
            if handler.data is not None:
                if isinstance(data, (bytes, bytearray)):  # binary mode, a body that is not UTF-8 JSON text
                    raise ValidationFailed.at("data", f"the event's data is {len(data)} bytes that are not JSON "
                                              "text (not UTF-8, or no JSON content type)", "a JSON object")
                data = validate(resolve(handler.data), data, where="data", strict=True)
            ledger = EventLedger(ctx.db, ttl_s=ctx.settings.event_dedupe_ttl_s, claim_s=ctx.settings.event_claim_s,
                                 wait_s=ctx.settings.event_claim_wait_s)
            claim = ledger.acquire(source, event_id, event_type)
            if not isinstance(claim, Claim):
                logs.info(ctx.log, "duplicate event ignored")
                return Reply({"status": "duplicate", "id": event_id, "outcome": claim.get("outcome", {})}, 200)
            with claim:  # renewed while the handler runs; released if it fails
                outcome = handler.handler(ctx, event, data) or {}
            claim.complete(outcome)
            logs.info(ctx.log, "event processed")
            return Reply({"status": "accepted", "id": event_id, "outcome": outcome}, 202)

    receive.__doc__ = "Receive a CloudEvent (binary or structured mode); each (source, id) is processed once."
    return receive

