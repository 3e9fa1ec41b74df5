"""What a file of the repository looks like in the store, and what an edit must be.

Pure functions: bytes and tree metadata in, documents and errors out. The same
checks describe a file during sync (problems are recorded, the file is kept) and
guard an edit (problems refuse it).
"""

from __future__ import annotations

from typing import Any

from gitops import kinds
from gitops.paths import SUBMODULE_MODE, SYMLINK_MODE, looks_binary
from gitops.yamldoc import check_documents, is_yaml_path, parse_documents
from vllmbench.errors import PayloadTooLarge, UserError


class NotText(UserError):
    status = 415
    code = "unsupported_media_type"


def describe(*, path: str, repo_path: str, root: str, sha: str, mode: str, size: int,
             data: bytes | None, commit: str, max_bytes: int) -> dict[str, Any]:
    """The store document of one file. ``data`` is None when it was not read (too large)."""
    doc: dict[str, Any] = {
        "path": path, "repo_path": repo_path, "sha": sha, "mode": mode, "size": size,
        "commit": commit, "kind": kinds.classify(repo_path, root=root), "status": "ok",
        "problems": [], "content": None, "target": None,
    }
    if mode == SUBMODULE_MODE:
        doc.update(kind="submodule", status="submodule")
        return doc
    if mode == SYMLINK_MODE:
        target = (data or b"").decode("utf-8", "replace")
        doc.update(kind="symlink", status="symlink", target=target)
        return doc
    if data is None or size > max_bytes:
        doc.update(status="too_large", problems=[{
            "loc": [path], "msg": f"{path} is {size} bytes, over the {max_bytes}-byte limit; "
                                  "metadata only", "expected": f"at most {max_bytes} bytes"}])
        return doc
    if looks_binary(data):
        doc.update(kind="binary", status="binary")
        return doc
    text = data.decode("utf-8")
    doc["content"] = text
    if is_yaml_path(repo_path):
        documents, problem = check_documents(text, path=path)
        if problem is not None:
            doc.update(status="invalid", problems=[problem.to_detail()])
            return doc
        found = kinds.problems(doc["kind"], documents, path=path)
        if found:
            doc.update(status="invalid", problems=found)
    return doc


def check_edit(*, path: str, repo_path: str, root: str, data: bytes, max_bytes: int) -> str:
    """Refuse content that is not text, too large, bad YAML or breaks its kind; return the kind."""
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"{path}: {len(data)} bytes is over the {max_bytes}-byte limit of a config file")
    if looks_binary(data):
        raise NotText(f"{path}: only UTF-8 text files can be written (the body has NUL bytes "
                      "or is not UTF-8)")
    kind = kinds.classify(repo_path, root=root)
    if is_yaml_path(repo_path):
        documents = parse_documents(data.decode("utf-8"), path=path)
        kinds.validate(kind, documents, path=path)
    return kind
