"""The other harnesses' flags for a profile: what each is asked to run, and what it cannot run."""

from __future__ import annotations

import json

import pytest

from tests.fixtures.templates import profile
from vllmbench.evals.harness_args import guidellm_args, lm_eval_args, vllm_bench_args

URL, MODEL = "http://server:8000", "facebook/opt-125m"


def _guidellm(**spec):
    args = guidellm_args(profile(**spec), target=URL, model=MODEL)
    options: dict[str, list] = {}
    for flag, value in zip(args, args[1:]):
        if flag.startswith("--") and value.startswith("{"):
            options.setdefault(flag, []).append(json.loads(value))
    return args, options


def _flags(args):
    return dict(a.split("=", 1) for a in args if a.startswith("--") and "=" in a)


def test_guidellm_rate_sweep_is_one_run_with_every_rate_and_the_profile_lengths():
    args, opts = _guidellm(load={"mode": "rate", "rate_rps": 5, "duration_s": 20, "max_in_flight": 64,
                                 "input_tokens": {"kind": "normal", "mean": 512, "stddev": 64, "min": 256, "max": 768},
                                 "output_tokens": {"kind": "fixed", "mean": 64}},
                           sweep=[{"mode": "rate", "rate_rps": 10}, {"mode": "rate", "rate_rps": 20}])
    assert args[0] == "run" and "--disable-console-interactive" in args
    assert opts["--profile"] == [{"kind": "constant", "rate": [5.0, 10.0, 20.0], "max_concurrency": 64}]
    assert opts["--constraint"] == [{"kind": "max_duration", "seconds": 20.0}]
    assert opts["--backend"] == [{"kind": "openai_http", "target": URL, "model": MODEL,
                                  "request_format": "/v1/completions", "stream": True}]
    assert opts["--data"] == [{"kind": "synthetic_text", "prompt_tokens": 512, "prompt_tokens_stdev": 64,
                               "prompt_tokens_min": 256, "prompt_tokens_max": 768, "output_tokens": 64}]
    assert opts["--metrics"] == [{"kind": "generative", "sample_size": 0}]  # no texts in the report


def test_guidellm_goodput_from_the_profile_slos():
    _, opts = _guidellm(slo={"ttft_ms": 200, "tpot_ms": 20, "e2e_ms": 5000})
    assert opts["--metrics"] == [{"kind": "generative", "sample_size": 0,
                                  "slo": {"ttft_ms": 200.0, "tpot_ms": 20.0, "e2el_ms": 5000.0}}]


def test_guidellm_concurrency_chat_without_streaming_by_request_count_with_warmup():
    _, opts = _guidellm(load={"mode": "concurrency", "concurrency": 4, "request_count": 500, "warmup_s": 5,
                              "endpoint": "chat", "streaming": False,
                              "input_tokens": {"kind": "uniform", "mean": 200, "min": 100, "max": 300}},
                        sweep=[{"mode": "concurrency", "concurrency": 16}])
    assert opts["--profile"] == [{"kind": "concurrent", "streams": [4, 16], "warmup": {"mode": "duration", "value": 5.0}}]
    assert opts["--constraint"] == [{"kind": "max_requests", "count": 500}]
    backend = opts["--backend"][0]
    assert backend["request_format"] == "/v1/chat/completions" and backend["stream"] is False
    data = opts["--data"][0]
    # a uniform becomes a clipped normal of the same mean and spread: sd = (max - min) / sqrt(12)
    assert (data["prompt_tokens"], data["prompt_tokens_stdev"], data["prompt_tokens_min"],
            data["prompt_tokens_max"]) == (200, 58, 100, 300)
    assert data["output_tokens"] == 128


def test_guidellm_without_duration_or_count_runs_thirty_seconds_as_vllmbench_run_does():
    _, opts = _guidellm(load={"mode": "rate", "rate_rps": 2, "arrival": "poisson"})
    assert opts["--profile"][0]["kind"] == "poisson"
    assert opts["--constraint"] == [{"kind": "max_duration", "seconds": 30.0}]


@pytest.mark.parametrize("spec,message", [
    ({"load": {"mode": "rate", "rate_rps": 5, "arrival": "burst"}}, "constant or Poisson"),
    ({"load": {"mode": "rate", "rate_rps": 5}, "sweep": [{"mode": "rate", "rate_rps": 9, "arrival": "poisson"}]},
     "one kind per run"),
    ({"load": {"mode": "rate", "rate_rps": 5}, "sweep": [{"mode": "concurrency", "concurrency": 2}]}, "cannot mix"),
    ({"load": {"mode": "rate", "rate_rps": 5, "dataset": "sharegpt"}}, "synthetic prompts only"),
    ({"load": {"mode": "rate", "rate_rps": 5, "input_tokens": {"kind": "dataset", "mean": 10}}}, "no 'dataset'"),
    ({"load": {"mode": "rate", "rate_rps": 5}, "slo": {"itl_ms": 20}}, "no every-gap ITL SLO"),
])
def test_guidellm_refuses_what_it_cannot_run(spec, message):
    with pytest.raises(ValueError, match=message):
        guidellm_args(profile(**spec), target=URL, model=MODEL)


