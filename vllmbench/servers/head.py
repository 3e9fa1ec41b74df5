"""``models/`` at the branch head of the configuration repository, read once per commit.

Every server runs in a workload namespace (``VLLMBENCH_WORKLOAD_NAMESPACES``): its own
folder's when that is one, else the service's (``VLLMBENCH_VLLM_NAMESPACE``, default the
first workload namespace). Two servers of one name meeting in one workload namespace
cannot both run there: the second file is held with a problem saying so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gitops import installation
from vllmbench.errors import UserError
from vllmbench.servers.folder import FOLDER, ServerFile, read_folder, split_path


@dataclass
class Head:
    commit: str
    servers: dict[str, ServerFile] = field(default_factory=dict)
    problems: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def held(self) -> set[str]:
        """Servers whose file is invalid at this commit: they keep what they had."""
        found = set()
        for path in self.problems:
            located = split_path(path)
            if located:
                found.add(f"{located[0]}/{located[1]}")
        return found - set(self.servers)


def vllm_namespace(settings: Any) -> str:
    chosen = settings.vllm_namespace or (settings.workload_namespaces or [""])[0]
    if not chosen:
        raise UserError("no workload namespace is configured (VLLMBENCH_WORKLOAD_NAMESPACES)")
    return chosen


def workload_namespace(settings: Any, server_namespace: str) -> str:
    return server_namespace if server_namespace in settings.workload_namespaces else vllm_namespace(settings)


def clashes(settings: Any, servers: dict[str, ServerFile]) -> dict[str, str]:
    """Path -> the file already holding that name in the same workload namespace."""
    seen: dict[tuple[str, str], ServerFile] = {}
    found = {}
    for key in sorted(servers):
        server = servers[key]
        slot = (workload_namespace(settings, server.namespace), server.name)
        if slot in seen:
            found[server.path] = seen[slot].path
        else:
            seen[slot] = server
    return found


_HEADS: dict[tuple[Any, ...], Head] = {}


def read_head(settings: Any) -> Head:
    """The folder at the branch head; a commit is immutable, so its reading is kept (per process)."""
    with installation.open_repository(settings) as repo:
        commit = installation.head(repo)
        key = (installation.repository_url(settings), commit, tuple(settings.workload_namespaces),
               settings.vllm_namespace)
        if key in _HEADS:
            return _HEADS[key]
        folder = installation.read_folder(repo, commit, FOLDER, max_bytes=settings.git_max_file_bytes)
    servers, problems = read_folder(folder.files)
    for path, why in folder.skipped.items():
        problems[path] = [{"loc": path, "msg": f"{path}: {why}", "expected": "a YAML file"}]
    for path, other in clashes(settings, servers).items():
        located = split_path(path)
        assert located is not None
        servers.pop(f"{located[0]}/{located[1]}")
        problems[path] = [{"loc": path, "msg": f"{path}: a server named {located[1]} is defined in {other}, and "
                           "both would run in the same workload namespace", "expected": "another server name"}]
    head = Head(commit, servers, problems)
    _HEADS.clear()
    _HEADS[key] = head
    return head
