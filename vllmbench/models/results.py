"""The standardized benchmark record and the raw harness output.

Latencies are in milliseconds, rates per second. The record maps to and from the
llm-d Benchmark Report v0.2 (``vllmbench.standardize.llmd``), and adds what that
report lacks: goodput against stated SLOs and the client's trust figures.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from vllmbench.models.base import Strict, as_utc

RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,199}$"
RECORD_SCHEMA_VERSION = "1"
MAX_STAGE = 2**31 - 1  # stored as a database integer: a BSON int64 could hold more, no sweep needs it

class Stats(Strict):
    """Summary statistics of one quantity over the requests of a run.

    Our own harness fills every field; a record imported from another tool may carry
    only some (an llm-d report with a mean alone), so all but ``mean`` are optional.
    """

    units: Literal["ms", "ms/token", "s", "tokens", "tokens/s", "requests/s", "percent"] = "ms"
    count: int | None = Field(None, ge=0, description="Samples the statistics were computed from.")
    mean: float = Field(ge=0)
    stddev: float | None = Field(None, ge=0)
    min: float | None = Field(None, ge=0)
    p50: float | None = Field(None, ge=0)
    p90: float | None = Field(None, ge=0)
    p95: float | None = Field(None, ge=0)
    p99: float | None = Field(None, ge=0)
    p999: float | None = Field(None, ge=0, description="The 99.9th percentile.")
    max: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> "Stats":
        # Runs for every statistic of every record ingested: plain reads of the fields' dict,
        # and first the usual case (every figure there, in order) in one chained comparison.
        fields = self.__dict__
        low, p50, p90, p95, p99, p999, high = (fields["min"], fields["p50"], fields["p90"], fields["p95"],
                                               fields["p99"], fields["p999"], fields["max"])
        if None not in (low, p50, p90, p95, p99, p999, high) \
                and low <= p50 <= p90 <= p95 <= p99 <= p999 <= high and low <= fields["mean"] <= high:
            return self
        lo_name, lo = "", None
        for hi_name in ORDERED_FIGURES:
            hi = fields[hi_name]
            if hi is None:
                continue
            if lo is not None and lo > hi * (1 + 1e-9) + 1e-12:
                raise ValueError(f"percentiles out of order: {lo_name}={lo} > {hi_name}={hi}")
            lo_name, lo = hi_name, hi
        mean, low, high = fields["mean"], fields["min"], fields["max"]
        if low is not None and mean < low * (1 - 1e-9) - 1e-12:
            raise ValueError(f"mean={mean} is below min={low}")
        if high is not None and mean > high * (1 + 1e-9) + 1e-12:
            raise ValueError(f"mean={mean} is above max={high}")
        return self


ORDERED_FIGURES = ("min", "p50", "p90", "p95", "p99", "p999", "max")


class RunInfo(Strict):
    run_id: str = Field(pattern=RUN_ID_PATTERN, description="Unique id of the benchmark run.")
    stage: int = Field(0, ge=0, le=MAX_STAGE, description="Index of the load stage (sweep step) within the run.")
    experiment_id: str | None = Field(None, max_length=200)
    project: str | None = Field(None, pattern=NAME_PATTERN)
    started_at: dt.datetime
    ended_at: dt.datetime | None = None
    duration_s: float | None = Field(None, ge=0)
    config_commit: str | None = Field(None, pattern=r"^[0-9a-f]{7,64}$")

    @model_validator(mode="after")
    def _times(self) -> "RunInfo":
        if self.ended_at is not None and as_utc(self.ended_at) < as_utc(self.started_at):
            raise ValueError("ended_at is before started_at")
        return self


class Accelerator(Strict):
    model: str = Field(max_length=200, description="e.g. NVIDIA-H100-80GB-HBM3")
    count: int = Field(ge=0)


class Parallelism(Strict):
    tp: int = Field(1, ge=1, description="tensor parallel size")
    pp: int = Field(1, ge=1, description="pipeline parallel size")
    dp: int = Field(1, ge=1, description="data parallel size")
    ep: int = Field(1, ge=1, description="expert parallel size")


class LengthDistribution(Strict):
    """Distribution of token lengths (prompt or output)."""

    kind: Literal["fixed", "uniform", "normal", "dataset", "other"] = "fixed"
    mean: float = Field(ge=0)
    stddev: float | None = Field(None, ge=0)
    min: int | None = Field(None, ge=0)
    max: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> "LengthDistribution":
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min={self.min} > max={self.max}")
        return self


class LoadProfile(Strict):
    mode: Literal["rate", "concurrency"]
    arrival: Literal["constant", "poisson", "burst"] | None = Field(
        None, description="Arrival process when mode is rate."
    )
    rate_rps: float | None = Field(None, gt=0, description="Requested rate, requests per second.")
    concurrency: int | None = Field(None, ge=1, description="Requests kept in flight.")
    max_in_flight: int | None = Field(None, ge=1, description="Client cap on requests in flight.")
    duration_s: float | None = Field(None, gt=0)
    request_count: int | None = Field(None, ge=1)
    warmup_s: float = Field(0.0, ge=0)
    cooldown_s: float = Field(0.0, ge=0)
    input_tokens: LengthDistribution | None = None
    output_tokens: LengthDistribution | None = None
    dataset: str | None = Field(None, max_length=500, description="synthetic, a file name, or sharegpt")
    unique_prompts: bool = Field(True, description="False when prompts may share prefixes (prefix cache can flatter).")
    streaming: bool = True
    endpoint: Literal["completions", "chat"] = "completions"

    @model_validator(mode="after")
    def _consistent(self) -> "LoadProfile":
        if self.mode == "rate" and self.rate_rps is None:
            raise ValueError("mode 'rate' needs rate_rps")
        if self.mode == "concurrency" and self.concurrency is None:
            raise ValueError("mode 'concurrency' needs concurrency")
        return self


class Harness(Strict):
    name: str = Field(pattern=NAME_PATTERN, description="vllmbench, guidellm, vllm-bench-serve, ...")
    version: str | None = Field(None, max_length=100)


class Scenario(Strict):
    model: str = Field(max_length=300)
    engine: str = Field("vllm", max_length=100)
    engine_version: str | None = Field(None, max_length=100)
    accelerator: Accelerator | None = None
    parallelism: Parallelism = Field(default_factory=Parallelism)
    load: LoadProfile
    harness: Harness


class RequestCounts(Strict):
    total: int = Field(ge=0)
    succeeded: int = Field(ge=0)
    failed: int = Field(ge=0)
    failures_by_cause: dict[str, int] = Field(default_factory=dict)

    @field_validator("failures_by_cause")
    @classmethod
    def _non_negative(cls, value: dict[str, int]) -> dict[str, int]:
        for cause, count in value.items():
            if count < 0:
                raise ValueError(f"failures_by_cause[{cause!r}] is negative")
        return value

    @model_validator(mode="after")
    def _sum(self) -> "RequestCounts":
        if self.succeeded + self.failed > self.total:
            raise ValueError(f"succeeded ({self.succeeded}) + failed ({self.failed}) > total ({self.total})")
        if self.failures_by_cause and sum(self.failures_by_cause.values()) != self.failed:
            raise ValueError("failures_by_cause does not add up to failed")
        return self


class Throughput(Strict):
    requests_per_s: float = Field(ge=0)
    input_tokens_per_s: float = Field(ge=0)
    output_tokens_per_s: float = Field(ge=0)
    total_tokens_per_s: float = Field(ge=0)


class Latency(Strict):
    ttft: Stats | None = Field(None, description="Time to first token, ms.")
    itl: Stats | None = Field(None, description="Every gap between streamed tokens, ms.")
    tpot: Stats | None = Field(None, description="(e2e - ttft) / (output tokens - 1), ms/token.")
    ntpot: Stats | None = Field(None, description="e2e / output tokens, ms/token.")
    e2e: Stats | None = Field(None, description="End-to-end request latency, ms.")
    e2e_from_schedule: Stats | None = Field(
        None, description="Latency counted from the planned send time: shows a client backlog."
    )


class Slo(Strict):
    ttft_ms: float | None = Field(None, gt=0)
    itl_ms: float | None = Field(None, gt=0)
    tpot_ms: float | None = Field(None, gt=0)
    e2e_ms: float | None = Field(None, gt=0)


class Goodput(Strict):
    slo: Slo
    good_requests: int = Field(ge=0)
    requests_per_s: float = Field(ge=0)
    fraction: float = Field(ge=0, le=1)


class Trust(Strict):
    """How far the client itself can be trusted for this run."""

    schedule_delay_ms: Stats | None = Field(None, description="Actual minus planned send time.")
    requested_rate_rps: float | None = Field(None, gt=0)
    achieved_rate_rps: float | None = Field(None, ge=0)
    client_cpu_percent: float | None = Field(None, ge=0)
    cap_wait_ms: Stats | None = Field(None, description="Time requests waited for the in-flight cap.")
    loop_lateness_ms: Stats | None = Field(
        None, description="How late the client's event loop ran, sampled every 2 ms through the stage (every process).")
    ttft_p50_inflation_ms: float | None = Field(
        None, ge=0, description="Estimated rise of the TTFT p50 caused by the client's own lateness.")
    coalesced_tokens_percent: float | None = Field(
        None, ge=0, description="Streamed tokens read together with an earlier one although the server sent them apart.")
    cpu_wait_percent: float | None = Field(
        None, ge=0, description="Share of the stage the busiest client process was ready to run but waited for a CPU.")
    cpu_throttled_percent: float | None = Field(
        None, ge=0, description="Share of the stage a CPU limit (cgroup quota) stopped the most throttled client process.")
    trustworthy: bool = True
    reasons: list[str] = Field(default_factory=list)


class AccuracyMetric(Strict):
    """One accuracy metric of one task, as the harness computed it (lm-eval's acc, exact_match, ...)."""

    value: float
    stderr: float | None = Field(None, ge=0, description="Standard error of value; None when not reported.")
    samples: int | None = Field(None, ge=0, description="Samples (documents) the metric was computed over.")
    higher_is_better: bool | None = Field(None, description="As the task defines it; None when not stated.")


class Results(Strict):
    requests: RequestCounts
    # Optional only for an accuracy-only record (an accuracy harness measures no throughput).
    throughput: Throughput | None = None
    latency: Latency = Field(default_factory=Latency)
    input_tokens: Stats | None = None
    output_tokens: Stats | None = None
    token_counts_from: Literal["server", "local", "mixed", "unknown"] = "unknown"
    goodput: Goodput | None = None
    trust: Trust | None = None
    accuracy: dict[str, dict[str, AccuracyMetric]] | None = Field(
        None, max_length=1000,
        description="Per task, per metric (e.g. 'acc', 'exact_match,strict-match'): value, stderr, samples.",
    )

    @field_validator("accuracy")
    @classmethod
    def _accuracy_names(cls, value: dict[str, dict[str, AccuracyMetric]] | None) -> Any:
        for task, metrics in (value or {}).items():
            if not task or len(task) > 200:
                raise ValueError("each task name is 1 to 200 characters")
            if not metrics:
                raise ValueError(f"task {task!r} has no metrics")
            if any(not metric or len(metric) > 200 for metric in metrics):
                raise ValueError(f"task {task!r}: each metric name is 1 to 200 characters")
        return value

    @model_validator(mode="after")
    def _throughput_or_accuracy(self) -> "Results":
        if self.throughput is None and not self.accuracy:
            raise ValueError("throughput is required (only an accuracy-only record, with accuracy, may leave it out)")
        return self


class StandardizedRecord(Strict):
    """One benchmark result at one load point, comparable across harnesses."""

    schema_version: Literal["1"] = RECORD_SCHEMA_VERSION
    run: RunInfo
    scenario: Scenario
    results: Results
    tags: list[str] = Field(default_factory=list, max_length=50)
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not tag or len(tag) > 100:
                raise ValueError("each tag is 1 to 100 characters")
        return value

    def key(self) -> str:
        """Identity of the record: one per run and stage."""
        return f"{self.run.run_id}#{self.run.stage}"


class RawInput(Strict):
    """Whatever a harness produced, with the metadata that makes it findable."""

    run_id: str = Field(pattern=RUN_ID_PATTERN)
    project: str | None = Field(None, pattern=NAME_PATTERN)
    model: str | None = Field(None, max_length=300)
    harness: Harness
    tags: list[str] = Field(default_factory=list, max_length=50)
    config_commit: str | None = Field(None, pattern=r"^[0-9a-f]{7,64}$")
    started_at: dt.datetime | None = None
    ended_at: dt.datetime | None = None
    data: dict[str, Any] = Field(description="The harness output, stored as-is.")


# One record or a batch: the body of POST /standardized_output.
RecordOrBatch = StandardizedRecord | list[StandardizedRecord]
