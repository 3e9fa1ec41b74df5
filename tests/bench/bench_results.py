"""Results service at 10k, 100k (and 1M) standardized records, through the real function over HTTP.

    make bench BENCH_ARGS=results
    BENCH_RESULTS_SIZES=10000,100000,1000000 make bench BENCH_ARGS=results   # the 1M point too

For each size, on one database that grows from one size to the next:
- ingest: after a warm-up of 2,000 records (not counted: the function's helper processes
  start), 10,000 records posted in batches of 500 to POST /standardized_output over one
  connection, then 10,000 more over two connections at once (a client that sends its next
  batch while the last one is stored): records/s over HTTP and CPU per record; the rest
  written through the store adapter to save time (``BENCH_RESULTS_SIZES=`` stops here),
  but the last 10,000 of each size over HTTP again, two connections (ingest into a store
  that big); each size's figures name the records there were (the ingests and the mixed
  phases write more than the sizes);
- listing: each single filter (project, model, harness, tag, time range) and no filter,
  default sort (newest first), first pages and cursor pages, 50 per page: p50/p95;
- GET /runs/{id}, GET /standardized_output/{id} and GET /compare of 5 runs: p50/p95;
- 8 writer + 8 reader threads (10-record batches; readers list pages and read runs):
  p50/p95 of each, as issue 9 measured it on the first layout;
- per-request samples: 100,000 requests of 128 tokens uploaded as VBS1 chunks (size,
  time), a page of them, and percentiles recomputed over all of them.

Next to each wall-clock figure: the CPU the function's process and FerretDB spent per
request (psutil), which does not depend on what else the machine runs.

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

SIZES = [int(s) for s in os.environ.get("BENCH_RESULTS_SIZES", "10000,100000").split(",") if s]  # "": ingest only
HTTP_INGEST = int(os.environ.get("BENCH_INGEST_RECORDS", "10000"))  # per connection count below
INGEST_CONNECTIONS = tuple(int(c) for c in os.environ.get("BENCH_INGEST_CONNECTIONS", "1,2").split(","))
WARMUP = 2_000
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


class Cpu:
    """CPU seconds of the function's process and of FerretDB, between two marks."""

    def __init__(self, *pids: int) -> None:
        import psutil

        self.processes = [psutil.Process(pid) for pid in pids]
        self.mark()

    def now(self) -> list[float]:
        """CPU of each process and its children; first, the function's own worker process alone
        (gunicorn's worker: its children are the ingest helpers)."""
        totals = [sum(p.cpu_times()[:2]) + sum(sum(c.cpu_times()[:2]) for c in _children(p)) for p in self.processes]
        workers = self.processes[0].children()
        return [sum(sum(w.cpu_times()[:2]) for w in workers), *totals]

    def mark(self) -> None:
        self.start = self.now()

    def per(self, n: int, what: str = "request") -> str:
        worker, *used = [b - a for a, b in zip(self.start, self.now())]
        if what == "record":
            return "CPU/record: function {:.0f} us (its process {:.0f} + helpers {:.0f}), FerretDB {:.0f} us".format(
                1e6 * used[0] / max(n, 1), 1e6 * worker / max(n, 1), 1e6 * (used[0] - worker) / max(n, 1),
                *(1e6 * u / max(n, 1) for u in used[1:]))
        return "CPU/request: function {:.1f} ms, FerretDB {:.1f} ms".format(*(1000 * u / max(n, 1) for u in used))


CPU: Cpu | None = None


def _children(process) -> list:
    import psutil

    try:
        return process.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def load() -> str:
    """The machine's load average over the last minute: beside every wall-clock figure."""
    return "load " + Path("/proc/loadavg").read_text().split()[0]


def ingest(url: str, first: int, count: int, connections: int, what: str = "ingest") -> int:
    """``count`` records from ``first`` in batches of 500, posted over ``connections`` connections at once."""
    bodies = [json.dumps([make(i) for i in range(start, min(start + BATCH, first + count))]).encode()
              for start in range(first, first + count, BATCH)]
    errors: list[str] = []

    def post(part: list[bytes]) -> None:
        session = requests.Session()
        for body in part:
            response = session.post(url + "/standardized_output", data=body, timeout=120,
                                    headers={"Content-Type": "application/json"})
            if response.status_code != 201:
                errors.append(f"{response.status_code} {response.text[:200]}")

    threads = [threading.Thread(target=post, args=(bodies[c::connections],)) for c in range(connections)]
    CPU.mark()
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"ingest failed: {errors[0]}")
    print(f"{what}: {count:,} records in batches of {BATCH} over HTTP, {connections} connection(s): {elapsed:.1f} s, "
          f"{count / elapsed:,.0f} records/s ({CPU.per(count, 'record')}; {load()})", flush=True)
    return first + count


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
        CPU.mark()
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
              f"  ({len(pages)} pages of 50; {CPU.per(len(pages))}; {load()})", flush=True)


def point_reads(session: requests.Session, url: str, size: int) -> None:
    rng = random.Random(size)
    for label, path in [("GET /runs/{id}", lambda: f"/runs/bench-{rng.randrange(size):07d}"),
                        ("GET /standardized_output/{id}", lambda: f"/standardized_output/bench-{rng.randrange(size):07d}%230"),
                        ("GET /compare (5 runs)", lambda: "/compare?runs=" + ",".join(
                            f"bench-{rng.randrange(size):07d}" for _ in range(5)))]:
        CPU.mark()
        times = [timed(session, url + path())[0] for _ in range(60)]
        print(f"  {label:<28} p50 {statistics.median(times):6.1f} ms  p95 {pct(times, 95):6.1f} ms  (60 requests; "
              f"{CPU.per(60)}; {load()})", flush=True)


