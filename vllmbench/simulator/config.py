"""What the simulator is told to be: latencies, capacity, faults, served names. Pure."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class SimConfig:
    """Configuration of one simulated vLLM server.

    Tokens are whitespace-separated words: ``/tokenize`` and the usage counts agree
    with that rule, so a client's local count and the server's count can be compared.
    """

    host: str = "127.0.0.1"
    port: int = 8100
    models: tuple[str, ...] = ("sim-model",)
    ttft_ms: float = 20.0
    itl_ms: float = 5.0
    jitter_ms: float = 0.0
    max_num_seqs: int = 256
    max_model_len: int = 4096
    default_max_tokens: int = 16
    error_rate: float = 0.0
    disconnect_rate: float = 0.0
    malformed_rate: float = 0.0
    seed: int = 0
    record_limit: int = 200_000
    token_text: str = " hi"

    def __post_init__(self) -> None:
        problems = []
        if not self.models:
            problems.append("at least one served model name is needed")
        if self.ttft_ms < 0 or self.itl_ms < 0 or self.jitter_ms < 0:
            problems.append("ttft_ms, itl_ms and jitter_ms must be >= 0")
        if self.max_num_seqs < 1:
            problems.append("max_num_seqs must be >= 1")
        for name in ("error_rate", "disconnect_rate", "malformed_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                problems.append(f"{name}={value} must be between 0 and 1")
        if not 0 <= self.port <= 65535:
            problems.append(f"port={self.port} is not a TCP port")
        if problems:
            raise ValueError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["models"] = list(self.models)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SimConfig":
        values = dict(data)
        if "models" in values:
            values["models"] = tuple(values["models"])
        return cls(**values)


@dataclass
class SeqRecord:
    """What the simulator did for one request (monotonic nanoseconds, this host's clock)."""

    id: str
    client_request_id: str | None
    model: str
    stream: bool
    arrival_ns: int
    prompt_tokens: int
    max_tokens: int
    scheduled_ns: int = 0
    token_ns: list[int] = field(default_factory=list)
    end_ns: int = 0
    outcome: str = "running"

    def to_dict(self) -> dict[str, Any]:
        first = self.token_ns[0] if self.token_ns else None
        return {
            "id": self.id,
            "client_request_id": self.client_request_id,
            "model": self.model,
            "stream": self.stream,
            "arrival_ns": self.arrival_ns,
            "scheduled_ns": self.scheduled_ns,
            "first_token_ns": first,
            "token_ns": self.token_ns,
            "end_ns": self.end_ns,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": len(self.token_ns),
            "outcome": self.outcome,
            "ttft_ms": (first - self.arrival_ns) / 1e6 if first else None,
        }
