"""The suite's own parallelism (tests/fixtures/parallel.py), on a small suite run by a real
``pytest -n 3``: the units stay whole on one worker, the long ones go first, and an exclusive
test overlaps no other. Groups that pytest-xdist lost silently once (pytest 9.2) are checked
here, where losing them fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

RECORD = """
import json, os, time

def record(name, pause=0.3):
    start = time.time()
    time.sleep(pause)
    with open(os.environ["RECORD_TO"], "a") as out:
        out.write(json.dumps([os.environ["PYTEST_XDIST_WORKER"], name, start, time.time()]) + "\\n")
"""


def _module(prefix: str, count: int, *, mark: str = "") -> str:
    tests = "\n".join(f"{mark}\ndef test_{prefix}_{i}():\n    record('{prefix}_{i}')\n" for i in range(count))
    return f"import pytest\nfrom recorder import record\n\n{tests}"


def test_units_stay_on_one_worker_the_long_go_first_and_an_exclusive_test_runs_alone(tmp_path: Path) -> None:
    suite = {
        "conftest.py": 'pytest_plugins = ["tests.fixtures.parallel"]\n',
        "tests/k8s/test_a.py": _module("k8s_a", 3),
        "tests/k8s/test_b.py": _module("k8s_b", 3),
        "tests/functions/mlflow/test_c.py": _module("mlflow_c", 2),
        "tests/integration/mlflow/test_d.py": _module("mlflow_d", 2),
        "tests/e2e/test_e.py": _module("e2e_e", 2),
        "tests/e2e/test_f.py": _module("e2e_f", 2),
        "tests/integration/test_g.py": _module("g", 4),
        "tests/integration/test_busy.py": _module("busy", 2, mark="@pytest.mark.exclusive"),
        "tests/unit/test_h.py": _module("h", 6),
    }
    for path, text in suite.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    (tmp_path / "recorder.py").write_text(RECORD)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    exclusive: alone\n")
    record = tmp_path / "record.jsonl"
    env = {**os.environ, "RECORD_TO": str(record), "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]),
           "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # xdist alone: four processes importing schemathesis take seconds
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "xdist.plugin", "-n", "3", "-q", "-p", "no:cacheprovider"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    ran = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(ran) == 26
    workers: dict[str, set[str]] = {}
    for worker, name, _, _ in ran:
        workers.setdefault(name.rsplit("_", 1)[0].split("_")[0], set()).add(worker)
    for unit in ("k8s", "mlflow", "e2e", "g", "busy", "h"):
        assert len(workers[unit]) == 1, (unit, workers)
    first = {}
    for worker, name, start, _ in sorted(ran, key=lambda r: r[2]):
        first.setdefault(worker, name)
    assert {name.split("_")[0] for name in first.values()} == {"e2e", "k8s", "mlflow"}  # the long units first
    alone = [(start, end) for _, name, start, end in ran if name.startswith("busy")]
    others = [(start, end) for _, name, start, end in ran if not name.startswith("busy")]
    for start, end in alone:
        assert not [o for o in others if o[0] < end and o[1] > start], "an exclusive test overlapped another"
