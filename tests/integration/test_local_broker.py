"""The local broker and pinger: Knative's routing, retry and dead-letter rules over real HTTP."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent

from eventing.config import iso_duration_s, load_texts
from eventing.local import LocalBroker, load_config
from eventing.types import EVENT_TYPES, PING, SERVICES

CONFIG = """
apiVersion: eventing.knative.dev/v1
kind: Broker
metadata: {name: default, namespace: t}
spec: {delivery: {retry: 3, backoffPolicy: linear, backoffDelay: PT0.01S}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: to-ok, namespace: t}
spec:
  broker: default
  filter: {attributes: {type: dev.vllmbench.test.ok}}
  subscriber: {ref: {kind: Service, name: ok}, uri: /events}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: to-flaky, namespace: t}
spec:
  broker: default
  filter: {attributes: {type: dev.vllmbench.test.flaky}}
  subscriber: {ref: {kind: Service, name: flaky}}
---
apiVersion: eventing.knative.dev/v1
kind: Trigger
metadata: {name: to-refusing, namespace: t}
spec:
  broker: default
  filter: {attributes: {type: dev.vllmbench.test.refused}}
  subscriber: {ref: {kind: Service, name: refusing}}
  delivery:
    retry: 4
    backoffDelay: PT0.01S
    deadLetterSink: {ref: {kind: Service, name: ok}, uri: /dead}
---
apiVersion: sources.knative.dev/v1
kind: PingSource
metadata: {name: every-ten, namespace: t}
spec:
  schedule: "*/10 * * * *"
  timezone: Europe/Paris
  data: '{"job": "sync-all"}'
  sink: {ref: {kind: Service, name: ok}, uri: /events}
"""


class Sink:
    """A subscriber that records what it gets and answers from a script of statuses."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.statuses = list(statuses or [])
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                status = sink.statuses.pop(0) if sink.statuses else 202
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def setup(tmp_path: Path):
    sinks = {"ok": Sink(), "flaky": Sink([500, 503]), "refusing": Sink([400])}
    broker = LocalBroker(load_texts([CONFIG]), {k: s.url for k, s in sinks.items()},
                         dead_letter_log=tmp_path / "dead.jsonl", token="tok-abcdef").start(0)
    yield broker, sinks, tmp_path / "dead.jsonl"
    broker.stop()
    for sink in sinks.values():
        sink.server.shutdown()
        sink.server.server_close()


def _send(broker: LocalBroker, event_type: str, data: dict, mode=to_binary, event_id: str = "e1") -> requests.Response:
    headers, body = mode(CloudEvent({"id": event_id, "source": "/test", "type": event_type}, data))
    return requests.post(f"http://127.0.0.1:{broker.port}/", data=body, headers=headers, timeout=5)


