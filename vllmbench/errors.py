"""One error tree for the whole project, split by what the caller must do next.

- ``UserError`` and its children: the request or the spec is wrong. Answered with a
  4xx, recorded, never retried (Knative does not retry 400/401/403/412/413/422).
- ``RetryableError`` and its children: something we depend on is down or busy.
  Answered with a 5xx and ``Retry-After`` so that Knative delivery (and people)
  retry later.

Adapters translate library exceptions into these at their boundary with
``raise ... from exc``. Messages name the object and the valid choices, and never
carry a secret.
"""

from __future__ import annotations

from typing import Any


class VllmbenchError(Exception):
    """Root of every error this project raises on purpose."""

    status: int = 500
    code: str = "internal"

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class UserError(VllmbenchError):
    """The caller sent something wrong; retrying the same thing will not help."""

    status = 400
    code = "bad_request"


class ValidationFailed(UserError):
    """A body, query or spec does not match its schema. ``details`` lists each field."""

    status = 422
    code = "validation_failed"

    @classmethod
    def at(cls, loc: str, message: str, expected: str) -> "ValidationFailed":
        """One wrong field: where (``body.server``), what is wrong, what was expected."""
        return cls(message, details=[{"loc": loc, "msg": message, "expected": expected}])


class Unauthorized(UserError):
    status = 401
    code = "unauthorized"


class Forbidden(UserError):
    """Authenticated, but this action is not allowed (a policy or a setting says no)."""

    status = 403
    code = "forbidden"


class NotFound(UserError):
    status = 404
    code = "not_found"


class MethodNotAllowed(UserError):
    status = 405
    code = "method_not_allowed"

    def __init__(self, message: str, *, allowed: list[str]) -> None:
        super().__init__(message)
        self.allowed = allowed


class Conflict(UserError):
    status = 409
    code = "conflict"


class PreconditionFailed(UserError):
    status = 412
    code = "precondition_failed"


class PayloadTooLarge(UserError):
    status = 413
    code = "payload_too_large"


class TooManyRequests(UserError):
    """A limit is reached (open sessions, ...): retry after something was freed."""

    status = 429
    code = "too_many_requests"


class RetryableError(VllmbenchError):
    """Temporary: the same request may succeed later."""

    status = 503
    code = "unavailable"
    retry_after: int = 5


class DependencyUnavailable(RetryableError):
    """A dependency (the database, git, Kubernetes, MLflow) cannot be reached."""

    code = "dependency_unavailable"

    def __init__(self, dependency: str, message: str, *, retry_after: int = 5) -> None:
        super().__init__(f"{dependency} is unavailable: {message}")
        self.dependency = dependency
        self.retry_after = retry_after

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        body["dependency"] = self.dependency
        return body


class BadGateway(RetryableError):
    """A dependency answered, but refused or answered nonsense (e.g. credentials refused)."""

    status = 502
    code = "bad_gateway"
