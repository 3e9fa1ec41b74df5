"""Posting to a Results service: a tiny local aiohttp server stands in until the real one is wired end to end."""

import asyncio
import json
import threading

import pytest
from aiohttp import web

from vllmbench.embedded.demo import run_demo
from vllmbench.models.results import RawInput, StandardizedRecord
from vllmbench.standardize import to_standardized


@pytest.fixture
def results_service():
    seen = {"raw": [], "std": [], "auth": []}

    async def raw(request):
        seen["auth"].append(request.headers.get("Authorization"))
        seen["raw"].append(await request.json())
        return web.json_response({"id": "r1"}, status=201)

    async def std(request):
        seen["std"].append(await request.json())
        return web.json_response({"stored": 1}, status=201)

    loop = asyncio.new_event_loop()
    app = web.Application(client_max_size=256 * 1024 * 1024)
    app.router.add_post("/raw_input", raw)
    app.router.add_post("/standardized_output", std)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}", seen
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.run_until_complete(runner.cleanup())
    loop.close()


def test_demo_posts_raw_and_standardized_output(results_service, tmp_path):
    url, seen = results_service
    summary = run_demo(url, api_token="t0ken-123", out_dir=tmp_path, rate=10.0, duration_s=1.5)
    assert summary["requests"]["succeeded"] == 15 and summary["trustworthy"]
    assert seen["auth"] == ["Bearer t0ken-123"]
    raw = RawInput.model_validate(seen["raw"][0])
    assert raw.harness.name == "vllmbench" and raw.run_id == summary["run_id"]
    posted = [StandardizedRecord.model_validate(r) for r in seen["std"][0]]
    # The Results service's converter rebuilds the same record from the raw report.
    rebuilt = to_standardized(raw)
    assert rebuilt[0].results.latency.ttft.p50 == pytest.approx(posted[0].results.latency.ttft.p50)
    del raw.data["records"]
    recomputed = to_standardized(raw)
    assert recomputed[0].results.latency.ttft.p50 == pytest.approx(posted[0].results.latency.ttft.p50, abs=0.01)
    assert recomputed[0].results.requests == posted[0].results.requests
    assert json.loads((tmp_path / "records.json").read_text())[0]["run"]["run_id"] == summary["run_id"]
