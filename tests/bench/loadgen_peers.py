"""GuideLLM and aiperf on the same simulator, installed into their own venv on first use.

Never a project dependency: they go into ${VLLMBENCH_CACHE_DIR:-~/.cache/vllmbench}/peers-venv
(GuideLLM 0.8.1 with torch 2.13.0, aiperf 0.13.0), with a small byte-level BPE tokenizer
trained locally with ``tokenizers`` so that they run offline. Every step is bounded in
time and every loop in count; a step that fails is printed with what failed, and the
benchmark goes on.

Each tool's TTFT p50 (from its own JSON report) is compared with the simulator's own
per-request record of the same run (``GET /_sim/requests``); the rate the requests
actually arrived at, and how late they arrived against an exact constant schedule, are
also taken from the simulator's record, so that every tool is judged by the same ruler.
So is its CPU per streamed token: the CPU of the tool's whole process tree from the first
arrival to the last response (sampled every 0.2 s), over the tokens the simulator sent.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CACHE = Path(os.environ.get("VLLMBENCH_CACHE_DIR") or Path.home() / ".cache" / "vllmbench")
VENV = CACHE / "peers-venv"
TOKENIZER = CACHE / "peers-tokenizer"
OUT = CACHE / "peers-out"
PACKAGES = ["torch==2.13.0", "guidellm==0.8.1", "aiperf==0.13.0", "tokenizers"]
INSTALL_TIMEOUT_S = 1800
MODEL = "sim-model"
TOOLS = ("guidellm", "aiperf")
# Each run starts a fresh tool (GuideLLM and aiperf take 20-30 s to start here): bound a tool's whole sweep.
TOOL_BUDGET_S = float(os.environ.get("BENCH_PEER_BUDGET_S", "900"))
TOPPED_OUT = 0.90  # arrivals below this share of the requested rate: the tool cannot send more
ON_SCHEDULE_LAG_MS = 10.0  # arrival lag p99 at most this: the requests reached the server when planned


def _py() -> Path:
    return VENV / "bin" / "python"


def _last_line(text: str) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def install() -> str | None:
    """None when the peers venv is ready, else what failed."""
    stamp = VENV / ".ready"
    if stamp.exists() and stamp.read_text().split() == PACKAGES:
        return None
    try:
        if not _py().exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True, timeout=300)
        proc = subprocess.run([str(_py()), "-m", "pip", "install", "-q", *PACKAGES], capture_output=True, text=True,
                              timeout=INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"pip install {' '.join(PACKAGES)} did not finish in {INSTALL_TIMEOUT_S} s"
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"cannot create the peers venv at {VENV}: {exc}"
    if proc.returncode != 0:
        return f"pip install {' '.join(PACKAGES)} failed: {_last_line(proc.stderr) or proc.returncode}"
    for tool in TOOLS:
        if not (VENV / "bin" / tool).exists():
            return f"pip installed {' '.join(PACKAGES)} but {VENV / 'bin' / tool} is missing"
    stamp.write_text(" ".join(PACKAGES))
    return None


def tokenizer() -> str | None:
    """A 512-token byte-level BPE trained here, saved as a Hugging Face tokenizer folder."""
    if (TOKENIZER / "tokenizer.json").exists():
        return None
    TOKENIZER.mkdir(parents=True, exist_ok=True)
    script = (
        "import sys\n"
        "from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers\n"
        "from transformers import PreTrainedTokenizerFast\n"
        "tok = Tokenizer(models.BPE())\n"
        "tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)\n"
        "tok.decoder = decoders.ByteLevel()\n"
        "words = 'the of and to in is was for that with on as by at from hi hello world'.split()\n"
        "text = [' '.join(words[(i * 7 + j) % len(words)] for j in range(64)) for i in range(2000)]\n"
        "tok.train_from_iterator(text, trainers.BpeTrainer(vocab_size=512, special_tokens=['<|endoftext|>'],"
        " initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))\n"
        "fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token='<|endoftext|>')\n"
        "fast.save_pretrained(sys.argv[1])\n"
    )
    try:
        proc = subprocess.run([str(_py()), "-c", script, str(TOKENIZER)], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return "training the local tokenizer did not finish in 300 s"
    if proc.returncode != 0:
        shutil.rmtree(TOKENIZER, ignore_errors=True)
        return f"training the local tokenizer failed: {_last_line(proc.stderr)}"
    return None


# --- commands (flags checked against `guidellm run --help` 0.8.1 and `aiperf profile --help` 0.13.0) ---
def guidellm_cmd(url: str, rate: float, seconds: float, out: Path) -> list[str]:
    return [str(VENV / "bin" / "guidellm"), "run",
            "--backend", f"kind=openai_http,target={url},model={MODEL},request_format=/v1/completions",
            "--profile", f"kind=constant,rate={rate:g}",
            "--constraint", f"kind=max_duration,seconds={seconds:g}",
            "--tokenizer", f"kind=huggingface_auto,model={TOKENIZER}",
            "--data", "kind=synthetic_text,prompt_tokens=128,output_tokens=128",
            "--output", f"kind=json,path={out / 'benchmarks.json'}",
            "--disable-console-interactive"]


def aiperf_cmd(url: str, rate: float, seconds: float, out: Path) -> list[str]:
    return [str(VENV / "bin" / "aiperf"), "profile", "--model", MODEL, "--url", url, "--endpoint-type", "completions",
            "--streaming", "--tokenizer", str(TOKENIZER), "--request-rate", f"{rate:g}", "--arrival-pattern", "constant",
            "--request-count", str(max(1, int(rate * seconds))), "--isl", "128", "--isl-stddev", "0",
            "--osl", "128", "--osl-stddev", "0", "--use-legacy-max-tokens",  # the max_tokens field, as vLLM's own client
            "--artifact-dir", str(out), "--ui-type", "none"]


# --- reports ---
def guidellm_result(out: Path) -> tuple[float | None, int, int]:
    """(TTFT p50 ms, successful, failed) from GuideLLM's benchmarks.json."""
    data = json.loads((out / "benchmarks.json").read_text())
    bench = data["benchmarks"][0]
    ttft = bench["metrics"]["time_to_first_token_ms"]["successful"]
    requests = bench.get("requests") or {}
    return (float(ttft["median"]) if ttft.get("count") else None, len(requests.get("successful") or []),
            len(requests.get("errored") or []))


