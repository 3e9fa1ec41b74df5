"""GitHub webhooks: signature check and push payloads. Pure functions, no I/O.

GitHub signs the raw request body with HMAC SHA-256 and the webhook's secret and
sends ``X-Hub-Signature-256: sha256=<hex>``; the comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from vllmbench.errors import Unauthorized, UserError

SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?([^:/]+):(?!//)(.+)$")


def sign(body: bytes, secret: str) -> str:
    """The header value GitHub would send for ``body`` (also what tests use)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str | None, secret: str | None) -> None:
    """Raise :class:`Unauthorized` unless ``header`` is GitHub's signature of ``body``."""
    if not secret:
        raise Unauthorized("GitHub webhooks are refused: no webhook secret is configured "
                           "(set GITHUB_WEBHOOK_SECRET)")
    if not header or not header.startswith("sha256="):
        raise Unauthorized(f"missing or malformed {SIGNATURE_HEADER} header (expected 'sha256=<hex>')")
    if not hmac.compare_digest(sign(body, secret).encode(), header.strip().encode()):
        raise Unauthorized(f"the {SIGNATURE_HEADER} signature does not match the body")


@dataclass(frozen=True)
class PushEvent:
    repository: str
    """The clone URL GitHub reports (https)."""
    aliases: tuple[str, ...]
    """Every URL of the repository in the payload (https, ssh, git), for matching projects."""
    branch: str | None
    """None when the push was to a tag."""
    before: str
    after: str
    forced: bool
    deleted: bool


def parse_push(body: bytes) -> PushEvent:
    """A GitHub ``push`` payload as a :class:`PushEvent`; ``UserError`` when it is not one."""
    try:
        payload: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError("the push payload is not JSON") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("repository"), dict):
        raise UserError("the push payload has no 'repository' object")
    repo = payload["repository"]
    urls = [repo.get(key) for key in ("clone_url", "ssh_url", "git_url", "html_url", "url")]
    aliases = tuple(dict.fromkeys(url for url in urls if isinstance(url, str) and url))
    ref = payload.get("ref")
    if not aliases or not isinstance(ref, str):
        raise UserError("the push payload needs 'ref' and a repository URL")
    branch = ref[len("refs/heads/"):] if ref.startswith("refs/heads/") else None
    return PushEvent(
        repository=aliases[0],
        aliases=aliases,
        branch=branch,
        before=str(payload.get("before") or ""),
        after=str(payload.get("after") or ""),
        forced=bool(payload.get("forced")),
        deleted=bool(payload.get("deleted")),
    )


def normalize_repo_url(url: str) -> str:
    """A key under which every spelling of one repository compares equal.

    ``https://github.com/Org/Repo.git``, ``git@github.com:org/repo`` and
    ``ssh://git@github.com/org/repo`` all give ``github.com/org/repo``; a local path
    keeps its path (``file://`` removed). Credentials in a URL are dropped.
    """
    value = url.strip()
    if value.startswith("file://"):
        return value[len("file://"):].rstrip("/") or "/"
    if "://" in value:
        parts = urlsplit(value)
        host, path = (parts.hostname or "").lower(), parts.path
    else:
        match = _SCP_LIKE.match(value)
        if match is None or value.startswith(("/", ".")):
            return value.rstrip("/") or "/"
        host, path = match.group(1).lower(), match.group(2)
    path = path.strip("/")
    if path.endswith(".git"):
        path = path[: -len(".git")]
    if host in {"github.com", "www.github.com"}:
        host, path = "github.com", path.lower()
    return f"{host}/{path}"
