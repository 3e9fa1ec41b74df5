"""Credentials for git over HTTPS, kept out of URLs, files, logs and errors.

A token travels to git only in the environment of the git process, as an
``http.<origin>.extraHeader`` given through ``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_n``
(git 2.31+): never on a command line (``ps`` shows those), never in a remote URL
or a config file (disk). The header is scoped to the repository's origin so a
redirect to another host does not receive it. Credential helpers are switched off
so that git stores nothing, and prompts are off so a refused token fails fast.

A project names its credentials with a reference, never the secret itself:

- ``default``: the installation's token (``GITHUB_TOKEN`` or its mounted secret file);
- ``none``: anonymous (public repositories, local paths);
- ``file:<name>``: the file ``<name>`` in the credentials folder (a mounted Secret).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from vllmbench.errors import UserError
from vllmbench.logs import redact, scrub

_REF = re.compile(r"^(default|none|file:[A-Za-z0-9][A-Za-z0-9._-]{0,127})$")
ALLOWED_PROTOCOLS = "file:https:http:ssh:git"


def check_reference(reference: str) -> str:
    if not _REF.match(reference):
        raise UserError("credentials must be 'default', 'none' or 'file:<name>' "
                        "(a file in the credentials folder); never the secret itself")
    return reference


@dataclass(frozen=True)
class GitAuth:
    """The token for one repository (or none). ``repr`` never shows it."""

    token: str | None = field(default=None, repr=False)

    def env(self, url: str) -> dict[str, str]:
        """Environment for a git process that talks to ``url``."""
        env = {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "",
            "SSH_ASKPASS": "",
            "GIT_ALLOW_PROTOCOL": ALLOWED_PROTOCOLS,
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "credential.helper",
            "GIT_CONFIG_VALUE_0": "",
        }
        origin = _https_origin(url)
        if self.token and origin:
            basic = base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
            env.update({
                "GIT_CONFIG_COUNT": "2",
                "GIT_CONFIG_KEY_1": f"http.{origin}/.extraHeader",
                "GIT_CONFIG_VALUE_1": f"Authorization: Basic {basic}",
            })
        return env

    def scrub(self, text: str) -> str:
        if self.token:
            text = text.replace(self.token, "***")
            text = text.replace(base64.b64encode(f"x-access-token:{self.token}".encode()).decode(), "***")
        return scrub(text)


def resolve(reference: str, *, default_token: str | None, credentials_dir: Path) -> GitAuth:
    """The :class:`GitAuth` a credentials reference stands for; registers the token for redaction."""
    check_reference(reference)
    if reference == "none":
        return GitAuth()
    if reference == "default":
        token = default_token or None
    else:
        name = reference[len("file:"):]
        secret_file = credentials_dir / name
        try:
            token = secret_file.read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise UserError(f"credentials {reference!r}: no readable file {name!r} in the "
                            f"credentials folder {credentials_dir}") from exc
    if token:
        redact(token, base64.b64encode(f"x-access-token:{token}".encode()).decode())
    return GitAuth(token)


def public_url(url: str) -> str:
    """``url`` without any user or password, for messages and responses."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts._replace(netloc=netloc).geturl()


def has_userinfo(url: str) -> bool:
    if "://" not in url:
        return False
    try:
        parts = urlsplit(url)
        return parts.username is not None or parts.password is not None
    except ValueError:
        return True


def _https_origin(url: str) -> str | None:
    if not url.startswith(("https://", "http://")):
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
