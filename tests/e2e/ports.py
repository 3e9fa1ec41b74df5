"""Port offsets for the embedded stacks of the end-to-end tests."""

from __future__ import annotations

import random

from vllmbench.embedded.processes import port_open


def free_offset() -> int:
    """A port offset whose every port is free: the functions (offset + 8000-8005), the broker
    (+ 8090) and MLflow (+ 5000) stay below the local runtime's Service ports (30000-32767) and
    the kernel's ephemeral range (32768 and up, where outgoing connections take their ports)."""
    for _ in range(50):
        offset = random.randrange(10000, 21000, 10)
        if not any(port_open(port) for port in [*range(offset + 8000, offset + 8006), offset + 8090, offset + 5000]):
            return offset
    raise AssertionError("no free port offset for the stack")
