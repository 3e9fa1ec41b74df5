"""The local broker and pinger of the embedded stack, driven by the Knative YAML here.

- Broker: ``POST /`` (or ``/<namespace>/<broker>``) takes a CloudEvent in binary or
  structured mode, answers 202, and delivers it in binary mode to every Trigger whose
  filter matches, as Knative's MT broker does.
- Delivery: retries on connection errors, 404, 408, 409, 429 and 5xx with the
  Trigger's backoff; other 4xx are final. What it gives up on is appended to the
  dead-letter log (JSON lines) and sent once to the Trigger's deadLetterSink with
  Knative's ``knativeerrorcode``/``knativeerrordest``/``knativeerrordata`` extensions.
- Pinger: fires each PingSource on its cron schedule and timezone with its data, as
  ``dev.knative.sources.ping`` from ``/apis/v1/namespaces/<ns>/pingsources/<name>``.

``python -m eventing.local --port 8090`` runs it alone.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from eventing.config import Delivery, Destination, EventingConfig, PingSource, Trigger, load_texts
from eventing.types import PING

log = logging.getLogger("vllmbench.broker")
RETRIED_STATUSES = {404, 408, 409, 429}
EVENTING_DIR = Path(__file__).resolve().parent


def load_config(directory: Path = EVENTING_DIR) -> EventingConfig:
    files = sorted(p for p in directory.glob("*.yaml") if p.name != "kustomization.yaml")
    return load_texts([p.read_text() for p in files])


class LocalBroker:
    def __init__(self, config: EventingConfig, services: dict[str, str], *, dead_letter_log: Path,
                 token: str | None = None, timeout_s: float = 30.0, workers: int = 8) -> None:
        self.config = config
        self.services = services
        self.dead_letter_log = dead_letter_log
        self.token = token
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="delivery")
        self._server: ThreadingHTTPServer | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.delivered: list[tuple[str, str, int]] = []  # (trigger, event id, status): for people and tests

    # -- ingress -------------------------------------------------------------------
    def publish(self, attributes: dict[str, Any], data: bytes, content_type: str) -> int:
        """Route one event to every matching Trigger; returns how many matched."""
        matched = [t for t in self.config.triggers if t.matches(attributes)]
        for trigger in matched:
            self._pool.submit(self._deliver, trigger.name, trigger.subscriber, trigger.delivery,
                              attributes, data, content_type)
        if not matched:
            log.info("no trigger matches event %s of type %s", attributes.get("id"), attributes.get("type"))
        return len(matched)

    # -- delivery ------------------------------------------------------------------
    def _deliver(self, name: str, destination: Destination, delivery: Delivery, attributes: dict[str, Any],
                 data: bytes, content_type: str) -> int:
        url = destination.url(self.services)
        delays = delivery.delays()
        status, body = 0, ""
        for attempt in range(len(delays) + 1):
            status, body, reply = self._post(url, attributes, data, content_type)
            if 200 <= status < 300:
                self._record(name, attributes, status)
                if reply is not None:
                    self.publish(*reply)
                return status
            if status and status < 500 and status not in RETRIED_STATUSES:
                break
            if attempt < len(delays) and not self._stop.wait(delays[attempt]):
                continue
            if self._stop.is_set():
                break
        self._record(name, attributes, status)
        self._dead_letter(name, url, delivery, attributes, data, content_type, status, body)
        return status

    def _post(self, url: str, attributes: dict[str, Any], data: bytes,
              content_type: str) -> tuple[int, str, tuple[dict[str, Any], bytes, str] | None]:
        headers = {f"ce-{k}": str(v) for k, v in attributes.items()}
        headers["Content-Type"] = content_type or "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                body = response.read()
                reply_attrs = {k[3:].lower(): v for k, v in response.headers.items() if k.lower().startswith("ce-")}
                reply = (reply_attrs, body, response.headers.get("Content-Type", "")) if "type" in reply_attrs else None
                return response.status, body[:500].decode(errors="replace"), reply
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()[:500].decode(errors="replace"), None
        except (urllib.error.URLError, OSError) as exc:
            return 0, str(exc), None

    def _record(self, name: str, attributes: dict[str, Any], status: int) -> None:
        with self._lock:
            self.delivered.append((name, str(attributes.get("id")), status))
        log.info("delivered %s event %s via %s: %s", attributes.get("type"), attributes.get("id"), name, status or "no answer")

    def _dead_letter(self, name: str, url: str, delivery: Delivery, attributes: dict[str, Any], data: bytes,
                     content_type: str, status: int, body: str) -> None:
        entry = {"time": dt.datetime.now(dt.timezone.utc).isoformat(), "trigger": name, "destination": url,
                 "status": status, "response": body, "attributes": attributes,
                 "data": data.decode(errors="replace")}
        self.dead_letter_log.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.dead_letter_log, "a") as out:
            out.write(json.dumps(entry) + "\n")
        log.warning("gave up on %s event %s for %s (status %s); written to %s", attributes.get("type"),
                    attributes.get("id"), name, status or "no answer", self.dead_letter_log)
        if delivery.dead_letter is not None:
            extensions = {"knativeerrorcode": str(status), "knativeerrordest": url,
                          "knativeerrordata": base64.b64encode(body.encode()[:1000]).decode()}
            try:
                self._post(delivery.dead_letter.url(self.services), {**attributes, **extensions}, data, content_type)
            except KeyError as exc:
                log.warning("dead-letter sink of %s cannot be resolved: %s", name, exc)

    # -- pinger --------------------------------------------------------------------
    def fire(self, source: PingSource) -> None:
        attributes = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": source.source, "type": PING,
                      "time": dt.datetime.now(dt.timezone.utc).isoformat()}
        data = source.data.encode()
        if source.sink.kind == "Broker":
            self.publish(attributes, data, source.content_type)
        else:
            broker = self.config.brokers.get("default", Delivery())
            self._pool.submit(self._deliver, f"pingsource/{source.name}", source.sink, broker, attributes, data,
                              source.content_type)

    def _pinger(self, source: PingSource) -> None:
        while not self._stop.is_set():
            now = dt.datetime.now(dt.timezone.utc)
            wait = (source.next_fire(now) - now).total_seconds()
            if self._stop.wait(max(wait, 0.0)):
                return
            self.fire(source)

    # -- serving -------------------------------------------------------------------
    def start(self, port: int, host: str = "127.0.0.1") -> "LocalBroker":
        broker = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    attributes, data, content_type = _parse(self.headers, body)
                except ValueError as exc:
                    self._answer(400, {"error": "bad_request", "message": str(exc)})
                    return
                matched = broker.publish(attributes, data, content_type)
                self._answer(202, {"status": "accepted", "id": attributes["id"], "triggers": matched})

            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/health":
                    self._answer(200, {"status": "ok"})
                else:
                    self._answer(404, {"error": "not_found", "message": "POST CloudEvents to /"})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # quiet: deliveries are logged
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        threads = [threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="broker",
                                   daemon=True)]
        threads += [threading.Thread(target=self._pinger, args=(p,), name=f"ping-{p.name}", daemon=True)
                    for p in self.config.pingsources]
        for thread in threads:
            thread.start()
        self._threads = threads
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._pool.shutdown(wait=True, cancel_futures=True)


def _parse(headers: Any, body: bytes) -> tuple[dict[str, Any], bytes, str]:
    content_type = headers.get("Content-Type") or "application/json"
    if content_type.startswith("application/cloudevents+json"):
        document = json.loads(body or b"{}")
        if not isinstance(document, dict):
            raise ValueError("structured CloudEvent must be a JSON object")
        data = document.pop("data", None)
        data_b64 = document.pop("data_base64", None)
        payload = base64.b64decode(data_b64) if data_b64 else json.dumps(data).encode() if data is not None else b""
        content_type = document.pop("datacontenttype", "application/json")
        attributes = document
    else:
        attributes = {k[3:].lower(): v for k, v in headers.items() if k.lower().startswith("ce-")}
        payload = body
    missing = [a for a in ("id", "source", "type", "specversion") if not attributes.get(a)]
    if missing:
        raise ValueError("not a CloudEvent: missing " + ", ".join(missing))
    return attributes, payload, content_type


def main() -> None:
    import argparse
    import os

    from eventing.types import local_service_urls

    parser = argparse.ArgumentParser(description="vllmbench local broker and pinger")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--dead-letter-log", type=Path, default=Path(".data/dead-letter.jsonl"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    broker = LocalBroker(load_config(), local_service_urls(), dead_letter_log=args.dead_letter_log,
                         token=os.environ.get("VLLMBENCH_API_TOKEN")).start(args.port)
    log.info("local broker on http://127.0.0.1:%s", broker.port)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        broker.stop()


if __name__ == "__main__":
    main()
