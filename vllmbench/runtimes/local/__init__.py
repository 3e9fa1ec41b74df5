"""The ``local`` workload runtime: Kubernetes objects as local processes, with no cluster.

The embedded default of ``make run`` (``VLLMBENCH_RUNTIME=auto`` without ``KUBECONFIG``).
It keeps the objects applied to it in files under its folder (an "API server" on disk, with
the API's metadata, server-side apply, 422s for immutable fields), runs the controllers of
Deployments and Jobs on apply and on reads, and runs pods as local processes under one
detached shim each. docs/local-runtime.md is the user's guide.

What runs (see :mod:`.images`):

- **vllmbench images** (the image name contains ``vllmbench``): the installed ``vllmbench``
  with the container's command and args (``vllmbench ...`` or args alone; ``python`` is
  this Python).
- **vLLM images** (``vllm/vllm-openai`` and the like): ``vllm serve`` with the container's
  args where vLLM is installed, otherwise the vllmbench simulator with the flags it
  understands (model, ``--served-model-name``, ``--port``, ``--max-num-seqs``,
  ``--max-model-len``); the other flags are ignored and an event says which.
- **Kinds**: Deployment, Job and Pod run; Service becomes local ports with a forwarder;
  ConfigMap feeds env and files; PersistentVolumeClaim is a kept folder; ServiceAccount
  is stored. StatefulSet, CronJob, PingSource and unknown kinds are stored but not run.

What does not run: any other image (a host has no image of it, and running another
image's command on the host would run arbitrary programs outside any container), Secrets
(``secretKeyRef``, secret volumes), other volume kinds, gRPC probes. Such a pod stays
Pending with a waiting reason (ImageNotRunnableLocally, NotSupportedLocally) and a message
saying to use a cluster (KUBECONFIG); it is never reported as running. ``unsupported(obj)``
says the same sentence before anything is applied.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vllmbench.runtimes.local.runtime import LocalRuntime

__all__ = ["LocalRuntime"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the shims and forwarders start as `python -m` modules of this
    # package and need none of the runtime.
    if name == "LocalRuntime":
        from vllmbench.runtimes.local.runtime import LocalRuntime

        return LocalRuntime
    raise AttributeError(name)
