"""What a run is asked to do, checked before anything is sent. Pure."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from vllmbench.errors import ValidationFailed
from vllmbench.harness.lengths import LengthSpec
from vllmbench.harness.schedule import ARRIVALS

MAX_REQUESTS_PER_STAGE = 5_000_000
MAX_SHARDS = 100


@dataclass(frozen=True)
class Thresholds:
    """Beyond these the client, not the server, may be what the figures describe."""

    schedule_delay_p50_ms: float = 2.0
    schedule_delay_p99_ms: float = 10.0
    achieved_rate_ratio: float = 0.95
    process_cpu_percent: float = 90.0
    cap_wait_p99_ms: float = 1.0
    ttft_inflation_ms: float = 0.5
    coalesced_tokens_percent: float = 20.0


@dataclass(frozen=True)
class SloSpec:
    ttft_ms: float | None = None
    itl_ms: float | None = None
    tpot_ms: float | None = None
    e2e_ms: float | None = None

    def any(self) -> bool:
        return any(v is not None for v in (self.ttft_ms, self.itl_ms, self.tpot_ms, self.e2e_ms))


@dataclass(frozen=True)
class RunConfig:
    url: str
    model: str | None = None
    endpoint: str = "completions"
    stream: bool = True
    api_key: str | None = None
    mode: str = "rate"
    rates: tuple[float, ...] = ()
    concurrencies: tuple[int, ...] = ()
    search: bool = False
    arrival: str = "constant"
    burstiness: float = 1.0
    duration_s: float | None = 30.0
    request_count: int | None = None
    warmup_s: float = 0.0
    cooldown_s: float = 0.0
    max_in_flight: int | None = None
    timeout_s: float = 300.0
    workers: int = 1
    dataset: str = "synthetic"
    dataset_path: str | None = None
    input_len: str = "128"
    output_len: str = "128"
    unique_prompts: bool = True
    seed: int = 0
    slo: SloSpec = field(default_factory=SloSpec)
    thresholds: Thresholds = field(default_factory=Thresholds)
    run_id: str = ""
    project: str | None = None
    tags: tuple[str, ...] = ()
    search_max_stages: int = 8
    # Load beyond one client: this process sends shard ``shard_index`` of ``shards`` (arrivals
    # i, i + shards, ...) of the one schedule, which starts at the Unix time ``start_at`` in every
    # shard; a sweep's next stage starts ``stage_gap_s`` after the end of the last one's schedule.
    # A merged run has ``shards`` > 1 and no ``shard_index``.
    shard_index: int | None = None
    shards: int = 1
    start_at: float | None = None
    stage_gap_s: float = 10.0

    def validate(self) -> None:
        """Raise ``ValidationFailed`` naming each impossible setting."""
        problems = []
        if not self.url.startswith(("http://", "https://")):
            problems.append(f"url {self.url!r} must start with http:// or https://")
        if self.endpoint not in ("completions", "chat"):
            problems.append(f"endpoint {self.endpoint!r} is not completions or chat")
        if self.mode not in ("rate", "concurrency"):
            problems.append(f"mode {self.mode!r} is not rate or concurrency")
        if self.mode == "rate" and not self.rates:
            problems.append("rate mode needs at least one --rate")
        if self.mode == "concurrency" and not self.concurrencies:
            problems.append("concurrency mode needs at least one --concurrency")
        if any(r <= 0 or r != r or r == float("inf") for r in self.rates):
            problems.append(f"rates must be positive and finite, got {list(self.rates)}")
        if any(c < 1 for c in self.concurrencies):
            problems.append(f"concurrencies must be >= 1, got {list(self.concurrencies)}")
        if self.arrival not in ARRIVALS:
            problems.append(f"arrival {self.arrival!r} is not one of {', '.join(ARRIVALS)}")
        if self.burstiness <= 0:
            problems.append("burstiness must be > 0")
        if self.duration_s is None and self.request_count is None:
            problems.append("give a duration or a request count")
        if self.duration_s is not None and self.duration_s <= 0:
            problems.append(f"duration must be > 0 s, got {self.duration_s}")
        if self.request_count is not None and not 1 <= self.request_count <= MAX_REQUESTS_PER_STAGE:
            problems.append(f"request count must be 1..{MAX_REQUESTS_PER_STAGE}, got {self.request_count}")
        if self.warmup_s < 0 or self.cooldown_s < 0:
            problems.append("warm-up and cool-down must be >= 0 s")
        if self.duration_s is not None and self.warmup_s + self.cooldown_s >= self.duration_s:
            problems.append(f"warm-up ({self.warmup_s} s) + cool-down ({self.cooldown_s} s) leave nothing of the {self.duration_s} s duration to measure")
        if self.max_in_flight is not None and self.max_in_flight < 1:
            problems.append("max in flight must be >= 1")
        if self.timeout_s <= 0:
            problems.append("timeout must be > 0 s")
        if not 1 <= self.workers <= 64:
            problems.append(f"workers must be 1..64, got {self.workers}")
        if self.workers > 1 and self.mode != "rate":
            problems.append("--workers applies to rate mode; concurrency mode runs in one process")
        if self.dataset not in ("synthetic", "jsonl", "sharegpt"):
            problems.append(f"dataset {self.dataset!r} is not synthetic, jsonl or sharegpt")
        if self.dataset != "synthetic" and not self.dataset_path:
            problems.append(f"dataset {self.dataset} needs a file path")
        for name in ("input_len", "output_len"):
            try:
                LengthSpec.parse(getattr(self, name))
            except ValueError as exc:
                problems.append(str(exc))
        if self.search and self.mode != "rate":
            problems.append("the saturation search varies the rate: use it in rate mode")
        for rate in self.rates:
            n = self.request_count or int(rate * (self.duration_s or 0))
            if n > MAX_REQUESTS_PER_STAGE:
                problems.append(f"rate {rate}/s for {self.duration_s} s is {n} requests, over {MAX_REQUESTS_PER_STAGE}")
        problems += self._shard_problems()
        if problems:
            raise ValidationFailed("; ".join(problems), details=[{"message": p} for p in problems])

    def _shard_problems(self) -> list[str]:
        problems = [] if self.start_at is None or self.start_at > 0 else ["start at must be a Unix time"]
        if self.shards == 1 and self.shard_index in (None, 0):
            return problems  # one client: nothing to split
        if not 1 <= self.shards <= MAX_SHARDS:
            problems.append(f"shards must be 1..{MAX_SHARDS}, got {self.shards}")
        elif self.shard_index is None or not 0 <= self.shard_index < self.shards:
            problems.append(f"shard must be I/N with 0 <= I < N, got {self.shard_index}/{self.shards}")
        if self.mode != "rate" or self.search:
            problems.append("--shard splits a rate schedule: it cannot run a concurrency stage or --search "
                            "(their next request depends on the last answer, which only one client sees)")
        if self.start_at is None:
            problems.append("--shard needs --start-at: every shard starts the schedule at that Unix time")
        if not self.run_id:
            problems.append("--shard needs --run-id: every shard names the run they make together")
        if self.stage_gap_s < 0:
            problems.append(f"stage gap must be >= 0 s, got {self.stage_gap_s}")
        return problems

    @property
    def sharded(self) -> bool:
        return self.shard_index is not None and self.shards > 1

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("api_key", None)
        return data
