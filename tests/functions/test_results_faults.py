"""The database killed in the middle of a batch: nothing half-written, 503 with Retry-After, and the
client's retry lands the batch whole. FerretDB is killed (SIGKILL) at several moments of a large
commit, so that some kills fall between the documents, the index nodes and the root version."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.fixtures.records import record
from vllmbench.embedded.processes import http_ok, wait_until


@pytest.fixture
def results(serve_function):
    return serve_function("results")


def visible(results, tag: str) -> int:
    count, cursor = 0, None
    while True:
        page = results.get("/standardized_output", params={"tag": tag, "limit": 500, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        count += page.json()["count"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return count


@pytest.mark.slow
def test_a_batch_cut_by_a_database_crash_is_all_or_nothing_and_its_retry_completes_it(results, ferretdb):
    if ferretdb is None:
        pytest.skip("MONGO_URL points at a server this test cannot kill")
    assert results.post("/standardized_output", json=record("before-the-crash")).status_code == 201
    outcomes = []
    for attempt, delay in enumerate((0.0, 0.05, 0.15, 0.3, 0.6)):
        tag = f"crash-{attempt}"
        batch = [record(f"crash-{attempt}-{i}", tags=[tag]) for i in range(1000)]
        with ThreadPoolExecutor(1) as pool:
            answer = pool.submit(results.post, "/standardized_output", json=batch)
            time.sleep(delay)
            ferretdb.kill()
            response = answer.result()
        ferretdb.start()
        wait_until(lambda: http_ok(results.url + "/ready"), timeout_s=30, what="results ready again")
        seen = visible(results, tag)
        outcomes.append((delay, response.status_code, seen))
        if response.status_code == 503:
            assert int(response.headers["Retry-After"]) > 0 and response.json()["dependency"] == "mongodb"
            assert seen in (0, 1000), outcomes  # never a part: the commit is one insert
        else:
            assert response.status_code == 201 and seen == 1000, outcomes
        retry = results.post("/standardized_output", json=batch)
        assert retry.status_code in (200, 201), retry.text
        assert visible(results, tag) == 1000
        assert results.get(f"/runs/crash-{attempt}-999").status_code == 200
    assert any(status == 503 for _, status, _ in outcomes), f"no kill landed inside a request: {outcomes}"
    assert results.get("/runs/before-the-crash").status_code == 200
