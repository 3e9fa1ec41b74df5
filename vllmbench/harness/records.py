"""One request's measurements, as the client saw them. Pure.

Times are nanoseconds on the monotonic clock, relative to the stage's start, so that
records from several worker processes line up (CLOCK_MONOTONIC is system-wide).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class RequestRecord:
    index: int
    scheduled_ns: int
    sent_ns: int = 0
    end_ns: int = 0
    token_ns: list[int] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    tokens_from: str = "local"
    error: str | None = None
    status: int | None = None
    cap_wait_ns: int = 0
    worker: int = 0
    request_id: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def first_ns(self) -> int | None:
        return self.token_ns[0] if self.token_ns else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON line: milliseconds relative to the stage start, gaps in ms."""
        first = self.first_ns
        gaps = [round((b - a) / 1e6, 4) for a, b in zip(self.token_ns, self.token_ns[1:])]
        return {
            "index": self.index,
            "request_id": self.request_id,
            "scheduled_ms": round(self.scheduled_ns / 1e6, 4),
            "sent_ms": round(self.sent_ns / 1e6, 4),
            "ttft_ms": round((first - self.sent_ns) / 1e6, 4) if first is not None else None,
            "e2e_ms": round((self.end_ns - self.sent_ns) / 1e6, 4) if self.end_ns else None,
            "itl_ms": gaps,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "tokens_from": self.tokens_from,
            "error": self.error,
            "status": self.status,
            "cap_wait_ms": round(self.cap_wait_ns / 1e6, 4),
            "worker": self.worker,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RequestRecord":
        sent = round(float(data["sent_ms"]) * 1e6)
        tokens: list[int] = []
        if data.get("ttft_ms") is not None:
            t = sent + round(float(data["ttft_ms"]) * 1e6)
            tokens.append(t)
            for gap in data.get("itl_ms") or []:
                t += round(float(gap) * 1e6)
                tokens.append(t)
        e2e = data.get("e2e_ms")
        return cls(
            index=int(data["index"]),
            scheduled_ns=round(float(data["scheduled_ms"]) * 1e6),
            sent_ns=sent,
            end_ns=sent + round(float(e2e) * 1e6) if e2e is not None else 0,
            token_ns=tokens,
            input_tokens=data.get("input_tokens"),
            output_tokens=data.get("output_tokens"),
            tokens_from=data.get("tokens_from", "local"),
            error=data.get("error"),
            status=data.get("status"),
            cap_wait_ns=round(float(data.get("cap_wait_ms", 0.0)) * 1e6),
            worker=int(data.get("worker", 0)),
            request_id=str(data.get("request_id", "")),
        )
