"""A real headless Chromium opens saved reports with the network off and looks at what they drew."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.fixtures.records import record
from tests.report.conftest import SWEEP_RUN, sweep_raw

# Every chart's box on the page, whether it says "no data", and the untrustworthy marks.
PROBE = """(() => {
  const charts = [...document.querySelectorAll('svg.chart')].map(svg => {
    const r = svg.getBoundingClientRect();
    return {title: svg.getAttribute('aria-label'), x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height,
            empty: !!svg.querySelector('.empty')};
  });
  return {charts, rings: document.querySelectorAll('circle.untrusted').length,
          banner: (document.getElementById('untrustworthy') || {}).innerText || '',
          rows: document.querySelectorAll('tr.untrustworthy').length};
})()"""

LIGHT = {"background": (255, 255, 255), "series": [(0x00, 0x72, 0xB2), (0xD5, 0x5E, 0x00), (0x00, 0x9E, 0x73)],
         "bad": (0xCF, 0x22, 0x2E)}
DARK = {"background": (0x0D, 0x11, 0x17), "series": [(0x58, 0xA6, 0xFF), (0xFF, 0x9A, 0x56), (0x3D, 0xDB, 0xB0)],
        "bad": (0xFF, 0x7B, 0x72)}
SHOTS = Path(os.environ.get("VLLMBENCH_REPORT_SHOTS", "")) if os.environ.get("VLLMBENCH_REPORT_SHOTS") else None


def near(pixels: np.ndarray, color: tuple[int, int, int], tolerance: int = 40) -> np.ndarray:
    return (np.abs(pixels.astype(int) - np.array(color)) <= tolerance).all(axis=-1)


def look(chromium, path: Path, *, dark: bool = False):
    visit = chromium.visit(path.as_uri(), dark=dark, probe=PROBE)
    if SHOTS:  # to look at them oneself: VLLMBENCH_REPORT_SHOTS=/tmp/shots
        SHOTS.mkdir(parents=True, exist_ok=True)
        (SHOTS / f"{path.stem}{'-dark' if dark else ''}.png").write_bytes(visit.screenshot)
    pixels = np.asarray(Image.open(io.BytesIO(visit.screenshot)).convert("RGB"))
    return visit, pixels


def assert_offline_and_clean(visit, path: Path) -> None:
    assert visit.errors == [], visit.console
    assert visit.requests == [path.as_uri()]  # the document itself, nothing else


def assert_every_chart_drawn(visit, pixels: np.ndarray, theme: dict) -> None:
    """Inside the box of each chart with data, the series colours are on screen (an empty
    frame has none: its axes and labels are grey)."""
    drawn = [c for c in visit.facts["charts"] if not c["empty"]]
    assert len(drawn) >= 10, visit.facts["charts"]
    for chart in drawn:
        box = pixels[int(chart["y"]):int(chart["y"] + chart["h"]), int(chart["x"]):int(chart["x"] + chart["w"])]
        coloured = sum(int(near(box, colour).sum()) for colour in theme["series"])
        assert coloured > 40, f"{chart['title']}: only {coloured} pixels of series colour"


@pytest.fixture
def stored(serve_function, sweep_dir):
    results = serve_function("results")
    assert results.post("/raw_input", json=sweep_raw(sweep_dir)).status_code == 201
    slower = [record("slow-run", stage=i, rate=r, ttft=40.0 + 10 * i) for i, r in enumerate((5.0, 20.0))]
    assert results.post("/standardized_output", json=slower).status_code == 201
    return results


def test_a_saved_run_report_draws_every_chart_offline_in_light_and_dark(chromium, stored, tmp_path):
    path = tmp_path / "run-report.html"
    path.write_text(stored.get(f"/runs/{SWEEP_RUN}/report").text, encoding="utf-8")
    for dark, theme in ((False, LIGHT), (True, DARK)):
        visit, pixels = look(chromium, path, dark=dark)
        assert_offline_and_clean(visit, path)
        assert_every_chart_drawn(visit, pixels, theme)
        background = near(pixels, theme["background"], 6).mean()
        assert background > 0.6, f"{'dark' if dark else 'light'} background covers only {background:.0%}"
    if chromium.isolated:
        assert visit.isolated  # it ran without any network interface at all


def test_the_untrustworthy_stage_is_marked_on_the_page(chromium, stored, tmp_path):
    path = tmp_path / "run-report.html"
    path.write_text(stored.get(f"/runs/{SWEEP_RUN}/report").text, encoding="utf-8")
    visit, pixels = look(chromium, path)
    # Stage 1 is untrustworthy by construction; stage 0 can be too on a busy machine (the client lags).
    banner = visit.facts["banner"]
    assert banner.startswith("⚠ Untrustworthy:") and "stage 1:" in banner and "in-flight cap" in banner
    assert visit.facts["rows"] >= 2  # the summary's and the trust table's row of stage 1
    assert visit.facts["rings"] >= 4
    # The red of the mark is on screen in the charts, not only in the markup.
    charts = [c for c in visit.facts["charts"] if not c["empty"]]
    red = sum(int(near(pixels[int(c["y"]):int(c["y"] + c["h"]), int(c["x"]):int(c["x"] + c["w"])],
                       LIGHT["bad"], 30).sum()) for c in charts)
    assert red > 200


def test_a_saved_comparison_draws_its_pareto_front_offline(chromium, stored, tmp_path):
    path = tmp_path / "comparison.html"
    path.write_text(stored.get(f"/compare/report?runs={SWEEP_RUN},slow-run").text, encoding="utf-8")
    visit, pixels = look(chromium, path)
    assert_offline_and_clean(visit, path)
    assert_every_chart_drawn(visit, pixels, LIGHT)
    titles = [c["title"] for c in visit.facts["charts"]]
    assert "TTFT p99 against output throughput" in titles and "TPOT p99 against output throughput" in titles


def test_a_report_from_a_local_folder_draws_offline(chromium, sweep_dir, tmp_path):
    from vllmbench.cli.report import from_folder
    from vllmbench.report import run_report

    path = tmp_path / "folder-report.html"
    path.write_text(run_report(from_folder(sweep_dir), generated_at="test"), encoding="utf-8")
    visit, pixels = look(chromium, path)
    assert_offline_and_clean(visit, path)
    assert_every_chart_drawn(visit, pixels, LIGHT)
    assert "throughput over time" in [c["title"] for c in visit.facts["charts"] if not c["empty"]]
