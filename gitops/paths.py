"""Path confinement and text detection: pure functions, no I/O.

Every path that reaches git from a request goes through :func:`confine`, which
returns the path inside the repository or refuses it. Symbolic links are a matter
of the tree (git records them with mode 120000); :func:`is_symlink_mode` lets the
adapters refuse them without ever following one on disk.
"""

from __future__ import annotations

import posixpath

from vllmbench.errors import UserError

SYMLINK_MODE = "120000"
SUBMODULE_MODE = "160000"
_FORBIDDEN_SEGMENTS = {"", ".", "..", ".git"}


def normalize_root(root: str | None) -> str:
    """A project's root folder as ``a/b`` (no leading/trailing slash); ``""`` is the whole repo."""
    value = (root or "").strip().strip("/")
    if not value:
        return ""
    return _checked(value, what="root folder")


def confine(root: str, path: str) -> str:
    """The repository path of ``path`` given relative to ``root``, or a ``UserError``.

    Refused: empty paths, absolute paths, ``..`` or ``.`` segments, ``.git``,
    backslashes, NUL and other control characters.
    """
    if not isinstance(path, str) or not path.strip():
        raise UserError("the file path is empty; give a path relative to the project root")
    if path.startswith("/"):
        raise UserError(f"the file path {path!r} is absolute; give a path relative to the project root")
    relative = _checked(path, what="file path")
    return posixpath.join(root, relative) if root else relative


def relative_to_root(root: str, repo_path: str) -> str | None:
    """``repo_path`` relative to ``root``, or None when it lies outside."""
    if not root:
        return repo_path
    prefix = root + "/"
    return repo_path[len(prefix):] if repo_path.startswith(prefix) else None


def parents(repo_path: str) -> list[str]:
    """Every folder above ``repo_path``, outermost first: ``a/b/c`` -> ``["a", "a/b"]``."""
    parts = repo_path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def is_symlink_mode(mode: str) -> bool:
    return mode == SYMLINK_MODE


def looks_binary(data: bytes) -> bool:
    """Git's own rule (a NUL byte in the first 8000 bytes) plus undecodable UTF-8."""
    if b"\x00" in data[:8000]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _checked(value: str, *, what: str) -> str:
    if "\\" in value:
        raise UserError(f"the {what} {value!r} contains a backslash; use '/' between folders")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise UserError(f"the {what} contains a control character")
    segments = value.split("/")
    for segment in segments:
        if segment in _FORBIDDEN_SEGMENTS:
            shown = segment or "an empty segment"
            raise UserError(
                f"the {what} {value!r} contains {shown!r}; paths must stay inside the project root "
                "and may not use '.', '..', '.git' or '//'"
            )
    return value