def mixed(url: str, size: int, seconds: float = 15.0) -> int:
    """8 writers posting 10-record batches and 8 readers listing and reading runs, for ``seconds``;
    returns the records stored."""
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
    return 10 * (len(post_ms) - sum(e.startswith("POST") for e in errors))


def samples_bench(session: requests.Session, url: str) -> None:
    """100,000 requests of 128 tokens (127 gaps each, 5 ms with 50 us jitter and rare stalls) as samples."""
    import numpy as np

    from vllmbench.samples import Samples, encode_chunks

    rng = np.random.default_rng(7)
    n, gaps_per = 100_000, 127
    gaps = 5000 + rng.normal(0, 50, n * gaps_per)
    stalls = rng.random(n * gaps_per) < 0.002
    gaps[stalls] += rng.exponential(20_000, int(stalls.sum()))
    gaps_10us = np.round(np.maximum(gaps, 0) / 10).astype("<i4")
    scheduled = np.cumsum(rng.exponential(10_000, n)).astype("<i8")
    ttft = (20_000 + rng.gamma(4, 500, n)).astype("<i8")
    e2e = ttft + gaps_10us.reshape(n, gaps_per).sum(axis=1) * 10
    columns = {"stage": np.zeros(n, "<i4"), "index": np.arange(n, dtype="<i4"), "scheduled_us": scheduled,
               "sent_us": scheduled + rng.integers(20, 200, n), "ttft_us": ttft, "e2e_us": e2e,
               "cap_wait_us": np.zeros(n, "<i8"), "input_tokens": np.full(n, 128, "<i4"),
               "output_tokens": np.full(n, 128, "<i4"), "status": np.full(n, 200, "<i2"),
               "outcome": np.zeros(n, "u1"), "tokens_from": np.ones(n, "u1"), "measured": np.ones(n, "u1"),
               "itl_count": np.full(n, gaps_per, "<i4"), "itl": gaps_10us}
    chunks = encode_chunks(Samples(columns, ["ok"], ["unknown", "server"]))
    raw = {"run_id": "samples-100k", "harness": {"name": "custom"}, "data": {"requests": n}}
    raw_id = session.post(url + "/raw_input", json=raw, timeout=60).json()["id"]
    t0 = time.perf_counter()
    for chunk in chunks:
        session.post(url + f"/raw_input/{raw_id}/requests", data=chunk, timeout=120,
                     headers={"Content-Type": "application/octet-stream"}).raise_for_status()
    print(f"samples: 100,000 requests x 128 tokens = {sum(map(len, chunks)) / 1e6:.1f} MB in {len(chunks)} VBS1 chunks "
          f"(gaps at 10 us, jitter 50 us); uploaded in {time.perf_counter() - t0:.1f} s", flush=True)
    for label, params in [("a page of 100 requests", {"limit": 100, "cursor": None}),
                          ("TTFT p50,p99,p99.9 over 100k", "ttft"), ("ITL p99 over 12.7M gaps", "itl")]:
        times = []
        for _ in range(5):
            if isinstance(params, dict):
                ms, _ = timed(session, url + "/runs/samples-100k/requests", limit=100)
            else:
                ms, got = timed(session, url + "/runs/samples-100k/percentiles", metric=params, p="50,99,99.9")
            times.append(ms)
        print(f"  {label:<32} p50 {statistics.median(times):7.1f} ms  max {max(times):7.1f} ms", flush=True)


def main() -> None:
    global CPU

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
            CPU = Cpu(server.pid, *([db.process.popen.pid] if db is not None else []))
            session = requests.Session()
            # A warm-up first, not counted: the first big batches after a start are validated in the
            # function's process while its helper processes start (docs/results.md, "Ingest").
            have = ingest(url, 0, WARMUP, 2, what="warm-up (not counted)")
            for connections in INGEST_CONNECTIONS:
                have = ingest(url, have, HTTP_INGEST, connections)

            from vllmbench.models.results import StandardizedRecord
            from vllmbench.store.mongo import MongoStore
            from vllmbench.store.results import ResultsStore

            import gc

            gc.set_threshold(200_000, 20, 10)  # as the results function does (functions/results/main.py)
            client = MongoStore(mongo_url)
            store = ResultsStore(client.database(env["VLLMBENCH_DATABASE"]))
            extra = 0  # records the mixed phases posted (under indexes of their own)
            for size in SIZES:
                # Through the store adapter up to the last 10,000 (faster), those over HTTP: ingest
                # into a store this big (deeper trees, leaves the function's cache does not hold).
                fill_to = max(have, size - HTTP_INGEST)
                filled = time.perf_counter()
                CPU.mark()
                for first in range(have, fill_to, 5000):
                    store.insert_standardized([StandardizedRecord.model_validate(make(i))
                                               for i in range(first, min(first + 5000, fill_to))])
                if fill_to > have:
                    took = time.perf_counter() - filled
                    print(f"fill: {fill_to - have:,} more records through the store adapter (batches of 5,000, "
                          f"validated) in {took:.1f} s ({(fill_to - have) / took:,.0f} records/s; FerretDB "
                          f"{CPU.per(fill_to - have, 'record').split('FerretDB ')[1]} per record)", flush=True)
                    have = fill_to
                if have < size:
                    have = ingest(url, have, size - have, 2, what=f"ingest into {have + extra:,} records")
                print(f"at {have + extra:,} records:", flush=True)
                listing(session, url, size)
                point_reads(session, url, size)
                extra += mixed(url, size)
            client.close()
            if SIZES:
                samples_bench(session, url)
        finally:
            server.terminate()
            server.wait(10)
            if db is not None:
                db.stop()


if __name__ == "__main__":
    main()
