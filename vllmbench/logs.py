"""JSON-lines logging with context carried on every line and secrets redacted.

``bind(event_id=..., run_id=..., project=...)`` sets context for the current request
or event (a ``contextvars`` scope, so threads and tasks keep theirs); every log line
written inside it carries those keys. Values registered with :func:`redact` never
reach the output, whatever the message.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as _dt
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("vllmbench_log_context", default={})
_secrets: set[str] = set()
_REDACTED = "***"


def redact(*values: str | None) -> None:
    """Never print these values (tokens, passwords). Short values are ignored.

    Every log record of the process is scrubbed when it is created, whichever handler
    (ours, a library's, a test's) later writes it; our formatter scrubs the final line too.
    """
    for value in values:
        if value and len(value) >= 4:
            _secrets.add(value)
    if _secrets:
        _install_record_scrubbing()


def _install_record_scrubbing() -> None:
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_vllmbench_scrubs", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return record

    factory._vllmbench_scrubs = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def scrub(text: str) -> str:
    """``text`` with every registered secret replaced."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, _REDACTED)
    return text


@contextlib.contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Carry ``fields`` on every log line written inside the block."""
    merged = {**_context.get(), **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, Any]:
    return dict(_context.get())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _dt.datetime.fromtimestamp(record.created, _dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(_context.get())
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            line.update(extra)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return scrub(json.dumps(line, default=str, separators=(",", ":")))


def configure(level: str = "INFO", *, stream: Any = None) -> None:
    """JSON lines on stdout for the root logger (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_vllmbench", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    handler._vllmbench = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # werkzeug's own access log is plain text; ours carries the request id instead.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


def info(logger: logging.Logger, msg: str, **fields: Any) -> None:
    """One INFO line with structured fields."""
    logger.info(msg, extra={"fields": fields})
