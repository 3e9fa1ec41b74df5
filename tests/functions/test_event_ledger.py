"""Each (source, id) has one visible effect, however its deliveries race, fail or die.

The counter function (tests/functions/counter) leaves one document per handler run,
so the effect can be counted; results is the real case (one 202, one stored raw).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pymongo
import pytest
import requests
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from tests.fixtures.records import raw
from vllmbench.store.events import CLAIMS, EventLedger

COUNTER = Path(__file__).parent / "counter" / "main.py"
COUNT = "dev.vllmbench.test.count"


@pytest.fixture
def db(mongo_url, database_name):
    client = pymongo.MongoClient(mongo_url, tz_aware=True)
    yield client[database_name]
    client.close()


def _deliver(url: str, event_id: str, data: dict, event_type: str = COUNT) -> requests.Response:
    headers, body = to_binary(CloudEvent({"id": event_id, "source": "/test/broker", "type": event_type}, data))
    return requests.post(url + "/", data=body, headers=headers, timeout=30)


def _at_once(url: str, event_id: str, data: dict, n: int, event_type: str = COUNT) -> list[requests.Response]:
    barrier = threading.Barrier(n)
    responses: list[requests.Response] = []

    def one() -> None:
        barrier.wait()
        responses.append(_deliver(url, event_id, data, event_type))

    threads = [threading.Thread(target=one) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return responses


def _runs(db, event_id: str) -> int:
    return db["runs"].count_documents({"event": event_id, "failed": False})


def test_eight_concurrent_deliveries_run_the_handler_once(serve_function, db):
    counter = serve_function("counter", source=COUNTER)
    for round_ in range(3):
        event_id = f"race-{round_}"
        responses = _at_once(counter.url, event_id, {"sleep": 0.3}, 8)
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] * 7 + [202], [r.text for r in responses]
        assert {r.json()["status"] for r in responses if r.status_code == 200} == {"duplicate"}
        assert _runs(db, event_id) == 1


def test_concurrent_deliveries_of_a_raw_result_are_accepted_once(serve_function):
    results = serve_function("results")
    responses = _at_once(results.url, "raw-race", raw("race-run"), 8, "dev.vllmbench.result.raw")
    assert sorted(r.status_code for r in responses) == [200] * 7 + [202], [r.text for r in responses]
    assert results.get("/raw_input", params={"run_id": "race-run"}).json()["count"] == 1


def test_a_delivery_that_finds_the_event_in_progress_is_told_to_retry(serve_function, db):
    counter = serve_function("counter", source=COUNTER, event_claim_wait_s=0)
    first: list[requests.Response] = []
    slow = threading.Thread(target=lambda: first.append(_deliver(counter.url, "busy", {"sleep": 1.5})))
    slow.start()
    deadline = time.monotonic() + 10
    while db[CLAIMS].count_documents({}) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    second = _deliver(counter.url, "busy", {"sleep": 1.5})
    assert second.status_code == 409, second.text
    assert second.json()["error"] == "event_in_progress" and int(second.headers["Retry-After"]) >= 1
    slow.join(30)
    assert first[0].status_code == 202
    assert _deliver(counter.url, "busy", {"sleep": 1.5}).json()["status"] == "duplicate"
    assert _runs(db, "busy") == 1


def test_a_running_handler_keeps_its_claim_past_the_claim_time(serve_function, db):
    counter = serve_function("counter", source=COUNTER, event_claim_s=0.5, event_claim_wait_s=0)
    first: list[requests.Response] = []
    slow = threading.Thread(target=lambda: first.append(_deliver(counter.url, "long", {"sleep": 2.0})))
    slow.start()
    time.sleep(1.3)  # over twice the claim time: only the renewals keep it
    assert _deliver(counter.url, "long", {"sleep": 2.0}).status_code == 409
    slow.join(30)
    assert first[0].status_code == 202
    assert _runs(db, "long") == 1


def test_a_claim_left_by_a_dead_process_expires_and_the_redelivery_runs(serve_function, db):
    # What a process that died right after claiming leaves: a claim nobody renews.
    dead = EventLedger(db, ttl_s=3600, claim_s=1.0).acquire("/test/broker", "orphan", COUNT)
    assert dead is not None
    impatient = serve_function("counter", source=COUNTER, event_claim_s=1.0, event_claim_wait_s=0)
    assert _deliver(impatient.url, "orphan", {}).status_code == 409
    assert _runs(db, "orphan") == 0
    time.sleep(1.2)
    redelivery = _deliver(impatient.url, "orphan", {})
    assert redelivery.status_code == 202, redelivery.text
    assert _runs(db, "orphan") == 1
    assert db[CLAIMS].count_documents({}) == 0


def test_a_failed_handler_releases_its_claim_so_the_redelivery_runs_at_once(serve_function, db):
    counter = serve_function("counter", source=COUNTER, event_claim_s=60, event_claim_wait_s=0)
    failed = _deliver(counter.url, "flaky", {"fail_first": True})
    assert failed.status_code == 503 and failed.headers["Retry-After"]
    retried = _deliver(counter.url, "flaky", {"fail_first": True})
    assert retried.status_code == 202, retried.text
    assert _runs(db, "flaky") == 1


def test_the_ledger_gives_each_event_one_run_over_many_rounds_of_racing_deliveries(db):
    """The claim itself, without HTTP: many rounds of 8 racing deliveries, each event run once."""
    runs: dict[str, int] = {}
    lock = threading.Lock()

    def deliver(event_id: str, barrier: threading.Barrier) -> None:
        ledger = EventLedger(db, ttl_s=3600, claim_s=5, wait_s=10)
        barrier.wait()
        claim = ledger.acquire("/test/broker", event_id, COUNT)
        if isinstance(claim, dict):
            return
        with claim:
            with lock:
                runs[event_id] = runs.get(event_id, 0) + 1
        claim.complete({"ran": True})

    for round_ in range(15):
        barrier = threading.Barrier(8)
        threads = [threading.Thread(target=deliver, args=(f"store-{round_}", barrier)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert runs == {f"store-{i}": 1 for i in range(15)}
