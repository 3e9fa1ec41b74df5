"""The ``kube`` runtime: the only place that imports the ``kubernetes`` client.

It is imported on first use (``vllmbench.runtimes.open_runtime``), never at a
function's import: ``kubernetes.client`` alone costs about 140 ms of cold start.
"""

from vllmbench.runtimes.kube.runtime import KubeRuntime

__all__ = ["KubeRuntime"]
