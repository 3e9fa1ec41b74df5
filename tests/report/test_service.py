"""The report routes of the Results service: real app, real FerretDB, a real load-generator run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html import escape

import pytest

from tests.fixtures.records import record
from tests.report.conftest import SWEEP_RUN, sweep_raw, sweep_records
from vllmbench.report.page import CSP


@pytest.fixture
def results(serve_function, sweep_dir):
    served = serve_function("results")
    assert served.post("/raw_input", json=sweep_raw(sweep_dir)).status_code == 201
    return served


def _external_references(html: str) -> list[str]:
    """Anything the page could fetch: src/href/url() other than an in-page anchor or data: URL."""
    refs = re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", html) + re.findall(r"url\(([^)]*)\)", html)
    return [r for r in refs if not r.startswith(("#", "data:"))]


def test_a_run_report_is_one_page_that_fetches_nothing(results, sweep_dir):
    reply = results.get(f"/runs/{SWEEP_RUN}/report")
    assert reply.status_code == 200, reply.text
    assert reply.headers["Content-Type"].startswith("text/html")
    assert reply.headers["Content-Security-Policy"] == CSP
    html = reply.text
    assert html.startswith("<!doctype html>") and f'content="{CSP}"' in html
    assert "<script" not in html and _external_references(html) == []
    assert len(html.encode()) < 500_000
    # The figures a person reads are there: the scenario, each stage, the SLO line, the trust verdict.
    stored = sweep_records(sweep_dir)
    assert "sim-model" in html and "64 tokens, fixed" in html and "SLO 50 ms" in html
    assert html.count("<svg class=\"chart\"") >= 10
    assert "5/s constant" in html and "20/s constant" in html
    # Drawn from every request (the raw report the run posted holds them), not from percentiles.
    assert "from every request" in html and "stored percentiles" not in html
    assert stored[1]["results"]["trust"]["trustworthy"] is False  # the cap of 2 did not hold at 20 req/s


def test_an_untrustworthy_stage_is_marked_with_its_reasons(results, sweep_dir):
    html = results.get(f"/runs/{SWEEP_RUN}/report").text
    reasons = sweep_records(sweep_dir)[1]["results"]["trust"]["reasons"]
    banner = html[html.index('id="untrustworthy"'):html.index("</div>", html.index('id="untrustworthy"'))]
    assert "stage 1" in banner and "in-flight cap" in banner
    assert reasons and all(escape(reason) in banner for reason in reasons)
    assert 'circle class="untrusted"' in html and "<tr class=untrustworthy>" in html


def test_a_run_whose_requests_were_sent_apart_is_drawn_from_the_stored_samples(serve_function, sweep_dir):
    """A large run posts its raw result without the requests and its samples after it."""
    apart = serve_function("results")
    raw = json.loads((sweep_dir / "apart" / "raw.json").read_text())
    assert all(not stage["requests"] for stage in raw["data"]["stages"])
    posted = apart.post("/raw_input", json=raw)
    assert posted.status_code == 201, posted.text
    for chunk in sorted((sweep_dir / "apart").glob("samples-*.vbs1")):
        answer = apart.post(f"/raw_input/{posted.json()['id']}/requests", data=chunk.read_bytes(),
                            headers={"Content-Type": "application/octet-stream"})
        assert answer.status_code == 201, answer.text
    html = apart.get(f"/runs/{SWEEP_RUN}/report").text
    assert "from every request" in html and "stored percentiles" not in html
    # the same run posted again with its requests inline: the report is drawn from those now
    assert apart.post("/raw_input", json=sweep_raw(sweep_dir)).status_code == 201
    inline = apart.get(f"/runs/{SWEEP_RUN}/report").text
    assert html.count('<svg class="chart"') == inline.count('<svg class="chart"')
    # the same requests in the same windows: the drawn distributions are the same figures
    assert len(_figures(html)) > 20 and _figures(html) == _figures(inline)


def _figures(html: str) -> list[str]:
    """The numbers printed in the page's charts and tables (not its footer, which names the time)."""
    body = html[:html.rfind("<footer")] if "<footer" in html else html
    return re.findall(r"\d+(?:\.\d+)? ms", body)


def test_a_run_without_samples_draws_from_its_stored_percentiles(results):
    assert results.post("/standardized_output", json=record("only-records")).status_code == 201
    html = results.get("/runs/only-records/report").text
    assert "stored percentiles" in html and "Needs per-request samples" in html
    assert "no per-request samples stored" in html


@pytest.mark.parametrize("path, names", [
    ("/runs/no-such-run/report", ["no-such-run"]),
    (f"/compare/report?runs={SWEEP_RUN},no-such-run", ["no-such-run"]),
    (f"/compare/report?runs={SWEEP_RUN}@7,{SWEEP_RUN}@0", ["stage 7"]),
])
def test_a_report_of_unknown_runs_is_a_404_json_error(results, path, names):
    reply = results.get(path)
    assert reply.status_code == 404
    assert reply.headers["Content-Type"].startswith("application/json")
    body = reply.json()
    assert body["error"] == "not_found" and all(name in body["message"] for name in names)


@pytest.mark.parametrize("query", [f"runs={SWEEP_RUN}", "runs=", f"runs={SWEEP_RUN},bad@stage", ""])
def test_a_comparison_needs_two_well_formed_runs(results, query):
    reply = results.get(f"/compare/report?{query}")
    assert reply.status_code == 422
    assert any(d["loc"].startswith("query.runs") for d in reply.json()["details"])


def test_a_comparison_shows_runs_side_by_side_and_the_pareto_front(results):
    slower = [record("slow-run", stage=i, rate=r, ttft=40.0 + 10 * i) for i, r in enumerate((5.0, 20.0))]
    assert results.post("/standardized_output", json=slower).status_code == 201
    reply = results.get(f"/compare/report?runs={SWEEP_RUN},slow-run")
    assert reply.status_code == 200, reply.text
    html = reply.text
    assert f"{SWEEP_RUN} (baseline)" in html and "slow-run" in html
    assert "<h3>stage 0</h3>" in html and "<h3>stage 1</h3>" in html  # both runs have stages 0 and 1
    assert "ttft_p50" in html and ("▲" in html or "▼" in html)
    assert "Pareto front: output throughput against TTFT p99" in html
    assert "on the front (no other trustworthy stage is both faster and lower)" in html
    one_stage = results.get(f"/compare/report?runs={SWEEP_RUN}@0,slow-run@1").text
    assert "<h3>" not in one_stage and "slow-run@1" in one_stage


def test_markup_in_a_record_is_text_not_markup(results):
    body = record("markup-run")
    body["scenario"]["model"] = "<script>alert('x')</script><img src=http://evil.example/x.png>"
    assert results.post("/standardized_output", json=body).status_code == 201
    html = results.get("/runs/markup-run/report").text
    assert "<script>alert" not in html and "<img src=http" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html


def test_the_report_needs_the_token_like_every_route(serve_function):
    served = serve_function("results", api_token="report-t0ken-9")
    reply = served.request("GET", "/runs/any/report", headers={"Authorization": "Bearer wrong"})
    assert reply.status_code == 401 and reply.json()["error"] == "unauthorized"
    assert served.get("/runs/any/report").status_code == 404  # with the token: on to the lookup


def test_the_report_module_is_off_the_results_cold_start_path():
    code = ("import runpy, sys; runpy.run_path('functions/results/main.py');"
            "print(','.join(m for m in sys.modules if m.startswith('vllmbench.report')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
