"""A container's log from the API server, line by line, as it is written (``follow``)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from vllmbench.errors import DependencyUnavailable
from vllmbench.runtimes.kube.api import Api

CHUNK = 64 * 1024


class KubeLogStream:
    """Lines without their line ends. ``close()`` ends a followed stream from another thread."""

    def __init__(self, response: Any) -> None:
        self._response = response
        self._closed = threading.Event()

    @classmethod
    def open(cls, api: Api, namespace: str, pod: str, *, container: str | None, tail_lines: int | None,
             since_seconds: int | None, follow: bool, timestamps: bool) -> "KubeLogStream":
        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}/log"
        query = {"container": container, "tailLines": tail_lines, "sinceSeconds": since_seconds,
                 "follow": "true" if follow else None, "timestamps": "true" if timestamps else None}
        # A followed log may be silent for long: no read timeout, close() ends it.
        response = api.request("GET", path, query=query, stream=True, read_timeout_s=None if follow else 30,
                               what=f"reading the log of pod {namespace}/{pod}")
        return cls(response)

    def __iter__(self) -> Iterator[str]:
        pending = b""
        try:
            while not self._closed.is_set():
                try:
                    chunk = self._response.read1(CHUNK) if hasattr(self._response, "read1") else \
                        self._response.read(CHUNK)
                except Exception as exc:  # the connection went away under us
                    if self._closed.is_set():
                        return
                    raise DependencyUnavailable("kubernetes", f"the log stream broke: {exc}") from exc
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode("utf-8", "replace").rstrip("\r")
            if pending and not self._closed.is_set():
                yield pending.decode("utf-8", "replace").rstrip("\r")
        finally:
            self.close()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(Exception):
            self._response.shutdown()  # urllib3 >= 2.3: unblocks a read in another thread
        with contextlib.suppress(Exception):
            self._response.release_conn()
