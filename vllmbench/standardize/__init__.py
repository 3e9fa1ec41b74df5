"""Turning harness output into standardized records, and back out to other formats.

``to_standardized(raw)`` looks up the converter for ``raw.harness.name`` and returns
the records it makes (one per load stage). Converters are pure functions in their own
modules, imported only when a raw input of their harness arrives:

- ``vllmbench``          our own load generator's raw report
- ``guidellm``           GuideLLM's JSON report
- ``vllm-bench-serve``   ``vllm bench serve --save-result`` JSON
- ``llm-d``              an llm-d Benchmark Report v0.2
- ``lm-eval``            lm-evaluation-harness's ``results_<date>.json`` (accuracy)

A harness with no converter is stored raw only (``None``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from vllmbench.models.results import RawInput, StandardizedRecord

Converter = Callable[[RawInput], list[StandardizedRecord]]

# harness name -> "module:function"; modules are imported on first use (cold start).
CONVERTERS: dict[str, str] = {
    "llm-d": "vllmbench.standardize.llmd:from_raw",
    "vllmbench": "vllmbench.standardize.ours:from_raw",
    "guidellm": "vllmbench.standardize.guidellm:from_raw",
    "vllm-bench-serve": "vllmbench.standardize.vllm_bench:from_raw",
    "lm-eval": "vllmbench.standardize.lm_eval:from_raw",
}


def converter_for(harness: str) -> Converter | None:
    target = CONVERTERS.get(harness.lower())
    if target is None:
        return None
    module_name, function_name = target.split(":")
    return getattr(importlib.import_module(module_name), function_name)


def to_standardized(raw: RawInput) -> list[StandardizedRecord] | None:
    """Records made from ``raw``, or None when its harness has no converter.

    Raises ``ValidationFailed`` when the harness is known but its output is not in the
    expected format.
    """
    converter = converter_for(raw.harness.name)
    if converter is None:
        return None
    return converter(raw)
