"""Results service: ingest rate and listing latency, through the real function over HTTP.

    make bench BENCH_ARGS=results

- ingest: 10,000 standardized records posted in batches of 500 to
  POST /standardized_output; records/s.
- query: 100,000 records in the store (the first 10,000 posted, the rest written
  straight through the store adapter to save time), then a filtered listing
  (project + tag, 50 per page) and the following cursor pages: p50/p95 per page.

The function runs under functions-framework (gunicorn) against FerretDB (SQLite) on
this machine; both share its 2 cores with this client. FerretDB v1 pushes neither
sort nor (with SQLite) filters down to its backend, so every listing scans the whole
collection (~90-200 us a document here): the figures measure that scan. Against
MongoDB (set MONGO_URL) the (time, _id) and (field, time) indexes serve the page.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.fixtures.records import record  # noqa: E402
from vllmbench.embedded.ferretdb import FerretDB  # noqa: E402
from vllmbench.embedded.processes import free_port, http_ok, wait_until  # noqa: E402

INGEST = int(os.environ.get("BENCH_INGEST_RECORDS", "10000"))
TOTAL = int(os.environ.get("BENCH_QUERY_RECORDS", "100000"))
BATCH = 500
PROJECTS = 20


def make(i: int) -> dict:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=37 * i)
    tags = ["nightly"] if i % 3 else ["nightly", "regression"]
    return record(f"bench-{i:06d}", project=f"p{i % PROJECTS}", started=start, tags=tags, ttft=10 + i % 50,
                  model=f"model-{i % 7}")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        external = os.environ.get("MONGO_URL")
        db = None if external else FerretDB(Path(tmp) / "ferretdb", free_port()).start()
        mongo_url = external or db.url
        print(f"database: {'MONGO_URL' if external else 'FerretDB v1 (SQLite) on this machine'}")
        port = free_port()
        env = {**os.environ, "MONGO_URL": mongo_url, "VLLMBENCH_DATABASE": f"bench_results_{os.getpid()}"}
        server = subprocess.Popen([str(Path(sys.executable).parent / "functions-framework"), "--target=handle",
                                   f"--source={REPO / 'functions/results/main.py'}", f"--port={port}",
                                   "--host=127.0.0.1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: http_ok(url + "/ready"), timeout_s=60, what="results function", process=server)
            session = requests.Session()
            started = time.perf_counter()
            for first in range(0, INGEST, BATCH):
                response = session.post(url + "/standardized_output",
                                        json=[make(i) for i in range(first, min(first + BATCH, INGEST))], timeout=120)
                response.raise_for_status()
            elapsed = time.perf_counter() - started
            print(f"ingest: {INGEST} records in batches of {BATCH} over HTTP: {elapsed:.1f} s, "
                  f"{INGEST / elapsed:,.0f} records/s")

            from vllmbench.models.results import StandardizedRecord
            from vllmbench.store.mongo import MongoStore
            from vllmbench.store.results import ResultsStore

            mongo = MongoStore(mongo_url)
            store = ResultsStore(mongo.database(env["VLLMBENCH_DATABASE"]))
            filled = time.perf_counter()
            for first in range(INGEST, TOTAL, 5000):
                store.insert_standardized([StandardizedRecord.model_validate(make(i))
                                           for i in range(first, min(first + 5000, TOTAL))])
            print(f"fill: {TOTAL - INGEST} more records through the store adapter in {time.perf_counter() - filled:.1f} s")

            for label, params in [("project + tag, newest first", {"project": "p3", "tag": "regression"}),
                                  ("model, oldest first", {"model": "model-2", "sort": "time"}),
                                  ("no filter", {})]:
                pages: list[float] = []
                for _ in range(2):
                    cursor = None
                    for _ in range(3):  # a first page and two cursor pages
                        query = {**params, "limit": 50, **({"cursor": cursor} if cursor else {})}
                        t0 = time.perf_counter()
                        page = session.get(url + "/standardized_output", params=query, timeout=60)
                        pages.append((time.perf_counter() - t0) * 1000)
                        page.raise_for_status()
                        cursor = page.json()["next_cursor"]
                        if not cursor:
                            break
                pages.sort()
                p95 = pages[min(len(pages) - 1, int(0.95 * len(pages)))]
                print(f"query over {TOTAL:,} records, {label}, 50 per page: p50 {statistics.median(pages):.1f} ms, "
                      f"p95 {p95:.1f} ms ({len(pages)} pages)")
        finally:
            server.terminate()
            server.wait(10)
            if db is not None:
                db.stop()


if __name__ == "__main__":
    main()
