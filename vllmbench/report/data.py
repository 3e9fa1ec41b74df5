"""What a report is drawn from: a run's standardized records and, where stored, its
per-request samples. Pure: documents in, values out.

Per-request samples come from one of two places: a ``vllmbench`` raw report whose
stages list every request (``raw.json`` of ``vllmbench run --out``, or a small run's raw
result in the Results service; :func:`request_rows`), or the samples the Results
service stores apart (``GET /runs/{id}/requests``: a large run's requests, sent after its
raw result, and those standardized from other harnesses' raw output). Both are rows of
one shape (``requests.jsonl``'s, with a ``stage``) and go through :func:`samples_by_stage`;
stored rows say themselves whether a request was in the measured window (``measured``)
and how it ended (``outcome``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from vllmbench.errors import NotFound, ValidationFailed
from vllmbench.models.results import StandardizedRecord

RAW_FORMAT = "vllmbench-raw/1"


@dataclass
class StageSamples:
    """The per-request figures of one stage, inside the window the statistics used."""

    ttft_ms: list[float] = field(default_factory=list)
    itl_ms: list[float] = field(default_factory=list)
    e2e_ms: list[float] = field(default_factory=list)
    # (seconds from the stage start to the end of the response, output tokens) of every
    # succeeded request, warm-up and cool-down included: throughput over time.
    completions: list[tuple[float, int]] = field(default_factory=list)
    window_s: tuple[float, float] | None = None  # the measured window, seconds from the stage start


@dataclass
class RunData:
    run_id: str
    records: list[StandardizedRecord]  # one per stage, by stage
    samples: dict[int, StageSamples] = field(default_factory=dict)
    source: str = ""  # where it was read from, for the page's footer

    def stage(self, index: int) -> "RunData":
        chosen = [r for r in self.records if r.run.stage == index]
        if not chosen:
            stages = ", ".join(str(r.run.stage) for r in self.records)
            raise NotFound(f"run {self.run_id!r} has no stage {index}; it has: {stages}")
        return RunData(self.run_id, chosen, {k: v for k, v in self.samples.items() if k == index}, self.source)

    @property
    def has_samples(self) -> bool:
        return bool(self.samples)


def run_data(run_id: str, standardized: Iterable[Mapping[str, Any] | StandardizedRecord],
             raw: Iterable[Mapping[str, Any]] = (), *, rows: Iterable[Mapping[str, Any]] | None = None,
             source: str = "") -> RunData:
    """A run from the documents ``GET /runs/{id}`` answers (or a ``--out`` folder holds).

    ``rows`` are per-request samples in the shape of ``requests.jsonl``; without them they
    are looked up in ``raw`` (:func:`request_rows`)."""
    try:
        records = [r if isinstance(r, StandardizedRecord) else StandardizedRecord.model_validate(r)
                   for r in standardized]
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValidationFailed(f"run {run_id!r}: a standardized record is invalid: {first['msg']} at "
                               f"{'.'.join(map(str, first['loc']))}") from exc
    if not records:
        raise NotFound(f"run {run_id!r} has no standardized records")
    records.sort(key=lambda r: r.run.stage)
    found = request_rows(raw) if rows is None else rows
    return RunData(run_id, records, samples_by_stage(found, records), source)


def run_item(item: str, fetch_run: Callable[[str], Mapping[str, Any]], *, source: str,
             fetch_rows: Callable[[str], Iterable[Mapping[str, Any]]] | None = None) -> RunData:
    """``RUN`` or ``RUN@STAGE``, read with ``fetch_run(run_id)``: the document ``GET /runs/{id}``
    answers (the store's ``run`` in the service, that route from the CLI). When its raw results
    hold no requests, ``fetch_rows(run_id)`` gives the samples stored apart (NotFound: none)."""
    from vllmbench.report.params import split_item

    run_id, stage = split_item(item)
    found = fetch_run(run_id)
    rows: Iterable[Mapping[str, Any]] | None = request_rows(found["raw"])
    if not rows and fetch_rows is not None:
        try:
            rows = list(fetch_rows(run_id))
        except NotFound:
            rows = []
    run = run_data(run_id, found["standardized"], found["raw"], rows=rows, source=source)
    return run if stage is None else run.stage(stage)


def request_rows(raw: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every request of a run as ``requests.jsonl`` rows (with ``stage``), from the raw
    results that hold them; [] when none does. The one place samples are looked up."""
    rows: list[dict[str, Any]] = []
    for doc in raw:
        data = doc.get("data", doc)
        if not isinstance(data, Mapping) or data.get("format") != RAW_FORMAT:
            continue
        for stage in data.get("stages") or []:
            index = int(stage.get("index", 0))
            span_ms = (stage.get("planned_span_ns") or 0) / 1e6
            for req in stage.get("requests") or []:
                rows.append({"stage": index, "planned_span_ms": span_ms, **req})
        if rows:
            break  # the same run posted twice carries the same requests
    return rows


def _window_ms(record: StandardizedRecord, rows: list[dict[str, Any]]) -> tuple[float, float | None]:
    """The measured window of ``harness.aggregate.measured``, in ms of schedule time."""
    load = record.scenario.load
    start = load.warmup_s * 1000
    span = max((float(r.get("planned_span_ms") or 0) for r in rows), default=0.0)
    if load.mode == "rate" and span:
        return start, span - load.cooldown_s * 1000
    if load.duration_s:
        return start, (load.duration_s - load.cooldown_s) * 1000
    return start, None


def samples_by_stage(rows: Iterable[Mapping[str, Any]], records: list[StandardizedRecord]) -> dict[int, StageSamples]:
    """Group ``requests.jsonl``-shaped rows by stage and cut each to its record's window."""
    grouped: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(int(row.get("stage", 0)), []).append(dict(row))
    by_stage = {r.run.stage: r for r in records}
    out: dict[int, StageSamples] = {}
    for index, stage_rows in grouped.items():
        record = by_stage.get(index)
        if record is None:
            continue
        lo, hi = _window_ms(record, stage_rows)
        samples = StageSamples()
        for row in stage_rows:
            ok = row.get("error") is None and row.get("outcome", "ok") == "ok" and row.get("ttft_ms") is not None
            if ok and row.get("e2e_ms") is not None:
                end_s = (float(row["sent_ms"]) + float(row["e2e_ms"])) / 1000  # both from the stage start
                samples.completions.append((end_s, int(row.get("output_tokens") or len(row.get("itl_ms") or []) + 1)))
            scheduled = float(row.get("scheduled_ms") or 0.0)
            if "measured" in row:  # a stored sample: the harness marked its window
                outside = not row["measured"]
            else:
                outside = scheduled < lo or (hi is not None and scheduled > hi)
            if not ok or outside:
                continue
            samples.ttft_ms.append(float(row["ttft_ms"]))
            samples.itl_ms.extend(float(g) for g in row.get("itl_ms") or [])
            if row.get("e2e_ms") is not None:
                samples.e2e_ms.append(float(row["e2e_ms"]))
        samples.window_s = (lo / 1000, hi / 1000 if hi is not None else max((c[0] for c in samples.completions),
                                                                            default=0.0))
        samples.completions.sort()
        out[index] = samples
    return out