def test_vllm_bench_constant_rate_counts_its_requests_from_rate_and_duration():
    args = vllm_bench_args(profile(load={"mode": "rate", "rate_rps": 12.5, "duration_s": 60, "max_in_flight": 32,
                                         "input_tokens": {"kind": "uniform", "mean": 300, "min": 200, "max": 400},
                                         "output_tokens": {"kind": "uniform", "mean": 150, "min": 100, "max": 200}},
                                   slo={"ttft_ms": 250, "e2e_ms": 4000}), base_url=URL, model=MODEL)
    assert args[:2] == ["bench", "serve"] and "--ignore-eos" in args and "--disable-tqdm" in args
    flags = _flags(args)
    assert flags["--backend"] == "openai" and flags["--endpoint"] == "/v1/completions"
    assert flags["--base-url"] == URL and flags["--model"] == MODEL and flags["--dataset-name"] == "random"
    assert (flags["--request-rate"], flags["--burstiness"], flags["--num-prompts"]) == ("12.5", "1000", "750")
    assert flags["--max-concurrency"] == "32"
    assert (flags["--random-input-len"], flags["--random-output-len"], flags["--random-range-ratio"]) == \
        ("300", "150", "0.3333")
    assert args[args.index("--goodput") + 1:args.index("--goodput") + 3] == ["ttft:250", "e2el:4000"]


def test_vllm_bench_concurrency_sends_everything_at_once_under_the_cap():
    args = vllm_bench_args(profile(load={"mode": "concurrency", "concurrency": 8, "request_count": 400,
                                         "endpoint": "chat", "arrival": None}), base_url=URL, model=MODEL)
    flags = _flags(args)
    assert (flags["--request-rate"], flags["--max-concurrency"], flags["--num-prompts"]) == ("inf", "8", "400")
    assert flags["--backend"] == "openai-chat" and flags["--endpoint"] == "/v1/chat/completions"
    assert flags["--random-range-ratio"] == "0" and "--goodput" not in args


@pytest.mark.parametrize("spec,message", [
    ({"load": {"mode": "rate", "rate_rps": 5}, "sweep": [{"mode": "rate", "rate_rps": 9}]}, "one load point"),
    ({"load": {"mode": "concurrency", "concurrency": 4, "duration_s": 60}}, "request_count"),
    ({"load": {"mode": "rate", "rate_rps": 5, "streaming": False}}, "always streams"),
    ({"load": {"mode": "rate", "rate_rps": 5, "input_tokens": {"kind": "normal", "mean": 100, "stddev": 5}}},
     "fixed or uniform"),
    ({"load": {"mode": "rate", "rate_rps": 5, "input_tokens": {"kind": "uniform", "mean": 100, "min": 50, "max": 150},
               "output_tokens": {"kind": "fixed", "mean": 100}}}, "one --random-range-ratio"),
    ({"load": {"mode": "rate", "rate_rps": 5}, "slo": {"itl_ms": 20}}, "no ITL SLO"),
    ({"load": {"mode": "rate", "rate_rps": 5, "dataset": "prompts.jsonl"}}, "synthetic prompts only"),
])
def test_vllm_bench_refuses_what_it_cannot_run(spec, message):
    with pytest.raises(ValueError, match=message):
        vllm_bench_args(profile(**spec), base_url=URL, model=MODEL)


def test_lm_eval_runs_the_profile_tasks_through_local_completions():
    args = lm_eval_args(profile(load={"mode": "concurrency", "concurrency": 16},
                                accuracy={"tasks": ["gsm8k", "vb_hi"], "num_fewshot": 0, "limit": 50,
                                          "max_gen_toks": 64, "include_path": "/tasks"}),
                        completions_url=URL + "/v1/completions", model=MODEL)
    at = args.index("--model_args")
    assert args[:at] == ["run", "--model=local-completions"]
    assert args[at + 1:at + 7] == [f"model={MODEL}", f"base_url={URL}/v1/completions", "num_concurrent=16",
                                   "tokenizer_backend=none", "max_retries=3", "max_gen_toks=64"]
    assert args[at + 7:] == ["--tasks=gsm8k,vb_hi", "--num_fewshot=0", "--limit=50", "--include_path=/tasks"]


@pytest.mark.parametrize("load,accuracy,expected", [
    ({"mode": "rate", "rate_rps": 10}, {"tasks": ["t"]}, "num_concurrent=1"),
    ({"mode": "concurrency", "concurrency": 4}, {"tasks": ["t"], "concurrency": 32}, "num_concurrent=32"),
    ({"mode": "rate", "rate_rps": 10}, {"tasks": ["t"], "tokenizer_backend": "remote"}, "tokenizer_backend=remote"),
])
def test_lm_eval_concurrency_and_tokenizer(load, accuracy, expected):
    assert expected in lm_eval_args(profile(load=load, accuracy=accuracy), completions_url=URL, model=MODEL)


def test_lm_eval_needs_the_accuracy_section_and_a_model_name_without_commas():
    with pytest.raises(ValueError, match="accuracy section"):
        lm_eval_args(profile(), completions_url=URL, model=MODEL)
    with pytest.raises(ValueError, match="commas"):
        lm_eval_args(profile(accuracy={"tasks": ["t"]}), completions_url=URL, model="a,b")
