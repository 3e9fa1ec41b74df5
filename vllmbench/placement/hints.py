"""vLLM's start-up errors, read from a server's log and turned into planner hints.

The three messages users meet most (FIELD-NOTES, "GPU placement"), as vLLM words them:
- "No available memory for the cache blocks" (vllm/v1/core/kv_cache_utils.py
  ``_check_enough_kv_cache_memory``, when the budget left for the KV cache is <= 0);
- "To serve at least one request with the models's max seq len (X), (Y GiB KV cache is
  needed, which is larger than the available KV cache memory (Z GiB). Based on the
  available memory, the estimated maximum model length is N." (same function; the V0
  engine said "The model's max seq len (X) is larger than the maximum number of tokens
  that can be stored in KV cache (N)");
- "Free memory on device cuda:0 (F/T GiB) on startup is less than desired GPU memory
  utilization (U, R GiB)" (vllm/v1/worker/utils.py ``request_memory``: something else
  holds the GPU).
Each hint says what happened with vLLM's own numbers and what to change in the spec.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import Field

from vllmbench.models.base import Strict

_NO_MEMORY = re.compile(r"No available memory for the cache blocks")
_MAX_LEN = re.compile(r"max seq len \((?P<len>\d+)\),?\s*\((?P<need>[\d.]+) GiB KV cache is needed, which is larger "
                      r"than the available KV cache memory \((?P<have>-?[\d.]+) GiB\)\.(?: Based on the available "
                      r"memory, the estimated maximum model length is (?P<est>\d+))?")
_MAX_LEN_V0 = re.compile(r"max seq len \((?P<len>\d+)\) is larger than the maximum number of tokens that can be "
                         r"stored in KV cache \((?P<est>\d+)\)")
_FREE = re.compile(r"Free memory on device (?P<device>\S*) ?\((?P<free>[\d.]+)/(?P<total>[\d.]+) GiB\) on startup is "
                   r"less than desired GPU memory utilization \((?P<util>[\d.]+), (?P<want>[\d.]+) GiB\)")
_OOM = re.compile(r"CUDA out of memory\. Tried to allocate (?P<alloc>[\d.]+ [KMG]iB)")


class Hint(Strict):
    kind: str
    message: str
    numbers: dict[str, Any] = Field(default_factory=dict)
    change: dict[str, Any] = Field(default_factory=dict, description="Spec fields that would avoid it.")


def from_log(text: str, *, gpu_memory_utilization: float | None = None) -> list[Hint]:
    """Every start-up error of ``text`` (a server's log) as a hint, in the order they appear."""
    found: list[tuple[int, Hint]] = []
    for match in _MAX_LEN.finditer(text):
        length, need, have = int(match["len"]), float(match["need"]), float(match["have"])
        estimate = int(match["est"]) if match["est"] else 0
        found.append((match.start(), Hint(
            kind="max_model_len_too_long",
            message=(f"vLLM needs {need} GiB of KV cache for one request of max_model_len {length} but has "
                     f"{have} GiB" + (f"; it estimates {estimate} fits" if estimate else "")),
            numbers={"max_model_len": length, "kv_needed_gib": need, "kv_available_gib": have,
                     "estimated_max_model_len": estimate},
            change={"max_model_len": estimate} if estimate else {"gpu_memory_utilization": "higher"})))
    for match in _MAX_LEN_V0.finditer(text):
        length, estimate = int(match["len"]), int(match["est"])
        found.append((match.start(), Hint(
            kind="max_model_len_too_long",
            message=f"max_model_len {length} exceeds the {estimate} tokens the KV cache holds",
            numbers={"max_model_len": length, "estimated_max_model_len": estimate},
            change={"max_model_len": estimate})))
    for match in _NO_MEMORY.finditer(text):
        change: dict[str, Any] = {"tensor_parallel_size": "more", "quantization": "fp8 or a quantized checkpoint"}
        if gpu_memory_utilization is not None and gpu_memory_utilization < 0.95:
            change["gpu_memory_utilization"] = 0.95
        found.append((match.start(), Hint(
            kind="no_kv_memory",
            message="the weights and the profile run used the whole budget: no memory is left for the KV cache",
            change=change)))
    for match in _FREE.finditer(text):
        free, total, util, want = (float(match[k]) for k in ("free", "total", "util", "want"))
        fits = math.floor(free / total * 100) / 100 if total else 0.0
        found.append((match.start(), Hint(
            kind="gpu_memory_taken",
            message=(f"{match['device'] or 'the GPU'} had {free} of {total} GiB free at start, less than the "
                     f"{want} GiB of gpu_memory_utilization {util}: something else holds "
                     f"{round(total - free, 2)} GiB"),
            numbers={"free_gib": free, "total_gib": total, "gpu_memory_utilization": util,
                     "requested_gib": want, "held_by_others_gib": round(total - free, 2)},
            change={"gpu_memory_utilization": fits} if fits > 0 else {})))
    for match in _OOM.finditer(text):
        found.append((match.start(), Hint(kind="cuda_out_of_memory",
                                          message=f"CUDA ran out of memory allocating {match['alloc']}",
                                          numbers={"allocation": match["alloc"]},
                                          change={"gpu_memory_utilization": "lower", "max_num_seqs": "lower"})))
    return [hint for _, hint in sorted(found, key=lambda item: item[0])]
