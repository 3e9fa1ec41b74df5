"""Token length distributions for synthetic prompts and outputs. Pure.

Spec strings: ``128`` or ``fixed:128``; ``uniform:MIN:MAX``; ``normal:MEAN:STDDEV[:MIN:MAX]``.
Normal draws are clipped into the bounds (default 1 .. mean + 4 stddev).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from vllmbench.models.results import LengthDistribution


@dataclass(frozen=True)
class LengthSpec:
    kind: str
    mean: float
    stddev: float = 0.0
    low: int = 1
    high: int = 1

    @classmethod
    def parse(cls, text: str) -> "LengthSpec":
        parts = [p.strip() for p in str(text).split(":")]
        try:
            if len(parts) == 1 or parts[0] == "fixed":
                value = int(parts[-1])
                spec = cls("fixed", value, 0.0, value, value)
            elif parts[0] == "uniform" and len(parts) == 3:
                low, high = int(parts[1]), int(parts[2])
                spec = cls("uniform", (low + high) / 2, 0.0, low, high)
            elif parts[0] == "normal" and len(parts) in (3, 5):
                mean, std = float(parts[1]), float(parts[2])
                low, high = (int(parts[3]), int(parts[4])) if len(parts) == 5 else (1, int(mean + 4 * std))
                spec = cls("normal", mean, std, low, high)
            else:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"length {text!r} is not N, fixed:N, uniform:MIN:MAX or normal:MEAN:STDDEV[:MIN:MAX]"
            ) from None
        if spec.low < 1 or spec.high < spec.low or spec.stddev < 0:
            raise ValueError(f"length {text!r}: need 1 <= min <= max and stddev >= 0")
        return spec

    def sample(self, rng: random.Random) -> int:
        if self.kind == "fixed":
            return self.low
        if self.kind == "uniform":
            return rng.randint(self.low, self.high)
        return min(self.high, max(self.low, round(rng.gauss(self.mean, self.stddev))))

    def describe(self) -> LengthDistribution:
        return LengthDistribution(
            kind=self.kind,  # type: ignore[arg-type]
            mean=self.mean,
            stddev=self.stddev if self.kind == "normal" else None,
            min=self.low,
            max=self.high,
        )
