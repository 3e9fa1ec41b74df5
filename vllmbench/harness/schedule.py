"""Send times computed before the first request leaves. Pure.

``constant``: evenly spaced. ``poisson``: exponential gaps. ``gamma``: gamma gaps with
a burstiness factor (1 is Poisson, below 1 burstier, above 1 steadier), as in
``vllm bench serve``. Offsets are nanoseconds from the stage's start.
"""

from __future__ import annotations

import math
import random

ARRIVALS = ("constant", "poisson", "gamma")


def request_count(rate: float, duration_s: float | None, count: int | None) -> int:
    """How many requests a stage sends: the count if given, else rate x duration."""
    if count is not None:
        return count
    if duration_s is None:
        raise ValueError("a stage needs a duration or a request count")
    return max(1, math.floor(rate * duration_s + 1e-9))


def send_offsets(rate: float, n: int, *, arrival: str = "constant", burstiness: float = 1.0, seed: int = 0) -> list[int]:
    """``n`` send offsets (ns, ascending, the first at 0) for ``rate`` requests per second."""
    if rate <= 0 or not math.isfinite(rate):
        raise ValueError(f"rate must be a positive number, got {rate}")
    if n < 1:
        raise ValueError(f"request count must be >= 1, got {n}")
    if arrival not in ARRIVALS:
        raise ValueError(f"arrival {arrival!r} is not one of {', '.join(ARRIVALS)}")
    if burstiness <= 0:
        raise ValueError(f"burstiness must be > 0, got {burstiness}")
    if arrival == "constant":
        step = 1e9 / rate
        return [round(i * step) for i in range(n)]
    rng = random.Random(seed)
    shape = 1.0 if arrival == "poisson" else burstiness
    scale = 1.0 / (rate * shape)
    offsets = [0]
    t = 0.0
    for _ in range(n - 1):
        t += rng.gammavariate(shape, scale)
        offsets.append(round(t * 1e9))
    return offsets


def split(indices: list[int], workers: int) -> list[list[int]]:
    """The ``indices`` of a schedule each worker sends, round-robin, so each keeps the same rate shape."""
    return [indices[k::workers] for k in range(workers)]


def shard_of(n: int, shard: int, shards: int) -> list[int]:
    """The arrivals one of ``shards`` client pods sends of a schedule of ``n``: ``shard``,
    ``shard + shards``, ... (round-robin, so every pod keeps the rate's shape at 1/shards of it)."""
    return list(range(shard, n, shards))


def worker_of(index: int, *, shard: int, shards: int, workers: int) -> int:
    """The process of a shard that sent arrival ``index``: the shard's arrivals are split among its
    ``workers`` round-robin, as :func:`split` does (samples keep no process, the merge needs it)."""
    return ((index - shard) // shards) % workers
