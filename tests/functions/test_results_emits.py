"""Results announce what they stored: a CloudEvent to the broker (K_SINK) once per new result."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.fixtures.records import raw, record

TOKEN = "results-token-8c1d93aa"


@pytest.fixture
def broker():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"content_type": self.headers["Content-Type"], "event": json.loads(body)})
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", received
    server.shutdown()
    server.server_close()


def test_a_new_raw_result_is_announced_once(serve_function, broker):
    url, received = broker
    results = serve_function("results", broker_url=url)
    first = results.post("/raw_input", json=raw("announced"))
    results.post("/raw_input", json=raw("announced"))  # the same content again: nothing new to announce
    assert len(received) == 1
    event = received[0]["event"]
    assert received[0]["content_type"].startswith("application/cloudevents+json")
    assert event["type"] == "dev.vllmbench.result.ingested"
    assert event["source"] == "/vllmbench/benchmark-results"
    assert event["id"] == f"raw-{first.json()['id']}"
    assert event["data"]["run_id"] == "announced"


def test_new_standardized_records_are_announced(serve_function, broker):
    url, received = broker
    results = serve_function("results", broker_url=url)
    results.post("/standardized_output", json=[record("s-1"), record("s-2")])
    results.post("/standardized_output", json=[record("s-1"), record("s-2")])
    assert [e["event"]["data"]["standardized"] for e in received] == [["s-1#0", "s-2#0"]]


def test_a_broker_that_is_down_does_not_fail_the_ingest(serve_function):
    results = serve_function("results", broker_url="http://127.0.0.1:9/")
    assert results.post("/raw_input", json=raw("broker-down")).status_code == 201
    assert results.get("/runs/broker-down").status_code == 200


def test_the_token_never_reaches_the_logs(serve_function, caplog):
    results = serve_function("results", api_token=TOKEN)
    caplog.set_level(logging.DEBUG)
    results.post("/raw_input", json=raw("logged"))
    results.post("/raw_input", json=raw("logged"), headers={"Authorization": f"Bearer {TOKEN}-wrong"})
    results.get("/runs/logged")
    results.get(f"/runs/{TOKEN}")  # a secret a client puts in a path is scrubbed too
    service_records = [r for r in caplog.records if not r.name.startswith("urllib3")]  # not the test's own client
    text = "\n".join(logging.Formatter().format(r) for r in service_records)
    assert "no results for run '***'" in text  # the message was logged, scrubbed
    assert TOKEN not in text
