"""GuideLLM and aiperf on the same simulator, installed into their own venv on first use.

Never a project dependency: they go into ${VLLMBENCH_CACHE_DIR:-~/.cache/vllmbench}/peers-venv,
with a small byte-level BPE tokenizer trained locally so that they run offline. Each
step is bounded in time; a step that fails is reported with what failed, and the
benchmark goes on.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

CACHE = Path(os.environ.get("VLLMBENCH_CACHE_DIR") or Path.home() / ".cache" / "vllmbench")
VENV = CACHE / "peers-venv"
TOKENIZER = CACHE / "peers-tokenizer"
PACKAGES = ["torch==2.13.0", "guidellm", "aiperf", "tokenizers"]
INSTALL_TIMEOUT_S = 1500


def _py() -> Path:
    return VENV / "bin" / "python"


def install() -> str | None:
    """None when the peers venv is ready, else what failed."""
    if (VENV / ".ready").exists():
        return None
    try:
        if not _py().exists():
            subprocess.run(["python3", "-m", "venv", str(VENV)], check=True, capture_output=True, timeout=120)
        proc = subprocess.run([str(_py()), "-m", "pip", "install", "-q", *PACKAGES], capture_output=True, text=True,
                              timeout=INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"pip install {' '.join(PACKAGES)} did not finish in {INSTALL_TIMEOUT_S} s"
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"cannot create the peers venv at {VENV}: {exc}"
    if proc.returncode != 0:
        return f"pip install {' '.join(PACKAGES)} failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}"
    (VENV / ".ready").touch()
    return None


def tokenizer() -> str | None:
    if (TOKENIZER / "tokenizer.json").exists():
        return None
    TOKENIZER.mkdir(parents=True, exist_ok=True)
    script = (
        "import sys, json\n"
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
    proc = subprocess.run([str(_py()), "-c", script, str(TOKENIZER)], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        return f"training the local tokenizer failed: {proc.stderr.strip().splitlines()[-1:]}"
    return None


def _truth_p50(sim: Any, since: int) -> float | None:
    values = [t["ttft_ms"] for t in sim.truth(since) if t["outcome"] == "ok" and t["ttft_ms"] is not None]
    return statistics.median(values) if values else None


def _find(obj: Any, key_part: str) -> Any:
    """The first dict under a key containing ``key_part`` (report formats move between versions)."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key_part in str(key).lower() and isinstance(value, dict):
                return value
        for value in obj.values():
            found = _find(value, key_part)
            if found is not None:
                return found
    elif isinstance(obj, list):
        for value in obj:
            found = _find(value, key_part)
            if found is not None:
                return found
    return None


def _p50(dist: dict[str, Any] | None) -> float | None:
    if not dist:
        return None
    for path in (("successful", "median"), ("successful", "percentiles", "p50"), ("p50",), ("median",)):
        value: Any = dist
        for step in path:
            value = value.get(step) if isinstance(value, dict) else None
        if isinstance(value, (int, float)):
            return float(value)
    return None


def guidellm_cmd(url: str, rate: float, seconds: float, out: Path) -> list[str]:
    return [str(VENV / "bin" / "guidellm"), "benchmark", "run", "--target", url, "--profile", "constant",
            "--rate", str(rate), "--max-seconds", str(seconds), "--processor", str(TOKENIZER),
            "--data", "prompt_tokens=128,output_tokens=128", "--output-path", str(out)]


def aiperf_cmd(url: str, rate: float, seconds: float, out: Path) -> list[str]:
    return [str(VENV / "bin" / "aiperf"), "profile", "--model", "sim-model", "--url", url, "--endpoint-type",
            "completions", "--streaming", "--tokenizer", str(TOKENIZER), "--request-rate", str(rate),
            "--request-count", str(int(rate * seconds)), "--synthetic-input-tokens-mean", "128",
            "--output-tokens-mean", "128", "--extra-inputs", "ignore_eos:true", "--artifact-dir", str(out)]


def run_tool(name: str, sim: Any, rates: list[float], seconds: float, tolerance_ms: float) -> str:
    held = None
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update({"TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "GUIDELLM__LOGGING__CONSOLE_LOG_LEVEL": "ERROR"})
    for rate in rates:
        out = CACHE / "peers-out" / f"{name}-{int(rate)}"
        out.mkdir(parents=True, exist_ok=True)
        target = out / "benchmarks.json" if name == "guidellm" else out
        cmd = guidellm_cmd(sim.url, rate, seconds, target) if name == "guidellm" else aiperf_cmd(sim.url, rate, seconds, target)
        since = time.monotonic_ns()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 6 + 120, env=env, cwd=out)
        except subprocess.TimeoutExpired:
            print(f"  {name} at {rate:g}/s: did not finish in time", flush=True)
            break
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            print(f"  {name} at {rate:g}/s failed (exit {proc.returncode}): {' | '.join(tail)}", flush=True)
            return f"failed to run: {' | '.join(tail)[:300]}" if held is None else f"{held:g} req/s (then failed)"
        reports = [p for p in out.rglob("*.json") if p.stat().st_mtime * 1e9 >= 0]
        measured = None
        for path in reports:
            try:
                measured = _p50(_find(json.loads(path.read_text()), "time_to_first_token"))
            except ValueError:
                continue
            if measured is not None:
                break
        truth = _truth_p50(sim, since)
        if measured is None or truth is None:
            print(f"  {name} at {rate:g}/s: no TTFT p50 found in {[p.name for p in reports]}", flush=True)
            break
        error = measured - truth
        print(f"  {name} at {rate:g}/s: TTFT p50 {measured:.2f} ms, truth {truth:.2f} ms, error {error:+.2f} ms", flush=True)
        if abs(error) > tolerance_ms:
            break
        held = rate
    return f"{held:g} req/s" if held else "none of the rates"


def run_all(sim: Any, *, rates: list[float], seconds: float, tolerance_ms: float) -> dict[str, str]:
    print("\npeers (installed into their own venv on first run):", flush=True)
    failure = install() or tokenizer()
    if failure:
        print(f"  cannot run GuideLLM and aiperf: {failure}", flush=True)
        return {"guidellm": f"not run: {failure}", "aiperf": f"not run: {failure}"}
    return {name: run_tool(name, sim, [r for r in rates if r <= 400] or rates, seconds, tolerance_ms)
            for name in ("guidellm", "aiperf")}