def aiperf_result(out: Path) -> tuple[float | None, int, int]:
    """(TTFT p50 ms, successful, failed) from aiperf's profile_export_aiperf.json."""
    data = json.loads((out / "profile_export_aiperf.json").read_text())
    ttft = data.get("time_to_first_token") or {}
    count = int((data.get("request_count") or {}).get("avg") or ttft.get("count") or 0)
    errors = sum(int(e.get("count", 0)) for e in data.get("error_summary") or [] if isinstance(e, dict))
    return (float(ttft["p50"]) if "p50" in ttft else None, count, errors)


@dataclass
class Truth:
    """What the simulator saw of one run."""

    ttft_p50_ms: float | None
    ok: int
    arrival_rate: float | None   # requests that arrived / span of their arrivals
    lag_p99_ms: float | None     # arrival minus the exact constant schedule anchored at the first arrival
    tokens: int = 0              # tokens the simulator sent
    span_ns: tuple[int, int] = (0, 0)  # first arrival, last end: when the load was on


def truth(records: list[dict[str, Any]], rate: float) -> Truth:
    ttfts = sorted(t["ttft_ms"] for t in records if t["outcome"] == "ok" and t["ttft_ms"] is not None)
    arrivals = sorted(t["arrival_ns"] for t in records)
    arrival_rate = lag = None
    if len(arrivals) >= 2 and arrivals[-1] > arrivals[0]:
        arrival_rate = (len(arrivals) - 1) / ((arrivals[-1] - arrivals[0]) / 1e9)
        step = 1e9 / rate
        lags = sorted((a - arrivals[0] - i * step) / 1e6 for i, a in enumerate(arrivals))
        lag = lags[min(len(lags) - 1, int(0.99 * len(lags)))] - lags[0]
    span = (arrivals[0], max(t["end_ns"] for t in records)) if records else (0, 0)
    return Truth(statistics.median(ttfts) if ttfts else None, len(ttfts), arrival_rate, lag,
                 sum(len(t["token_ns"]) for t in records), span)


