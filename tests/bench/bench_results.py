"""Results service at 10k, 100k (and 1M) standardized records, through the real function over HTTP.

    make bench BENCH_ARGS=results
    BENCH_RESULTS_SIZES=10000,100000,1000000 make bench BENCH_ARGS=results   # the 1M point too

For each size, on one database that grows from one size to the next:
- ingest: the first 10,000 records posted in batches of 500 to POST /standardized_output
  (records/s over HTTP); the rest written through the store adapter to save time;
- listing: each single filter (project, model, harness, tag, time range) and no filter,
  default sort (newest first), first pages and cursor pages, 50 per page: p50/p95;
- GET /runs/{id}, GET /standardized_output/{id} and GET /compare of 5 runs: p50/p95;
- 8 writer + 8 reader threads (10-record batches; readers list pages and read runs):
  p50/p95 of each, as issue 9 measured it on the first layout.

The function runs under functions-framework (gunicorn, 1 worker, its default threads)
against the embedded FerretDB; both share the machine's 2 cores with this client, and
with whatever else runs: compare figures of one run, and repeat.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.fixtures.records import record  # noqa: E402
from vllmbench.embedded.ferretdb import FerretDB  # noqa: E402
from vllmbench.embedded.processes import free_port, http_ok, wait_until  # noqa: E402

SIZES = [int(s) for s in os.environ.get("BENCH_RESULTS_SIZES", "10000,100000").split(",")]
HTTP_INGEST = int(os.environ.get("BENCH_INGEST_RECORDS", "10000"))
BATCH = 500
PROJECTS, MODELS, HARNESSES = 20, 7, ("vllmbench", "guidellm", "vllm-bench-serve")
SPACING_S = 37
START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
TEMPLATE = record("template")


def make(i: int) -> dict:
    """Record i: 20 projects, 7 models, 3 harnesses, one in three tagged 'regression', 37 s apart.

    Every statistic is scaled by a factor of its own, so that records differ in their
    numbers as real ones do (records alike would compress unrealistically well).
    """
    rng = random.Random(i)
    doc = copy.deepcopy(TEMPLATE)
    for stats in [*doc["results"]["latency"].values(), doc["results"]["trust"]["schedule_delay_ms"]]:
        factor = rng.uniform(0.5, 2.0)
        for field in ("mean", "stddev", "min", "p50", "p90", "p95", "p99", "p999", "max"):
            if field in stats:
                stats[field] = round(stats[field] * factor, 6)
    for field in doc["results"]["throughput"]:
        doc["results"]["throughput"][field] *= rng.uniform(0.9, 1.1)
    doc["run"].update(run_id=f"bench-{i:07d}", project=f"p{i % PROJECTS}",
                      started_at=(START + dt.timedelta(seconds=SPACING_S * i)).isoformat(),
                      ended_at=(START + dt.timedelta(seconds=SPACING_S * i + 60)).isoformat())
    doc["scenario"]["model"] = f"model-{i % MODELS}"
    doc["scenario"]["harness"]["name"] = HARNESSES[i % len(HARNESSES)]
    doc["tags"] = ["nightly"] if i % 3 else ["nightly", "regression"]
    return doc


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def timed(session: requests.Session, url: str, **params) -> tuple[float, requests.Response]:
    t0 = time.perf_counter()
    response = session.get(url, params=params, timeout=120)
    elapsed = (time.perf_counter() - t0) * 1000
    response.raise_for_status()
    return elapsed, response


def listing(session: requests.Session, url: str, size: int) -> None:
    window_from = START + dt.timedelta(seconds=SPACING_S * size // 2)
    cases = [("project", {"project": "p3"}), ("model", {"model": "model-2"}), ("harness", {"harness": "guidellm"}),
             ("tag", {"tag": "regression"}),
             ("time range (1 day)", {"since": window_from.isoformat(), "until": (window_from + dt.timedelta(days=1)).isoformat()}),
             ("no filter", {}), ("project + tag", {"project": "p3", "tag": "regression"}),
             ("model, oldest first", {"model": "model-2", "sort": "time"})]
    for label, params in cases:
        pages: list[float] = []
        for _ in range(3):
            cursor = None
            for _ in range(5):  # a first page and cursor pages after it
                ms, page = timed(session, url + "/standardized_output", limit=50, **params,
                                 **({"cursor": cursor} if cursor else {}))
                pages.append(ms)
                cursor = page.json()["next_cursor"]
                if not cursor:
                    break
        print(f"  list {label:<22} p50 {statistics.median(pages):6.1f} ms  p95 {pct(pages, 95):6.1f} ms"
              f"  ({len(pages)} pages of 50)", flush=True)


def point_reads(session: requests.Session, url: str, size: int) -> None:
    rng = random.Random(size)
    for label, path in [("GET /runs/{id}", lambda: f"/runs/bench-{rng.randrange(size):07d}"),
                        ("GET /standardized_output/{id}", lambda: f"/standardized_output/bench-{rng.randrange(size):07d}%230"),
                        ("GET /compare (5 runs)", lambda: "/compare?runs=" + ",".join(
                            f"bench-{rng.randrange(size):07d}" for _ in range(5)))]:
        times = [timed(session, url + path())[0] for _ in range(60)]
        print(f"  {label:<28} p50 {statistics.median(times):6.1f} ms  p95 {pct(times, 95):6.1f} ms  (60 requests)",
              flush=True)


def mixed(url: str, size: int, seconds: float = 15.0) -> None:
    """8 writers posting 10-record batches and 8 readers listing and reading runs, for ``seconds``."""
    post_ms: list[float] = []
    get_ms: list[float] = []
    stop = time.monotonic() + seconds
    errors: list[str] = []

    def writer(w: int) -> None:
        session, n = requests.Session(), 0
        while time.monotonic() < stop:
            batch = [make(50_000_000 + size * 10 + w * 1_000_000 + n + j) for j in range(10)]
            n += 10
            t0 = time.perf_counter()
            response = session.post(url + "/standardized_output", json=batch, timeout=120)
            post_ms.append((time.perf_counter() - t0) * 1000)
            if response.status_code != 201:
                errors.append(f"POST {response.status_code}")

    def reader(r: int) -> None:
        session, n = requests.Session(), 0
        while time.monotonic() < stop:
            path = (f"/standardized_output?project=p{(r + n) % PROJECTS}&limit=50" if n % 2
                    else f"/runs/bench-{(r * 7919 + n * 104729) % size:07d}")
            n += 1
            t0 = time.perf_counter()
            response = session.get(url + path, timeout=120)
            get_ms.append((time.perf_counter() - t0) * 1000)
            if response.status_code != 200:
                errors.append(f"GET {response.status_code}")

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    threads += [threading.Thread(target=reader, args=(r,)) for r in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"  8 writers + 8 readers, {seconds:.0f} s: POST (10 records) p50 {statistics.median(post_ms):.0f} ms "
          f"p95 {pct(post_ms, 95):.0f} ms ({len(post_ms)} posts, {10 * len(post_ms) / seconds:,.0f} records/s); "
          f"GET p50 {statistics.median(get_ms):.0f} ms p95 {pct(get_ms, 95):.0f} ms ({len(get_ms)} reads); "
          f"errors: {len(errors)}", flush=True)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        external = os.environ.get("MONGO_URL")
        db = None if external else FerretDB(Path(tmp) / "ferretdb", free_port()).start()
        mongo_url = external or db.url
        print(f"database: {'MONGO_URL' if external else 'FerretDB v1.24 (SQLite, patched _id index) on this machine'}")
        port = free_port()
        env = {**os.environ, "MONGO_URL": mongo_url, "VLLMBENCH_DATABASE": f"bench_results_{os.getpid()}"}
        server = subprocess.Popen([str(Path(sys.executable).parent / "functions-framework"), "--target=handle",
                                   f"--source={REPO / 'functions/results/main.py'}", f"--port={port}",
                                   "--host=127.0.0.1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: http_ok(url + "/ready"), timeout_s=60, what="results function", process=server)
            session = requests.Session()
            bodies = [json.dumps([make(i) for i in range(first, min(first + BATCH, HTTP_INGEST))])
                      for first in range(0, HTTP_INGEST, BATCH)]
            started = time.perf_counter()
            for body in bodies:
                response = session.post(url + "/standardized_output", data=body, timeout=120,
                                        headers={"Content-Type": "application/json"})
                response.raise_for_status()
            elapsed = time.perf_counter() - started
            print(f"ingest: {HTTP_INGEST:,} records in batches of {BATCH} over HTTP: {elapsed:.1f} s, "
                  f"{HTTP_INGEST / elapsed:,.0f} records/s", flush=True)

            from vllmbench.models.results import StandardizedRecord
            from vllmbench.store.mongo import MongoStore
            from vllmbench.store.results import ResultsStore

            store = ResultsStore(MongoStore(mongo_url).database(env["VLLMBENCH_DATABASE"]))
            have = HTTP_INGEST
            for size in SIZES:
                filled = time.perf_counter()
                for first in range(have, size, 5000):
                    store.insert_standardized([StandardizedRecord.model_validate(make(i))
                                               for i in range(first, min(first + 5000, size))])
                if size > have:
                    took = time.perf_counter() - filled
                    print(f"fill: {size - have:,} more records through the store adapter in {took:.1f} s "
                          f"({(size - have) / took:,.0f} records/s)", flush=True)
                have = max(have, size)
                print(f"at {size:,} records:", flush=True)
                listing(session, url, size)
                point_reads(session, url, size)
                mixed(url, size)
        finally:
            server.terminate()
            server.wait(10)
            if db is not None:
                db.stop()


if __name__ == "__main__":
    main()