def _wait(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


@pytest.mark.parametrize("mode", [to_binary, to_structured], ids=["binary", "structured"])
def test_matching_trigger_gets_the_event_in_binary_mode_with_the_token(setup, mode):
    broker, sinks, _ = setup
    assert _send(broker, "dev.vllmbench.test.ok", {"n": 1}, mode).status_code == 202
    _wait(lambda: sinks["ok"].requests)
    path, headers, body = sinks["ok"].requests[0]
    assert path == "/events"
    assert headers["ce-type"] == "dev.vllmbench.test.ok" and headers["ce-id"] == "e1"
    assert headers["authorization"] == "Bearer tok-abcdef"
    assert json.loads(body) == {"n": 1}
    assert not sinks["flaky"].requests and not sinks["refusing"].requests


def test_no_matching_trigger_delivers_nothing(setup):
    broker, sinks, _ = setup
    assert _send(broker, "dev.vllmbench.test.nobody", {}).json()["triggers"] == 0
    time.sleep(0.1)
    assert not any(s.requests for s in sinks.values())


def test_5xx_is_retried_with_backoff_until_it_lands(setup):
    broker, sinks, dead = setup
    _send(broker, "dev.vllmbench.test.flaky", {"n": 2})
    _wait(lambda: ("to-flaky", "e1", 202) in broker.delivered)
    assert len(sinks["flaky"].requests) == 3
    assert not dead.exists()


def test_other_4xx_is_final_and_dead_lettered(setup):
    broker, sinks, dead = setup
    _send(broker, "dev.vllmbench.test.refused", {"n": 3})
    _wait(lambda: dead.exists() and any(p == "/dead" for p, _, _ in sinks["ok"].requests))
    assert len(sinks["refusing"].requests) == 1
    entry = json.loads(dead.read_text().splitlines()[0])
    assert entry["trigger"] == "to-refusing" and entry["status"] == 400
    assert json.loads(entry["data"]) == {"n": 3}
    _, headers, _ = next(r for r in sinks["ok"].requests if r[0] == "/dead")
    assert headers["ce-knativeerrorcode"] == "400"


def test_unreachable_subscriber_is_retried_then_dead_lettered(tmp_path):
    broker = LocalBroker(load_texts([CONFIG]), {"ok": "http://127.0.0.1:9", "flaky": "http://127.0.0.1:9",
                                                "refusing": "http://127.0.0.1:9"},
                         dead_letter_log=tmp_path / "dead.jsonl").start(0)
    try:
        _send(broker, "dev.vllmbench.test.flaky", {})
        _wait(lambda: (tmp_path / "dead.jsonl").exists())
        assert [d for d in broker.delivered if d[0] == "to-flaky"] == [("to-flaky", "e1", 0)]
    finally:
        broker.stop()


def test_not_a_cloudevent_is_400(setup):
    broker, _, _ = setup
    response = requests.post(f"http://127.0.0.1:{broker.port}/", json={"hello": 1}, timeout=5)
    assert response.status_code == 400 and "missing" in response.json()["message"]


def test_pingsource_fires_ping_events_with_its_data(setup):
    broker, sinks, _ = setup
    broker.fire(broker.config.pingsources[0])
    _wait(lambda: sinks["ok"].requests)
    _, headers, body = sinks["ok"].requests[0]
    assert headers["ce-type"] == PING
    assert headers["ce-source"] == "/apis/v1/namespaces/t/pingsources/every-ten"
    assert json.loads(body) == {"job": "sync-all"}


@pytest.mark.parametrize("now,expected", [
    ("2026-11-27T12:03:00+00:00", "2026-11-27T12:10:00+00:00"),
    ("2026-11-27T12:10:00+00:00", "2026-11-27T12:20:00+00:00"),
    ("2026-11-27T23:55:30+00:00", "2026-11-28T00:00:00+00:00"),
])
def test_schedule(now, expected):
    source = load_texts([CONFIG]).pingsources[0]
    assert source.next_fire(dt.datetime.fromisoformat(now)) == dt.datetime.fromisoformat(expected)


def test_schedule_respects_the_timezone():
    text = CONFIG.replace('"*/10 * * * *"', '"0 9 * * *"')
    source = load_texts([text]).pingsources[0]  # 09:00 in Paris is 08:00 UTC in winter
    fired = source.next_fire(dt.datetime(2026, 11, 27, 7, 0, tzinfo=dt.timezone.utc))
    assert fired == dt.datetime(2026, 11, 27, 8, 0, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("text,seconds", [("PT0.5S", 0.5), ("PT1M", 60), ("PT1H2M3S", 3723), ("P1D", 86400)])
def test_iso_durations(text, seconds):
    assert iso_duration_s(text) == seconds


def test_retry_delays_follow_the_policy():
    config = load_texts([CONFIG])
    assert config.triggers[0].delivery.delays() == pytest.approx([0.01, 0.02, 0.03])  # linear, from the Broker
    assert config.triggers[2].delivery.delays() == pytest.approx([0.01, 0.02, 0.04, 0.08])  # exponential


def test_the_shipped_eventing_yaml_routes_to_real_services():
    config = load_config()
    services = {service for service, _ in SERVICES.values()}
    known_types = {e.type for e in EVENT_TYPES}
    assert config.triggers and config.pingsources
    for trigger in config.triggers:
        assert trigger.subscriber.service in services
        assert trigger.filter["type"] in known_types
        consumer = next(e for e in EVENT_TYPES if e.type == trigger.filter["type"])
        assert trigger.subscriber.service in consumer.consumed_by
        assert trigger.delivery.retry > 0 and trigger.delivery.dead_letter is not None
    for source in config.pingsources:
        assert source.sink.service in services
        json.loads(source.data)
