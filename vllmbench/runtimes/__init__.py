"""Workload runtimes: the ``kube`` and ``local`` adapters behind one interface (see :mod:`.base`).

``open_runtime(settings)`` picks one from the settings (``VLLMBENCH_RUNTIME``: ``auto``
chooses ``kube`` when ``KUBECONFIG`` is set or the process runs in a cluster, else
``local``). The adapters are imported here on first use only: the ``kubernetes``
client costs about 140 ms of cold start and must stay off every function's import path.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vllmbench.runtimes.base import Runtime
    from vllmbench.settings import Settings


def local_root(settings: "Settings") -> Path:
    """The local runtime's folder: objects, pods, logs (``VLLMBENCH_LOCAL_RUNTIME_DIR``)."""
    return Path(settings.local_runtime_dir or Path(settings.data_dir) / "workloads")


def open_runtime(settings: "Settings") -> "Runtime":
    """The runtime the settings ask for. Building it does no I/O."""
    if settings.runtime_kind == "kube":
        from vllmbench.runtimes.kube import KubeRuntime

        return KubeRuntime.from_settings(settings)
    from vllmbench.runtimes.local import LocalRuntime

    return LocalRuntime(local_root(settings), exec_enabled=settings.local_exec)


__all__ = ["local_root", "open_runtime"]
