"""What GuideLLM 0.8.1 wrote when run with the guidellm template's own args, and what we read of it.

tests/data/guidellm_0.8.1_template_run.json: `guidellm run` 0.8.1 (pip, with torch 2.13.0 CPU)
with the args the template renders for PROFILE below against `vllmbench simulate` (TTFT 20 ms,
ITL 5 ms), plus `--tokenizer` pointing at a small local tokenizer (the pod downloads the
model's). The per-request entries were emptied to keep the file small (the converter reads
the summaries); the rest is as GuideLLM wrote it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.templates import builtin, containers, profile, values
from vllmbench.evals.templates import render
from vllmbench.models.results import Harness, RawInput
from vllmbench.standardize import to_standardized

REPORT = Path(__file__).resolve().parents[2] / "data" / "guidellm_0.8.1_template_run.json"
PROFILE = profile(slo={"ttft_ms": 25, "tpot_ms": 10},
                  load={"mode": "rate", "rate_rps": 4, "duration_s": 6, "warmup_s": 1,
                        "input_tokens": {"kind": "fixed", "mean": 64}, "output_tokens": {"kind": "fixed", "mean": 16}},
                  sweep=[{"mode": "rate", "rate_rps": 8}])


def _report():
    return json.loads(REPORT.read_text())


def test_guidellm_took_every_option_the_template_gives_it():
    args = containers(render(builtin("guidellm"), values(benchmark=PROFILE, model="sim-model")))["harness"]["args"]
    asked = {flag: json.loads(value) for flag, value in zip(args, args[1:]) if value.startswith("{")}
    spec = _report()["config"]["spec"]
    assert spec["backend"]["request_format"] == asked["--backend"]["request_format"] == "/v1/completions"
    assert spec["backend"]["model"] == "sim-model" and spec["backend"]["stream"] is True
    assert spec["profile"]["kind"] == "constant" and spec["profile"]["rate"] == asked["--profile"]["rate"] == [4.0, 8.0]
    assert spec["profile"]["warmup"]["mode"] == "duration" and spec["profile"]["warmup"]["value"] == 1.0
    assert [(c["kind"], c["seconds"]) for c in spec["constraints"]] == [("max_duration", 6.0)]
    (data,) = spec["data"]
    assert (data["kind"], data["prompt_tokens"], data["output_tokens"]) == ("synthetic_text", 64, 16)
    assert spec["metrics"]["sample_size"] == 0 and spec["metrics"]["slo"] == {"ttft_ms": 25.0, "tpot_ms": 10.0,
                                                                               "e2el_ms": None}
    assert asked["--output"]["kind"] == "json"


def test_its_report_converts_to_one_record_per_rate_with_goodput():
    records = to_standardized(RawInput(run_id="g1", harness=Harness(name="guidellm"), data=_report()))
    assert [(r.run.stage, r.scenario.load.arrival, r.scenario.load.rate_rps) for r in records] == \
        [(0, "constant", 4.0), (1, "constant", 8.0)]
    for r in records:
        assert r.scenario.model == "sim-model" and r.scenario.harness.version == "0.8.1"
        assert r.run.duration_s == pytest.approx(5.0, abs=0.5)          # 6 s less the 1 s warmup
        assert 20 <= r.results.latency.ttft.p50 < 40                       # the simulator's 20 ms and the client
        assert r.results.latency.tpot.p50 == pytest.approx(5.0, abs=0.5)  # the simulator's ITL
        assert r.results.goodput.slo.ttft_ms == 25 and r.results.goodput.slo.tpot_ms == 10
    first = records[0].results
    assert first.goodput.fraction == pytest.approx(9 / 21) and first.goodput.good_requests == 9
    assert first.goodput.requests_per_s == pytest.approx(first.throughput.requests_per_s * 9 / 21, rel=0.1)
