"""Cold start of each function: process start to the first 200 on /health, beside a
hello-world functions-framework function measured in the same run.

    make bench BENCH_ARGS=coldstart

Targets (FIELD-NOTES.md): within 1.5x the hello world for results, sync and eval;
within 2.2x for deploy and vllm_deploy (they will need the Kubernetes client); mlflow
imported only when a poll runs. Medians of several starts; the order of starts is
interleaved so that machine noise falls on every function alike.
"""

from __future__ import annotations

import compileall
import os
import statistics
import subprocess
import sys
import time
import http.client
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from vllmbench.embedded.processes import free_port  # noqa: E402

ROUNDS = int(os.environ.get("COLDSTART_ROUNDS", "7"))
TARGETS = {"results": 1.5, "sync": 1.5, "eval": 1.5, "deploy": 2.2, "vllm_deploy": 2.2, "mlflow_poll": 1.5}
LAUNCHER = Path(sys.executable).parent / "functions-framework"


def start_once(source: Path, target: str, path: str, then: str | None = None) -> tuple[float, float | None]:
    """Seconds to the first 200 on ``path`` and, when ``then`` is given, to the first 200 on
    ``then`` right after (a routed request that builds settings: what an event would pay)."""
    port = free_port()
    env = {**os.environ, "MONGO_URL": "mongodb://127.0.0.1:1/"}
    started = time.perf_counter()
    process = subprocess.Popen([str(LAUNCHER), f"--target={target}", f"--source={source}", f"--port={port}",
                                "--host=127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                               cwd=REPO)
    try:
        deadline = started + 30
        while time.perf_counter() < deadline:
            status = _get(port, path)
            if status == 200:
                first = time.perf_counter() - started
                if then is None:
                    return first, None
                assert _get(port, then, timeout=10) == 200
                return first, time.perf_counter() - started
            time.sleep(0.002)
        raise RuntimeError(f"{source} did not answer within 30 s")
    finally:
        process.terminate()
        process.wait(10)


def _get(port: int, path: str, timeout: float = 1.0) -> int | None:
    """Status of GET path, or None while nothing listens yet (a plain client: no proxy look-ups)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        connection.close()


def heavy_imports(source: Path) -> list[str]:
    code = ("import runpy, sys; runpy.run_path(sys.argv[1]);"
            "print(','.join(m for m in ('mlflow', 'kubernetes', 'pymongo', 'git', 'numpy', 'aiohttp') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(source)], capture_output=True, text=True, cwd=REPO)
    return [m for m in out.stdout.strip().split(",") if m]


def main() -> None:
    compileall.compile_dir(str(REPO / "vllmbench"), quiet=1)
    compileall.compile_dir(str(REPO / "functions"), quiet=1)
    cases = {"hello": (REPO / "tests/bench/hello/main.py", "hello", "/", None)}
    cases.update({name: (REPO / "functions" / name / "main.py", "handle", "/health", "/docs") for name in TARGETS})
    missing = [name for name, case in cases.items() if not case[0].exists()]
    for name in missing:
        print(f"{name}: functions/{name}/main.py does not exist; not measured")
        del cases[name]
    for case in cases.values():  # warm the page cache and the .pyc files; not counted
        start_once(*case)
    times: dict[str, list[float]] = {name: [] for name in cases}
    routed: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(ROUNDS):
        for name, case in cases.items():
            first, then = start_once(*case)
            times[name].append(first)
            if then is not None:
                routed[name].append(then)
    hello = statistics.median(times["hello"])
    print(f"cold start, median of {ROUNDS} starts, 2-core machine (shared: compare ratios, not ms):")
    print("  /health: process start -> first 200 on /health (the target);")
    print("  +routed: process start -> first 200 on /docs right after (builds settings, as an event would)")
    print(f"{'function':<13}{'/health ms':>11}{'ratio':>7}{'target':>8}  {'verdict':<8}{'+routed ms':>11}{'ratio':>7}"
          "  heavy imports at load")
    for name in cases:
        median = statistics.median(times[name])
        target = TARGETS.get(name)
        verdict = "" if target is None else ("ok" if median / hello <= target else "OVER")
        heavy = "" if name == "hello" else (",".join(heavy_imports(cases[name][0])) or "none")
        routed_ms = f"{statistics.median(routed[name]) * 1000:>11.0f}" if routed[name] else " " * 11
        routed_ratio = f"{statistics.median(routed[name]) / hello:>7.2f}" if routed[name] else " " * 7
        print(f"{name:<13}{median * 1000:>11.0f}{median / hello:>7.2f}{(f'{target:.1f}x' if target else ''):>8}  "
              f"{verdict:<8}{routed_ms}{routed_ratio}  {heavy}")


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
