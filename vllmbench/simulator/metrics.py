"""Prometheus text exposition with vLLM's metric names. Pure: counters in, text out."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

# Bucket bounds (seconds) as vLLM declares them for these histograms.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0)


class Histogram:
    __slots__ = ("bounds", "counts", "total", "count")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def lines(self, name: str, labels: str) -> list[str]:
        out = []
        running = 0
        for bound, count in zip(self.bounds, self.counts):
            running += count
            out.append(f'{name}_bucket{{{labels},le="{bound}"}} {running}')
        out.append(f'{name}_bucket{{{labels},le="+Inf"}} {self.count}')
        out.append(f"{name}_sum{{{labels}}} {self.total}")
        out.append(f"{name}_count{{{labels}}} {self.count}")
        return out


class ModelMetrics:
    """The counters and histograms of one served model name."""

    def __init__(self) -> None:
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.success = 0
        self.ttft = Histogram(TTFT_BUCKETS)
        self.itl = Histogram(ITL_BUCKETS)
        self.tpot = Histogram(ITL_BUCKETS)
        self.e2e = Histogram(E2E_BUCKETS)


def render(models: dict[str, ModelMetrics], *, running: int, waiting: int, kv_usage: float) -> str:
    """The /metrics body. Gauges carry the first model's label, as one vLLM engine would."""
    first = next(iter(models))
    gauge_labels = f'model_name="{first}",engine="0"'
    lines = [
        "# HELP vllm:num_requests_running Number of requests in model execution batches.",
        "# TYPE vllm:num_requests_running gauge",
        f"vllm:num_requests_running{{{gauge_labels}}} {running}",
        "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
        "# TYPE vllm:num_requests_waiting gauge",
        f"vllm:num_requests_waiting{{{gauge_labels}}} {waiting}",
        "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.",
        "# TYPE vllm:kv_cache_usage_perc gauge",
        f"vllm:kv_cache_usage_perc{{{gauge_labels}}} {kv_usage}",
        "# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage (older name). 1 means 100 percent usage.",
        "# TYPE vllm:gpu_cache_usage_perc gauge",
        f"vllm:gpu_cache_usage_perc{{{gauge_labels}}} {kv_usage}",
    ]
    counters = (
        ("vllm:prompt_tokens_total", "Number of prefill tokens processed.", "prompt_tokens"),
        ("vllm:generation_tokens_total", "Number of generation tokens processed.", "generation_tokens"),
        ("vllm:request_success_total", "Count of successfully processed requests.", "success"),
    )
    for name, help_text, attr in counters:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
        for model, m in models.items():
            lines.append(f'{name}{{model_name="{model}",engine="0"}} {getattr(m, attr)}')
    histograms = (
        ("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", "ttft"),
        ("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", "itl"),
        ("vllm:time_per_output_token_seconds", "Histogram of time per output token in seconds.", "tpot"),
        ("vllm:e2e_request_latency_seconds", "Histogram of end to end request latency in seconds.", "e2e"),
    )
    for name, help_text, attr in histograms:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
        for model, m in models.items():
            lines += getattr(m, attr).lines(name, f'model_name="{model}",engine="0"')
    return "\n".join(lines) + "\n"
