"""Per-request samples: kept with the raw result, read back in pages and as downloads, re-summarized."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vllmbench.samples import Samples, decode, encode, encode_chunks, metric_values, percentiles

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture
def results(serve_function):
    return serve_function("results")


def our_raw(run_id: str, n: int = 30, stages: int = 2) -> dict:
    """A vllmbench raw report as `vllmbench run` posts it, with every request."""
    requests_by_stage = []
    for stage in range(stages):
        rows = []
        for i in range(n):
            sent = i * 100.0 + 0.2
            gaps = [5.0 + (i % 7) * 0.01 + (j % 3) * 0.02 for j in range(15)]
            rows.append({"index": i, "request_id": f"r{i}", "scheduled_ms": i * 100.0, "sent_ms": sent,
                         "ttft_ms": 20.0 + i + stage, "e2e_ms": 20.0 + i + stage + sum(gaps), "itl_ms": gaps,
                         "input_tokens": 128, "output_tokens": 16, "tokens_from": "server",
                         "error": None if i % 10 else "http_500", "status": 500 if i % 10 == 0 else 200,
                         "cap_wait_ms": 0.0, "worker": 0})
        requests_by_stage.append(rows)
    stages_out = [{"index": s, "mode": "rate", "rate": 10.0, "concurrency": None,
                   "started_at": "2026-11-01T12:00:00+00:00", "ended_at": "2026-11-01T12:00:03+00:00",
                   "wall_s": 3.0, "cpu_s_by_process": [0.1], "planned_span_ns": int(n * 100e6),
                   "requests": requests_by_stage[s]} for s in range(stages)]
    config = {"url": "http://127.0.0.1:9", "model": "m", "mode": "rate", "rates": [10.0], "duration_s": 3.0,
              "warmup_s": 0.0, "cooldown_s": 0.0, "slo": {}, "thresholds": {}, "tags": []}
    return {"run_id": run_id, "project": "demo", "model": "m", "harness": {"name": "vllmbench", "version": "0.1.0"},
            "started_at": "2026-11-01T12:00:00Z",
            "data": {"format": "vllmbench-raw/1", "config": config, "model": "m", "saturation": None,
                     "stages": stages_out}}


def test_a_raw_report_keeps_its_requests_and_percentiles_are_recomputed(results):
    body = our_raw("samples-run")
    created = results.post("/raw_input", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["samples"] == 60
    page = results.get("/runs/samples-run/requests", params={"limit": 25}).json()
    assert page["total"] == 60 and page["count"] == 25 and page["complete"] is True
    seen = page["items"]
    while page["next_cursor"]:
        page = results.get("/runs/samples-run/requests", params={"limit": 25, "cursor": page["next_cursor"]}).json()
        seen += page["items"]
    assert [(r["stage"], r["index"]) for r in seen] == [(s, i) for s in range(2) for i in range(30)]
    first = body["data"]["stages"][0]["requests"][1]
    assert seen[1]["ttft_ms"] == first["ttft_ms"] and seen[1]["itl_ms"] == pytest.approx(first["itl_ms"], abs=0.005)
    assert seen[0]["outcome"] == "http_500" and seen[1]["outcome"] == "ok"

    # The stored record's percentiles come back from the samples: same requests, same definition.
    record = results.get("/runs/samples-run").json()["standardized"][1]
    got = results.get("/runs/samples-run/percentiles", params={"metric": "ttft", "p": "50,99", "stage": 1}).json()
    assert got["count"] == 27
    assert got["percentiles"]["p50"] == pytest.approx(record["results"]["latency"]["ttft"]["p50"], abs=1e-3)
    assert got["percentiles"]["p99"] == pytest.approx(record["results"]["latency"]["ttft"]["p99"], abs=1e-3)
    itl = results.get("/runs/samples-run/percentiles", params={"metric": "itl", "p": "99.5"}).json()
    assert itl["percentiles"]["p99.5"] == pytest.approx(5.1, abs=0.011)


def test_samples_download_as_json_lines_and_as_the_binary_layout(results):
    results.post("/raw_input", json=our_raw("download-run", n=12, stages=1))
    lines = results.get("/runs/download-run/requests", params={"format": "jsonl"})
    assert lines.status_code == 200 and "attachment" in lines.headers["Content-Disposition"]
    rows = [json.loads(line) for line in lines.text.splitlines()]
    assert [r["index"] for r in rows] == list(range(12))
    binary = results.get("/runs/download-run/requests", params={"format": "vbs1"})
    header, samples = decode(binary.content)
    assert header["count"] == 12 and samples.rows() == rows


def test_samples_uploaded_in_chunks_attach_to_a_raw_result_once(results):
    raw = our_raw("upload-run", n=5, stages=1)
    raw["data"]["stages"][0]["requests"] = []  # the client sends the requests apart, as `vllmbench run` does
    raw_id = results.post("/raw_input", json=raw).json()["id"]
    rows = [{"stage": 0, "index": i, "scheduled_ms": float(i), "sent_ms": float(i), "ttft_ms": 10.0 + i,
             "e2e_ms": 100.0, "itl_ms": [5.0] * 3, "output_tokens": 4} for i in range(20_000)]
    chunks = encode_chunks(Samples.from_rows(rows))
    assert len(chunks) == 3
    for chunk in chunks:
        answer = results.post(f"/raw_input/{raw_id}/requests", data=chunk,
                              headers={"Content-Type": "application/octet-stream"})
        assert answer.status_code == 201, answer.text
    again = results.post(f"/raw_input/{raw_id}/requests", data=chunks[0], headers={"Content-Type": "application/octet-stream"})
    assert again.status_code == 200
    other = encode(Samples.from_rows(rows[:10]), chunk=0, chunks=3)
    clash = results.post(f"/raw_input/{raw_id}/requests", data=other, headers={"Content-Type": "application/octet-stream"})
    assert clash.status_code == 409
    p50 = results.get("/runs/upload-run/percentiles", params={"metric": "ttft", "p": "50"}).json()
    assert p50["count"] == 20_000 and p50["percentiles"]["p50"] == pytest.approx(
        float(np.percentile([10.0 + i for i in range(20_000)], 50)))
    page = results.get("/runs/upload-run/requests", params={"limit": 1000, "cursor": None}).json()
    assert page["total"] == 20_000 and page["count"] == 1000


@pytest.mark.parametrize("body,says", [(b"not vbs1", "VBS1"), (b"", "empty"),
                                       (b"VBS1\x05\x00\x00\x00{}xyz", "VBS1 header")])
def test_a_body_that_is_not_a_chunk_is_refused(results, body, says):
    raw_id = results.post("/raw_input", json=our_raw("bad-chunk", n=2, stages=1)).json()["id"]
    answer = results.post(f"/raw_input/{raw_id}/requests", data=body, headers={"Content-Type": "application/octet-stream"})
    assert answer.status_code == 400 and says in answer.json()["message"]


def test_samples_of_an_unknown_raw_result_or_run_are_404(results):
    chunk = encode(Samples.from_rows([{"index": 0, "ttft_ms": 1.0}]))
    assert results.post("/raw_input/nope/requests", data=chunk,
                        headers={"Content-Type": "application/octet-stream"}).status_code == 404
    assert results.get("/runs/nope/requests").status_code == 404
    assert results.get("/runs/nope/percentiles", params={"metric": "ttft", "p": "50"}).status_code == 404


def test_vllm_bench_serve_detailed_output_keeps_its_requests(results):
    data = json.loads((DATA / "vllm_bench_serve_detailed.json").read_text())
    body = {"run_id": "vllm-detailed", "harness": {"name": "vllm-bench-serve", "version": "0.11.0"}, "data": data}
    assert results.post("/raw_input", json=body).json()["samples"] == len(data["ttfts"])
    got = results.get("/runs/vllm-detailed/percentiles", params={"metric": "itl", "p": "50"}).json()
    gaps = [g * 1000 for row in data["itls"] for g in row]
    assert got["percentiles"]["p50"] == pytest.approx(float(np.percentile(gaps, 50)), abs=0.01)


def test_guidellm_requests_without_gaps_answer_every_metric_but_itl():
    from vllmbench.models.results import RawInput
    from vllmbench.standardize.samples import samples_of

    data = json.loads((DATA / "guidellm_benchmarks.json").read_text())
    bench = data["benchmarks"][0]
    start = 1_760_000_000.0
    bench["start_time"] = start
    bench["requests"]["successful"] = [
        {"request_id": str(i), "prompt_tokens": 128, "output_tokens": 64,
         "info": {"timings": {"targeted_start": start + i, "request_start": start + i + 0.001,
                              "first_token_iteration": start + i + 0.021, "request_end": start + i + 0.5}}}
        for i in range(10)]
    bench["requests"]["errored"] = [{"request_id": "e", "info": {"error": "boom", "timings": {}}}]
    samples = samples_of(RawInput.model_validate({"run_id": "g", "harness": {"name": "guidellm"}, "data": data}))
    assert len(samples) == 11
    assert percentiles(metric_values(samples, "ttft"), [50]) == pytest.approx([20.0], abs=1e-3)
    assert percentiles(metric_values(samples, "schedule_delay"), [50]) == pytest.approx([1.0], abs=1e-3)
    with pytest.raises(ValueError, match="no inter-token gaps"):
        metric_values(samples, "itl")