class TreeCpu:
    """CPU seconds of a process and all its descendants, sampled every 0.2 s while it runs, so that
    the CPU of the load window (from the simulator's first arrival to its last response) can be
    told apart from a tool's start-up (GuideLLM and aiperf take 20-30 s to start here)."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.samples: list[tuple[int, float]] = []
        self.seen: dict[int, float] = {}  # last CPU of each process: one that exited keeps its share

    def sample(self) -> None:
        import psutil

        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        for p in procs:
            try:
                t = p.cpu_times()
                self.seen[p.pid] = t.user + t.system
            except psutil.Error:
                pass
        self.samples.append((time.monotonic_ns(), sum(self.seen.values())))

    def between(self, start_ns: int, end_ns: int) -> float | None:
        """CPU seconds spent between two monotonic times (linear between samples)."""
        def at(t: int) -> float | None:
            before = [s for s in self.samples if s[0] <= t]
            after = [s for s in self.samples if s[0] >= t]
            if not before or not after:
                return None
            (t0, c0), (t1, c1) = before[-1], after[0]
            return c0 if t1 == t0 else c0 + (c1 - c0) * (t - t0) / (t1 - t0)

        a, b = at(start_ns), at(end_ns)
        return b - a if a is not None and b is not None else None


def cpu_us_per_token(cpu: TreeCpu, seen: Truth) -> float | None:
    spent = cpu.between(*seen.span_ns) if seen.tokens else None
    return 1e6 * spent / seen.tokens if spent is not None else None


@dataclass
class Outcome:
    held: float | None = None       # highest rate (from the bottom, without a miss) with |TTFT p50 error| <= tolerance
    on_schedule: float | None = None  # the same, and also arrival lag p99 <= ON_SCHEDULE_LAG_MS: no backlog
    top: float | None = None        # highest arrival rate the simulator saw from this tool
    error_at_held: float | None = None
    failure: str | None = None      # what stopped the tool, when it did not run
    topped: bool = False            # arrivals fell below 90% of a requested rate: ``top`` is the tool's limit
    missed: bool = False
    missed_schedule: bool = False
    cpu_at_held: float | None = None  # client CPU per streamed token at the highest rate held (µs)
    cpu_by_rate: dict[float, float] = field(default_factory=dict)

    def top_text(self) -> str:
        if not self.top:
            return "-"
        return f"{self.top:.0f} req/s" if self.topped else f">= {self.top:.0f} req/s"

    def held_text(self) -> str:
        if self.failure and self.held is None:
            return f"not run: {self.failure}"
        return f"{self.held:g} req/s" if self.held else "none of the rates"

    def note(self, rate: float, within: bool, lag_ms: float | None, error: float | None,
             cpu_us_per_token: float | None = None) -> None:
        """One rate's verdict; rates come in increasing order and a miss ends the run of held rates."""
        self.missed = self.missed or not within
        self.missed_schedule = self.missed_schedule or not (within and lag_ms is not None and lag_ms <= ON_SCHEDULE_LAG_MS)
        if not self.missed:
            self.held, self.error_at_held, self.cpu_at_held = rate, error, cpu_us_per_token
        if not self.missed_schedule:
            self.on_schedule = rate


