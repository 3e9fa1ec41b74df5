"""Per-request samples out of a harness's raw output, when it kept them. Pure.

- ``vllmbench``: each stage's ``requests`` (``RequestRecord.to_dict`` rows: every
  gap, scheduled and sent times); the measurement window is the client's own.
- ``guidellm``: ``benchmarks[i].requests.{successful,errored,incomplete}``, each with
  ``info.timings`` (targeted_start, request_start, first_token_iteration,
  request_end, Unix seconds) and the token counts. GuideLLM keeps no single gap, so
  those samples answer every metric but ``itl``.
- ``vllm-bench-serve`` with ``--save-detailed``: ``ttfts`` and ``itls`` (seconds),
  ``input_lens``, ``output_lens`` and ``errors``; no send times, so e2e is TTFT plus
  the gaps, and schedule delay is unknown.

``samples_of(raw)`` returns None when the output holds no per-request data.
"""

from __future__ import annotations

from typing import Any

from vllmbench.models.results import RawInput
from vllmbench.samples import Samples


def samples_of(raw: RawInput) -> Samples | None:
    extract = {"vllmbench": _ours, "guidellm": _guidellm, "vllm-bench-serve": _vllm_bench}.get(raw.harness.name.lower())
    if extract is None:
        return None
    try:
        rows = extract(raw)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        return None  # the converter reports a malformed output; samples are a bonus
    return Samples.from_rows(rows) if rows else None


def _ours(raw: RawInput) -> list[dict[str, Any]]:
    from vllmbench.harness.aggregate import StageFacts, measured
    from vllmbench.harness.raw import RAW_FORMAT, config_from_dict
    from vllmbench.harness.records import RequestRecord

    data = raw.data
    if data.get("format") != RAW_FORMAT:
        return []
    cfg = config_from_dict(data["config"], run_id=raw.run_id)
    rows = []
    for stage in data.get("stages") or []:
        requests = stage.get("requests") or []
        records = [RequestRecord.from_dict(r) for r in requests]
        facts = StageFacts(index=int(stage["index"]), mode=stage["mode"], rate=stage.get("rate"),
                           concurrency=stage.get("concurrency"), started_at=raw.started_at, ended_at=raw.ended_at,
                           wall_s=0.0, cpu_s_by_process=(), model="", planned_span_ns=int(stage.get("planned_span_ns") or 0))
        window = {id(r) for r in measured(records, cfg, facts)}  # type: ignore[arg-type]
        for request, record in zip(requests, records):
            rows.append(ours_row(request, int(stage["index"]), measured=id(record) in window))
    return rows


def ours_row(request: dict[str, Any], stage: int, *, measured: bool) -> dict[str, Any]:
    """A ``RequestRecord.to_dict`` row as a samples row."""
    return {"stage": stage, "index": request["index"], "scheduled_ms": request["scheduled_ms"],
            "sent_ms": request["sent_ms"], "ttft_ms": request.get("ttft_ms"), "e2e_ms": request.get("e2e_ms"),
            "cap_wait_ms": request.get("cap_wait_ms", 0.0), "itl_ms": request.get("itl_ms") or [],
            "input_tokens": request.get("input_tokens"), "output_tokens": request.get("output_tokens"),
            "status": request.get("status"), "outcome": request.get("error") or "ok",
            "tokens_from": request.get("tokens_from"), "measured": measured}


def _guidellm(raw: RawInput) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for stage, bench in enumerate(raw.data.get("benchmarks") or []):
        requests = bench.get("requests") or {}
        start = bench.get("start_time")
        index = 0
        for status in ("successful", "errored", "incomplete"):
            for req in requests.get(status) or []:
                if not isinstance(req, dict):
                    continue
                timings = (req.get("info") or req.get("scheduler_info") or {}).get("timings") \
                    or (req.get("scheduler_info") or {}).get("request_timings") or {}
                origin = start if isinstance(start, (int, float)) else timings.get("targeted_start") or 0.0
                sent = timings.get("request_start")
                first = timings.get("first_token_iteration")
                end = timings.get("request_end")
                scheduled = timings.get("targeted_start") or timings.get("scheduled_at") or sent
                rows.append({
                    "stage": stage, "index": index,
                    "scheduled_ms": _ms(scheduled, origin) if scheduled is not None else 0.0,
                    "sent_ms": _ms(sent, origin) if sent is not None else None,
                    "ttft_ms": _ms(first, sent) if first is not None and sent is not None else req.get("time_to_first_token_ms"),
                    "e2e_ms": _ms(end, sent) if end is not None and sent is not None else None,
                    "input_tokens": req.get("prompt_tokens"), "output_tokens": req.get("output_tokens"),
                    "outcome": "ok" if status == "successful" else
                    (f"{status}: {str((req.get('info') or {}).get('error') or req.get('error') or '')[:80]}".rstrip(": ")),
                    "tokens_from": "server",
                })
                index += 1
    return rows


def _vllm_bench(raw: RawInput) -> list[dict[str, Any]]:
    data = raw.data
    ttfts, itls = data.get("ttfts"), data.get("itls")
    if not isinstance(ttfts, list) or not isinstance(itls, list):
        return []
    ins, outs, errors = data.get("input_lens") or [], data.get("output_lens") or [], data.get("errors") or []
    rows = []
    for i, ttft in enumerate(ttfts):
        gaps = [g * 1000 for g in (itls[i] if i < len(itls) and isinstance(itls[i], list) else [])]
        error = errors[i] if i < len(errors) and errors[i] else None
        ok = error is None and isinstance(ttft, (int, float)) and ttft > 0
        rows.append({
            "stage": 0, "index": i, "scheduled_ms": 0.0, "sent_ms": None,
            "ttft_ms": ttft * 1000 if ok else None, "e2e_ms": ttft * 1000 + sum(gaps) if ok else None,
            "itl_ms": gaps, "input_tokens": ins[i] if i < len(ins) else None,
            "output_tokens": outs[i] if i < len(outs) else None,
            "outcome": "ok" if ok else f"error: {str(error)[:80]}", "tokens_from": "local",
        })
    return rows


def _ms(t: float, origin: float) -> float:
    return (float(t) - float(origin)) * 1000.0
