"""Big batches of standardized records are validated and compressed in a helper process
(functions/results/ingest.py): the answers are the ones the function gives in its own
process, and a helper that dies costs no request (docs/results.md, "Ingest")."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time

import psutil
import requests

from tests.fixtures.records import record

START = dt.datetime(2026, 8, 1, tzinfo=dt.timezone.utc)
BIG = 120  # records of about 2.2 KB: over the 128 KB from which a batch goes to the helper


def batch(first: int, n: int = BIG) -> list[dict]:
    return [record(f"helper-{i}", project="helper", started=START + dt.timedelta(minutes=i), ttft=10 + i % 7)
            for i in range(first, first + n)]


def helpers(served) -> list[psutil.Process]:
    """The processes under the gunicorn worker: the forkserver, the helper it forked (and
    multiprocessing's resource tracker)."""
    return [p for w in psutil.Process(served.process.pid).children() for p in w.children(recursive=True)]


def test_big_batches_go_to_a_helper_process_and_answer_as_the_function_does(serve_production):
    served = serve_production("results", VLLMBENCH_INGEST_PROCESSES="1")
    url = served.url
    posted = []
    first = requests.post(url + "/standardized_output", json=batch(0), timeout=60)
    assert first.status_code == 201 and first.json()["stored"] == BIG  # done in the process: the helper starts
    posted += batch(0)
    deadline = time.monotonic() + 60
    while len(helpers(served)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(helpers(served)) >= 2, "a forkserver and a helper were started beside the worker"
    time.sleep(3)  # the helper imports the models before it takes work
    helper_cpu = sum(sum(p.cpu_times()[:2]) for p in helpers(served))
    for k in range(1, 4):
        answer = requests.post(url + "/standardized_output", json=batch(k * BIG), timeout=60)
        assert answer.status_code == 201 and answer.json()["stored"] == BIG
        posted += batch(k * BIG)
    assert sum(sum(p.cpu_times()[:2]) for p in helpers(served)) - helper_cpu > 0.05, "the helper did the work"

    # The same batch again: unchanged, as in the process; stored records read back whole.
    again = requests.post(url + "/standardized_output", json=batch(BIG), timeout=60)
    assert again.status_code == 200 and again.json()["unchanged"] == BIG
    listed = requests.get(url + "/standardized_output", params={"project": "helper", "limit": 500}, timeout=30).json()
    assert listed["count"] == 4 * BIG
    by_id = {item["run"]["run_id"]: item for item in listed["items"]}
    assert by_id["helper-200"]["results"]["latency"]["ttft"] == posted[200]["results"]["latency"]["ttft"]

    # A refused big batch gives the details a small one gives, at its own index.
    bad = batch(10_000)
    bad[100]["results"]["requests"]["total"] = "many"
    refused = requests.post(url + "/standardized_output", json=bad, timeout=60)
    alone = requests.post(url + "/standardized_output", json=[bad[100]], timeout=60)
    assert refused.status_code == alone.status_code == 422
    wrong = [d for d in refused.json()["details"] if d["loc"].endswith("results.requests.total")]
    wrong_alone = [d for d in alone.json()["details"] if d["loc"].endswith("results.requests.total")]
    assert [d["loc"] for d in wrong] == ["body.list[StandardizedRecord].100.results.requests.total"]
    assert [d["loc"] for d in wrong_alone] == ["body.list[StandardizedRecord].0.results.requests.total"]
    assert wrong[0]["msg"] == wrong_alone[0]["msg"] and wrong[0]["expected"] == wrong_alone[0]["expected"]
    too_many = requests.post(url + "/standardized_output", json=batch(20_000, 1001), timeout=60)
    assert too_many.status_code == 400 and "at most 1000" in too_many.json()["message"]

    # A helper killed: the next big batches are stored all the same, in the process.
    for process in helpers(served):
        os.kill(process.pid, signal.SIGKILL)
    for k in (30, 31):
        answer = requests.post(url + "/standardized_output", json=batch(k * BIG), timeout=60)
        assert answer.status_code == 201 and answer.json()["stored"] == BIG
    assert requests.get(url + "/health", timeout=5).status_code == 200