def run_tool(name: str, sim: Any, rates: list[float], seconds: float, tolerance_ms: float) -> Outcome:
    outcome = Outcome()
    # aiperf 0.13 refuses a local tokenizer folder when HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set
    # (aiperf/common/tokenizer.py, _is_offline_mode): leave both unset; there is no network to reach anyway.
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update({"NO_COLOR": "1", "GUIDELLM__LOGGING__CONSOLE_LOG_LEVEL": "ERROR"})
    began = time.monotonic()
    for rate in rates:
        if time.monotonic() - began > TOOL_BUDGET_S:
            print(f"  {name}: stopped after {TOOL_BUDGET_S:g} s (BENCH_PEER_BUDGET_S)", flush=True)
            break
        out = OUT / f"{name}-{rate:g}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        cmd = guidellm_cmd(sim.url, rate, seconds, out) if name == "guidellm" else aiperf_cmd(sim.url, rate, seconds, out)
        since = time.monotonic_ns()
        limit = seconds * 6 + 180
        with open(out / "stdout.txt", "w") as stdout, open(out / "stderr.txt", "w") as stderr:
            proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, text=True, env=env, cwd=out)
            cpu = TreeCpu(proc.pid)
            while proc.poll() is None and time.monotonic_ns() - since < limit * 1e9:
                cpu.sample()
                time.sleep(0.2)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
                print(f"  {name} at {rate:g}/s: did not finish in {limit:g} s", flush=True)
                outcome.failure = outcome.failure or f"no result at {rate:g}/s in time"
                break
        if proc.returncode != 0:
            line = _last_line((out / "stderr.txt").read_text()) or _last_line((out / "stdout.txt").read_text())
            print(f"  {name} at {rate:g}/s failed (exit {proc.returncode}): {line[:300]} (see {out})", flush=True)
            outcome.failure = f"exit {proc.returncode} at {rate:g}/s: {line[:200]}"
            break
        try:
            measured, succeeded, failed = (guidellm_result if name == "guidellm" else aiperf_result)(out)
        except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            print(f"  {name} at {rate:g}/s: cannot read its report in {out}: {exc.__class__.__name__}: {exc}", flush=True)
            outcome.failure = f"unreadable report at {rate:g}/s"
            break
        seen = truth(sim.truth(since), rate)
        if seen.arrival_rate:
            outcome.top = max(outcome.top or 0.0, seen.arrival_rate)
        if measured is None or seen.ttft_p50_ms is None:
            print(f"  {name} at {rate:g}/s: no TTFT (succeeded {succeeded}, failed {failed})", flush=True)
            break
        error = measured - seen.ttft_p50_ms
        within = abs(error) <= tolerance_ms and failed == 0
        per_token = cpu_us_per_token(cpu, seen)
        print(f"  {name:8s} {rate:6g} {seen.arrival_rate or 0:9.1f} {seen.lag_p99_ms or 0:13.2f} {succeeded:6d}/{failed:<4d} "
              f"{measured:10.2f} {seen.ttft_p50_ms:10.2f} {error:+9.2f} {per_token or float('nan'):10.1f}  "
              f"{'ok' if within else 'NOT HELD'}", flush=True)
        outcome.note(rate, within, seen.lag_p99_ms, error, per_token)
        if seen.arrival_rate is not None and seen.arrival_rate < TOPPED_OUT * rate:
            outcome.topped = True
            break  # the tool cannot send more: higher rates would only repeat this
    return outcome


def run_all(sim: Any, *, rates: list[float], seconds: float, tolerance_ms: float) -> dict[str, Outcome]:
    print("\npeers (own venv; TTFT p50 from each tool's report, truth and arrivals from the simulator's record):",
          flush=True)
    failure = install() or tokenizer()
    if failure:
        print(f"  cannot run GuideLLM and aiperf: {failure}", flush=True)
        return {name: Outcome(failure=failure) for name in TOOLS}
    print(f"  {'tool':8s} {'rate':>6s} {'arrived/s':>9s} {'arr lag p99':>13s} {'ok/fail':>11s} "
          f"{'TTFT p50':>10s} {'truth p50':>10s} {'error ms':>9s} {'cpu us/tok':>10s}", flush=True)
    return {name: run_tool(name, sim, rates, seconds, tolerance_ms) for name in TOOLS}
