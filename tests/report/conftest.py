"""Real runs for the report tests, and a real headless Chromium to look at their pages."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.report.browser import Chromium, can_unshare_network, find_chromium
from vllmbench.harness.benchmark import run_benchmark
from vllmbench.harness.config import RunConfig, SloSpec
from vllmbench.harness.output import write_files
from vllmbench.simulator import SimConfig, SimulatorProcess

SWEEP_RUN = "report-sweep"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Chromium]:
    """Debian's chromium (``make test`` installs it); missing, the tests skip here and fail under CI.
    One browser per module, closed after it: it takes no CPU from the tests that follow."""
    binary = find_chromium()
    if binary is None:
        message = "chromium is not installed: `make test` installs it (tools/install-chromium.sh)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    browser = Chromium(binary, isolate=can_unshare_network())
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real two-stage sweep of the load generator against the simulator, written as ``--out``.

    The in-flight cap of 2 holds at 5 req/s (a request takes ~175 ms) and not at 20 req/s,
    where requests wait for it: that stage is untrustworthy, for a real reason. The
    simulator fails ~5% of requests so that failures by cause have something to show.
    """
    out = tmp_path_factory.mktemp("sweep")
    sim = SimConfig(port=0, ttft_ms=20, itl_ms=5, jitter_ms=1, error_rate=0.05, disconnect_rate=0.03, seed=7)
    with SimulatorProcess(sim) as server:
        cfg = RunConfig(url=server.url, rates=(5.0, 20.0), duration_s=2.0, input_len="64", output_len="32",
                        max_in_flight=2, slo=SloSpec(ttft_ms=50, itl_ms=10), run_id=SWEEP_RUN, project="reports",
                        tags=("report-test",))
        report = run_benchmark(cfg)
        write_files(report, out)
    # the same run as a large one reaches the Results service: its raw result without the
    # requests, which follow as per-request samples in VBS1 chunks (vllmbench.harness.output)
    from vllmbench.harness.output import raw_input, request_samples
    from vllmbench.samples import encode_chunks

    (out / "apart").mkdir()
    (out / "apart" / "raw.json").write_text(raw_input(report, with_requests=False).model_dump_json())
    for i, chunk in enumerate(encode_chunks(request_samples(report))):
        (out / "apart" / f"samples-{i}.vbs1").write_bytes(chunk)
    return out


def sweep_records(sweep_dir: Path) -> list[dict[str, Any]]:
    return json.loads((sweep_dir / "records.json").read_text())


def sweep_raw(sweep_dir: Path) -> dict[str, Any]:
    return json.loads((sweep_dir / "raw.json").read_text())
