"""Cold start of each function beside a hello-world functions-framework function
measured in the same run. Each start is timed to the answer of its FIRST request, one
of three kinds:

- health: GET /health (liveness; no settings, no I/O);
- docs: GET /docs, a routed API call (auth, settings, runtime, routing);
- event: a binary CloudEvent on POST / (the CloudEvents parser, settings, and for
  results and sync the event's data model, refused with 422 before any database work:
  the database is not reachable here). What an arriving event meets up to the store:
  for results and sync that includes importing pydantic and the function's models,
  which validating the event needs (the functions' cost, not the factory's).

    make bench BENCH_ARGS=coldstart

Targets: docs and event within 1.5x the hello world for all six functions; health
within 1.5x for results, sync, eval and mlflow_poll, 2.2x for deploy and vllm_deploy
(they will need the Kubernetes client). The verdicts use CPU time (user + system of the
process tree until its first answer), which other jobs on a shared machine barely move;
wall time is printed beside it. Medians of several starts, interleaved so that noise
falls on every function alike. Functions are imported from the repository as the image
installs them (PYTHONPATH, not the editable install's import hook).
"""

from __future__ import annotations

import compileall
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from vllmbench.embedded.processes import free_port  # noqa: E402

ROUNDS = int(os.environ.get("COLDSTART_ROUNDS", "9"))
HEALTH_TARGETS = {"results": 1.5, "sync": 1.5, "eval": 1.5, "deploy": 2.2, "vllm_deploy": 2.2, "mlflow_poll": 1.5}
ROUTED_TARGET = 1.5
LAUNCHER = Path(sys.executable).parent / "functions-framework"
# The event each function gets first: one it handles (data refused before any database call)
# or, for a function that handles none yet, one it answers 400.
EVENT_TYPES = {"results": "dev.vllmbench.result.raw", "sync": "dev.vllmbench.gitops.pushed"}
KINDS = ("health", "docs", "event")


def _request(name: str, kind: str) -> tuple[str, str, bytes, dict[str, str]]:
    if name == "hello":
        return "GET", "/", b"", {}
    if kind == "health":
        return "GET", "/health", b"", {}
    if kind == "docs":
        return "GET", "/docs", b"", {}
    headers = {"Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": "cold-1",
               "ce-source": "/bench", "ce-type": EVENT_TYPES.get(name, "dev.vllmbench.bench.probe")}
    return "POST", "/", json.dumps({"run_id": "cold"}).encode(), headers


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by ``pid`` and its live descendants (gunicorn's
    worker is a child of its master)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
        except (OSError, ValueError, IndexError):
            continue
    return total


def start_once(source: Path, target: str, request: tuple[str, str, bytes, dict[str, str]]) -> tuple[float, float]:
    """Wall seconds from process start to the answer of its first request, and the CPU
    seconds the process tree used to give it."""
    port = free_port()
    env = {**os.environ, "MONGO_URL": "mongodb://127.0.0.1:1/", "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    process = subprocess.Popen([str(LAUNCHER), f"--target={target}", f"--source={source}", f"--port={port}",
                                "--host=127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                               cwd=REPO)
    try:
        deadline = started + 30
        while time.perf_counter() < deadline:
            status = _send(port, *request)
            if status is not None:
                assert status < 500, f"{source}: {request[:2]} answered {status}"
                return time.perf_counter() - started, cpu_seconds(process.pid)
            time.sleep(0.002)
        raise RuntimeError(f"{source} did not answer within 30 s")
    finally:
        process.terminate()
        process.wait(10)


def _send(port: int, method: str, path: str, body: bytes, headers: dict[str, str]) -> int | None:
    """Status of the request, or None while nothing listens yet (a plain client: no proxy look-ups)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body or None, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        connection.close()


def heavy_imports(source: Path) -> list[str]:
    code = ("import runpy, sys; runpy.run_path(sys.argv[1]);"
            "print(','.join(m for m in ('mlflow', 'kubernetes', 'pymongo', 'git', 'numpy', 'aiohttp', 'pydantic',"
            " 'pydantic_settings') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(source)], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    return [m for m in out.stdout.strip().split(",") if m]


def main() -> None:
    compileall.compile_dir(str(REPO / "vllmbench"), quiet=1)
    compileall.compile_dir(str(REPO / "functions"), quiet=1)
    cases = {"hello": (REPO / "tests/bench/hello/main.py", "hello")}
    cases.update({name: (REPO / "functions" / name / "main.py", "handle") for name in HEALTH_TARGETS})
    for name in [name for name, case in cases.items() if not case[0].exists()]:
        print(f"{name}: functions/{name}/main.py does not exist; not measured")
        del cases[name]
    for name, (source, target) in cases.items():  # warm the page cache and the .pyc files; not counted
        for kind in KINDS:
            start_once(source, target, _request(name, kind))
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {(n, k): [] for n in cases for k in KINDS}
    for _ in range(ROUNDS):
        for name, (source, target) in cases.items():
            for kind in KINDS:
                samples[name, kind].append(start_once(source, target, _request(name, kind)))

    def median(name: str, kind: str, which: int) -> float:
        return statistics.median(sample[which] for sample in samples[name, kind])

    hello = {which: statistics.median(s[which] for kind in KINDS for s in samples["hello", kind]) for which in (0, 1)}
    print(f"cold start to the first answer, median of {ROUNDS} starts each; 2-core machine shared with other jobs")
    print("  cpu: CPU ms of the process tree (the verdicts); wall: ms from process start; ratio: cpu / hello's cpu")
    print(f"  hello world: {hello[1] * 1000:.0f} ms cpu, {hello[0] * 1000:.0f} ms wall")
    header = "".join(f"{kind + ' cpu':>11}{'wall':>6}{'ratio':>7}{'target':>7}  {'':<5}" for kind in KINDS)
    print(f"{'function':<13}{header}heavy imports at load")
    for name in cases:
        if name == "hello":
            continue
        row = ""
        for kind in KINDS:
            cpu, wall = median(name, kind, 1), median(name, kind, 0)
            target = HEALTH_TARGETS[name] if kind == "health" else ROUTED_TARGET
            ratio = cpu / hello[1]
            row += (f"{cpu * 1000:>11.0f}{wall * 1000:>6.0f}{ratio:>7.2f}{f'{target:.1f}x':>7}  "
                    f"{'ok' if ratio <= target else 'OVER':<5}")
        print(f"{name:<13}{row}{','.join(heavy_imports(cases[name][0])) or 'none'}")


def report_import_ms() -> tuple[float, float]:
    """What the first report request pays to import vllmbench.report, on top of the record models
    (which the results routes load anyway), and those models' own import for scale: medians over
    fresh processes, in ms."""
    code = ("import time; t0 = time.perf_counter(); import vllmbench.models.results; t1 = time.perf_counter();"
            "import vllmbench.report; print(time.perf_counter() - t1, t1 - t0)")
    runs = [[float(v) for v in subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                                              check=True).stdout.split()] for _ in range(ROUNDS)]
    return statistics.median(r[0] for r in runs) * 1000, statistics.median(r[1] for r in runs) * 1000


if __name__ == "__main__":
    main()
    report_ms, models_ms = report_import_ms()
    print(f"report routes: import vllmbench.report {report_ms:.0f} ms on their first request, off the cold-start "
          f"path (the record models it needs: {models_ms:.0f} ms)")
