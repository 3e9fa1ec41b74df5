"""Command lines of the other harnesses for a benchmark profile: the built-in templates' helpers. Pure.

``guidellm_args``, ``vllm_bench_args`` and ``lm_eval_args`` map a profile (the
``benchmark`` value of a template: a :class:`gitops.kinds.BenchmarkSpec` as a dict) to
the harness's own flags, and raise ``ValueError`` (a 422 naming the template line) for
what the harness cannot do, rather than run something else than the profile says. As
for ``vllmbench run``, the first stage's duration, lengths and endpoint apply to every
stage of a sweep. The output flags are the templates' own, so that the file a harness
writes and the file ``vllmbench post-raw`` sends are named in one place.
"""

from __future__ import annotations

import json
import math
from typing import Any

DEFAULT_DURATION_S = 30.0  # as `vllmbench run` without --duration or --requests
# vllm bench serve draws gamma arrivals: shape 1 is Poisson; 1000 is within 3% (CV) of a
# constant rate, the nearest it has; 0.5 is what "burst" means for this template.
BURSTINESS = {"poisson": 1.0, "constant": 1000.0, "burst": 0.5}


def _stages(profile: dict[str, Any], harness: str) -> list[dict[str, Any]]:
    stages = [profile["load"], *(profile.get("sweep") or [])]
    if len({stage["mode"] for stage in stages}) != 1:
        raise ValueError(f"{harness} cannot mix rate and concurrency stages in one run; "
                         "split the profile into two benchmarks")
    return stages


def _synthetic_only(stage: dict[str, Any], harness: str) -> None:
    dataset = stage.get("dataset") or "synthetic"
    if dataset != "synthetic":
        raise ValueError(f"the {harness} template sends synthetic prompts only; load.dataset is {dataset!r} "
                         "(use the vllmbench template, or a template of your own that mounts the file)")


def _guidellm_lengths(name: str, dist: dict[str, Any] | None) -> dict[str, int]:
    """GuideLLM draws a normal clipped to [min, max]: a uniform becomes one of the same mean and spread."""
    if not dist:
        return {name: 128}
    kind = dist.get("kind", "fixed")
    if kind not in ("fixed", "uniform", "normal"):
        raise ValueError(f"GuideLLM's synthetic data has no {kind!r} length distribution ({name})")
    out = {name: round(dist["mean"])}
    lo, hi = dist.get("min"), dist.get("max")
    stdev = dist.get("stddev")
    if kind == "uniform" and lo is not None and hi is not None:
        out[name] = round((lo + hi) / 2)
        stdev = (hi - lo) / math.sqrt(12)
    if kind != "fixed" and stdev:
        out[f"{name}_stdev"] = max(1, round(stdev))
    if kind != "fixed":
        out.update({f"{name}_{end}": value for end, value in (("min", lo), ("max", hi)) if value is not None})
    return out


def guidellm_args(profile: dict[str, Any], *, target: str, model: str) -> list[str]:
    """``guidellm run`` options (0.8.1, ``kind=...`` objects passed as JSON) for a profile, output aside.

    A sweep's rates go in one profile (``rate: [...]``, which 0.8.1 still takes with a deprecation
    warning for ``--override profile.rate``).
    """
    stages = _stages(profile, "GuideLLM")
    first = stages[0]
    _synthetic_only(first, "guidellm")
    if first["mode"] == "rate":
        arrivals = {stage.get("arrival") or "constant" for stage in stages}
        if not arrivals <= {"constant", "poisson"} or len(arrivals) != 1:
            raise ValueError(f"GuideLLM sends constant or Poisson arrivals, one kind per run; the profile asks for "
                             f"{', '.join(sorted(arrivals))}")
        run: dict[str, Any] = {"kind": arrivals.pop(), "rate": [stage["rate_rps"] for stage in stages]}
        if first.get("max_in_flight"):
            run["max_concurrency"] = first["max_in_flight"]
    else:
        run = {"kind": "concurrent", "streams": [stage["concurrency"] for stage in stages]}
    for phase in ("warmup", "cooldown"):
        if first.get(f"{phase}_s"):
            run[phase] = {"mode": "duration", "value": first[f"{phase}_s"]}
    constraints = []
    if first.get("request_count"):
        constraints.append({"kind": "max_requests", "count": first["request_count"]})
    if first.get("duration_s") or not first.get("request_count"):
        constraints.append({"kind": "max_duration", "seconds": first.get("duration_s") or DEFAULT_DURATION_S})
    backend = {"kind": "openai_http", "target": target, "model": model,
               "request_format": "/v1/chat/completions" if first.get("endpoint") == "chat" else "/v1/completions",
               "stream": first.get("streaming", True) is not False}
    data = {"kind": "synthetic_text", **_guidellm_lengths("prompt_tokens", first.get("input_tokens")),
            **_guidellm_lengths("output_tokens", first.get("output_tokens"))}
    # sample_size 0: no prompt and output texts in the report (~3.7 KB a request), every request's timings kept
    metrics: dict[str, Any] = {"kind": "generative", "sample_size": 0}
    slo = profile.get("slo") or {}
    if slo.get("itl_ms") is not None:
        raise ValueError("GuideLLM's goodput has no every-gap ITL SLO (only ttft, tpot, e2e): drop slo.itl_ms "
                         "or use the vllmbench template")
    objectives = {theirs: slo[ours] for ours, theirs in (("ttft_ms", "ttft_ms"), ("tpot_ms", "tpot_ms"),
                                                          ("e2e_ms", "e2el_ms")) if slo.get(ours) is not None}
    if objectives:
        metrics["slo"] = objectives
    args = ["run", "--backend", _json(backend), "--profile", _json(run)]
    for constraint in constraints:
        args += ["--constraint", _json(constraint)]
    return args + ["--data", _json(data), "--metrics", _json(metrics), "--disable-console-interactive"]


