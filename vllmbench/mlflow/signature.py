"""MLflow's webhook signatures (Standard Webhooks style): pure, no I/O.

MLflow signs ``"{delivery_id}.{timestamp}.{body}"`` with HMAC-SHA256 and the
webhook's secret and sends ``X-MLflow-Signature: v1,<base64>``,
``X-MLflow-Timestamp`` (Unix seconds) and ``X-MLflow-Delivery-Id``. A delivery is
taken only when the signature matches (constant-time compare) and its timestamp is
within ``tolerance_s`` of now, so a captured delivery cannot be replayed later.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from vllmbench.errors import Unauthorized

SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_HEADER = "X-MLflow-Delivery-Id"
TOLERANCE_S = 300


def sign(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    signed = delivery_id.encode() + b"." + timestamp.encode() + b"." + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str | None, *, signature: str | None, timestamp: str | None, delivery_id: str | None,
           body: bytes, now: float, tolerance_s: int = TOLERANCE_S) -> None:
    """Raise :class:`Unauthorized` (401) unless the delivery is signed with ``secret`` and fresh."""
    if not secret:
        raise Unauthorized("MLflow webhooks are off here: VLLMBENCH_MLFLOW_WEBHOOK_SECRET is not set")
    missing = [name for name, value in ((SIGNATURE_HEADER, signature), (TIMESTAMP_HEADER, timestamp),
                                        (DELIVERY_HEADER, delivery_id)) if not value]
    if missing:
        raise Unauthorized(f"not a signed MLflow webhook delivery: missing {', '.join(missing)}")
    assert signature is not None and timestamp is not None and delivery_id is not None
    try:
        sent = int(timestamp)
    except ValueError:
        raise Unauthorized(f"{TIMESTAMP_HEADER} must be Unix seconds") from None
    if abs(now - sent) > tolerance_s:
        raise Unauthorized(f"the delivery's timestamp is {int(now - sent)} s away from now, over the "
                           f"{tolerance_s} s allowed; refused as a possible replay")
    expected = sign(secret, delivery_id, timestamp, body)
    # Several signatures may be sent while a secret rotates: "v1,a v1,b".
    offered = [part.strip() for part in signature.split(" ") if part.strip()]
    if not any(hmac.compare_digest(candidate.encode(), expected.encode()) for candidate in offered):
        raise Unauthorized("the MLflow webhook signature does not match: check VLLMBENCH_MLFLOW_WEBHOOK_SECRET")
