"""Reports people look at: one self-contained HTML file per run or comparison (docs/report.md).

Pure: standardized records (and per-request samples where stored) in, HTML text out.
Imported by the Results service's report routes and ``vllmbench report`` only, never
on a function's cold-start path.
"""

from __future__ import annotations

from vllmbench.report.build import compare_report, run_report
from vllmbench.report.data import RunData, StageSamples, request_rows, run_data, samples_by_stage

__all__ = ["RunData", "StageSamples", "compare_report", "request_rows", "run_data", "run_report", "samples_by_stage"]
