"""The load generator posts to the real Results service (functions-framework app, FerretDB)."""

import json

import pytest

from vllmbench.embedded.demo import benchmark_simulator
from vllmbench.models.results import RawInput
from vllmbench.standardize import to_standardized

TOKEN = "t0ken-123456"


def test_demo_posts_raw_and_standardized_output_to_the_results_service(serve_function, tmp_path):
    results = serve_function("results", api_token=TOKEN)
    summary = benchmark_simulator(results.url, api_token=TOKEN, out_dir=tmp_path, rate=10.0, duration_s=1.5, project="demo")
    # Trust on a loaded machine is test_starved_client.py's subject; the summary carries the verdict.
    assert summary["requests"]["succeeded"] == 15 and isinstance(summary["trustworthy"], bool)
    run = results.get(f"/runs/{summary['run_id']}").json()
    raw = RawInput.model_validate({k: run["raw"][0][k] for k in ("run_id", "project", "model", "harness", "tags",
                                                                   "config_commit", "started_at", "ended_at", "data")})
    assert raw.harness.name == "vllmbench" and raw.project == "demo"
    stored = run["standardized"]
    assert len(stored) == 1 and stored[0]["results"]["requests"]["succeeded"] == 15
    # The service's converter rebuilt the same record from the raw report that the client posted itself:
    # posting both stored it once (the second post was recognised as the same content).
    assert summary["posted"]["standardized_output"]["unchanged"] == 1
    # Without the client's records, the converter recomputes them from the per-request data.
    del raw.data["records"]
    recomputed = to_standardized(raw)
    assert recomputed[0].results.latency.ttft.p50 == pytest.approx(stored[0]["results"]["latency"]["ttft"]["p50"],
                                                                   abs=0.01)
    assert recomputed[0].results.requests.model_dump() == stored[0]["results"]["requests"]
    assert json.loads((tmp_path / "records.json").read_text())[0]["run"]["run_id"] == summary["run_id"]


def test_a_wrong_token_is_reported_not_swallowed(serve_function, tmp_path):
    results = serve_function("results", api_token=TOKEN)
    with pytest.raises(Exception, match="401"):
        benchmark_simulator(results.url, api_token="wrong-token", out_dir=tmp_path, rate=10.0, duration_s=0.5)


def test_a_long_run_sends_its_requests_apart_as_samples(serve_function, tmp_path, monkeypatch):
    """Past the inline limit the raw report goes without its requests, which follow as VBS1 chunks:
    the service then holds every request, and re-summarizes them like the client did."""
    from vllmbench.harness import output

    monkeypatch.setattr(output, "INLINE_LIMIT", 1000)  # a real long run is slow to make; the path is the same
    results = serve_function("results", api_token=TOKEN)
    summary = benchmark_simulator(results.url, api_token=TOKEN, out_dir=tmp_path, rate=10.0, duration_s=1.5, project="demo")
    assert summary["posted"]["samples_chunks"] == 1
    run = results.get(f"/runs/{summary['run_id']}").json()
    assert run["raw"][0]["data"]["stages"][0]["requests"] == []
    assert run["raw"][0]["data"]["stages"][0]["requests_sent_apart"] == 15
    page = results.get(f"/runs/{summary['run_id']}/requests").json()
    assert page["total"] == 15 and all(row["outcome"] == "ok" and len(row["itl_ms"]) > 0 for row in page["items"])
    ttft = run["standardized"][0]["results"]["latency"]["ttft"]
    again = results.get(f"/runs/{summary['run_id']}/percentiles", params={"metric": "ttft", "p": "50,99"}).json()
    assert again["percentiles"]["p50"] == pytest.approx(ttft["p50"], abs=1e-3)
    assert again["percentiles"]["p99"] == pytest.approx(ttft["p99"], abs=1e-3)