def _vllm_lengths(stage: dict[str, Any]) -> list[str]:
    """vllm bench serve's random dataset: a length, and one range ratio for input and output alike."""
    args, ratios = [], set()
    for flag, key in (("--random-input-len", "input_tokens"), ("--random-output-len", "output_tokens")):
        dist = stage.get(key) or {"kind": "fixed", "mean": 128}
        kind = dist.get("kind", "fixed")
        if kind == "fixed":
            args.append(f"{flag}={round(dist['mean'])}")
            ratios.add(0.0)
        elif kind == "uniform" and dist.get("min") is not None and dist.get("max") is not None:
            lo, hi = dist["min"], dist["max"]
            args.append(f"{flag}={round((lo + hi) / 2)}")
            ratios.add(round((hi - lo) / (hi + lo), 4) if hi + lo else 0.0)
        else:
            raise ValueError(f"vllm bench serve draws fixed or uniform lengths, not {kind!r} ({key}); "
                             "a uniform needs min and max")
    if len(ratios) > 1:
        raise ValueError("vllm bench serve has one --random-range-ratio for input and output: give both the same "
                         "relative spread, or fixed lengths")
    return args + [f"--random-range-ratio={ratios.pop():g}"]


def vllm_bench_args(profile: dict[str, Any], *, base_url: str, model: str) -> list[str]:
    """``vllm bench serve`` flags for a one-stage profile (vLLM's image), result files aside."""
    if profile.get("sweep"):
        raise ValueError("vllm bench serve runs one load point per run and its results cannot share a run id; "
                         "give the profile no sweep (or use the vllmbench or guidellm template)")
    stage = profile["load"]
    _synthetic_only(stage, "vllm-bench-serve")
    if stage.get("streaming") is False:
        raise ValueError("vllm bench serve always streams; load.streaming: false needs another template")
    chat = stage.get("endpoint") == "chat"
    args = ["bench", "serve", f"--backend={'openai-chat' if chat else 'openai'}", f"--base-url={base_url}",
            f"--endpoint={'/v1/chat/completions' if chat else '/v1/completions'}", f"--model={model}",
            "--dataset-name=random", *_vllm_lengths(stage), "--ignore-eos"]
    if stage["mode"] == "rate":
        rate = stage["rate_rps"]
        args += [f"--request-rate={rate:g}", f"--burstiness={BURSTINESS[stage.get('arrival') or 'constant']:g}"]
        count = stage.get("request_count") or math.ceil(rate * (stage.get("duration_s") or DEFAULT_DURATION_S))
        if stage.get("max_in_flight"):
            args.append(f"--max-concurrency={stage['max_in_flight']}")
    else:
        if not stage.get("request_count"):
            raise ValueError("vllm bench serve counts requests, not seconds: give load.request_count for a "
                             "concurrency load")
        count = stage["request_count"]
        args += ["--request-rate=inf", f"--max-concurrency={stage['concurrency']}"]
    args += [f"--num-prompts={count}", "--percentile-metrics=ttft,tpot,itl,e2el",
             "--metric-percentiles=50,90,95,99,99.9"]
    slo = profile.get("slo") or {}
    if slo.get("itl_ms") is not None:
        raise ValueError("vllm bench serve's goodput has no ITL SLO (only ttft, tpot, e2el): drop slo.itl_ms "
                         "or use the vllmbench template")
    goodput = [f"{name}:{slo[key]:g}" for name, key in (("ttft", "ttft_ms"), ("tpot", "tpot_ms"), ("e2el", "e2e_ms"))
               if slo.get(key) is not None]
    if goodput:
        args += ["--goodput", *goodput]
    return args + ["--disable-tqdm"]


def lm_eval_args(profile: dict[str, Any], *, completions_url: str, model: str) -> list[str]:
    """``lm_eval run`` flags for the profile's ``accuracy`` section, output aside."""
    accuracy = profile.get("accuracy")
    if not accuracy or not accuracy.get("tasks"):
        raise ValueError("the lm-eval template needs the profile's accuracy section with its tasks, "
                         "e.g. accuracy: {tasks: [gsm8k], limit: 200}")
    load = profile["load"]
    concurrency = accuracy.get("concurrency") or (load.get("concurrency") if load["mode"] == "concurrency" else 1)
    model_args = [f"model={model}", f"base_url={completions_url}", f"num_concurrent={concurrency}",
                  f"tokenizer_backend={accuracy.get('tokenizer_backend') or 'none'}", "max_retries=3"]
    if accuracy.get("max_gen_toks"):
        model_args.append(f"max_gen_toks={accuracy['max_gen_toks']}")
    if any("," in part for part in model_args):
        raise ValueError("lm-eval splits --model_args on commas: the model name and server URL must have none")
    args = ["run", "--model=local-completions", "--model_args", *model_args, "--tasks=" + ",".join(accuracy["tasks"])]
    if accuracy.get("num_fewshot") is not None:
        args.append(f"--num_fewshot={accuracy['num_fewshot']}")
    if accuracy.get("limit"):
        args.append(f"--limit={accuracy['limit']}")
    if accuracy.get("include_path"):
        args.append(f"--include_path={accuracy['include_path']}")
    return args


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))


# Registered as globals of the template sandbox (vllmbench.evals.templates.render).
HELPERS = {"guidellm_args": guidellm_args, "vllm_bench_args": vllm_bench_args, "lm_eval_args": lm_eval_args}
