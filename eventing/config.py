"""Reading the Knative Eventing YAML (Broker, Trigger, PingSource) into plain values.

Pure: text in, values out. The local broker and the tests use it; the cluster reads
the same files through kustomize.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

_DURATION = re.compile(r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
                       r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")


def iso_duration_s(text: str) -> float:
    """ISO 8601 duration (``PT0.5S``, ``PT1M``) in seconds."""
    match = _DURATION.match(text or "")
    if not match or text in ("P", "PT"):
        raise ValueError(f"not an ISO 8601 duration: {text!r} (expected e.g. PT0.5S)")
    parts = {k: float(v) for k, v in match.groupdict().items() if v}
    return parts.get("d", 0) * 86400 + parts.get("h", 0) * 3600 + parts.get("m", 0) * 60 + parts.get("s", 0)


@dataclass(frozen=True)
class Delivery:
    retry: int = 0
    backoff_policy: str = "exponential"
    backoff_delay_s: float = 0.2
    dead_letter: "Destination | None" = None

    def delays(self) -> list[float]:
        """Wait before each retry, as Knative computes it (linear: d*n, exponential: d*2^n)."""
        if self.backoff_policy == "linear":
            return [self.backoff_delay_s * (n + 1) for n in range(self.retry)]
        return [self.backoff_delay_s * (2 ** n) for n in range(self.retry)]


@dataclass(frozen=True)
class Destination:
    service: str | None = None  # a Knative Service or Broker name
    kind: str = "Service"
    uri: str = ""

    def url(self, services: dict[str, str]) -> str:
        if self.service is None:
            return self.uri
        if self.service not in services:
            raise KeyError(f"{self.kind} {self.service!r} is not one of: {', '.join(sorted(services))}")
        return services[self.service].rstrip("/") + (self.uri or "/")


@dataclass(frozen=True)
class Trigger:
    name: str
    broker: str
    filter: dict[str, str]
    subscriber: Destination
    delivery: Delivery

    def matches(self, attributes: dict[str, Any]) -> bool:
        return all(str(attributes.get(key, "")) == value for key, value in self.filter.items())


@dataclass(frozen=True)
class PingSource:
    name: str
    namespace: str
    schedule: str
    timezone: str
    content_type: str
    data: str
    sink: Destination

    @property
    def source(self) -> str:
        return f"/apis/v1/namespaces/{self.namespace}/pingsources/{self.name}"

    def next_fire(self, after: dt.datetime) -> dt.datetime:
        from zoneinfo import ZoneInfo

        from croniter import croniter

        local = after.astimezone(ZoneInfo(self.timezone or "UTC"))
        return croniter(self.schedule, local).get_next(dt.datetime).astimezone(dt.timezone.utc)


@dataclass
class EventingConfig:
    brokers: dict[str, Delivery] = field(default_factory=dict)
    triggers: list[Trigger] = field(default_factory=list)
    pingsources: list[PingSource] = field(default_factory=list)


def _destination(spec: dict[str, Any] | None) -> Destination | None:
    if not spec:
        return None
    ref = spec.get("ref") or {}
    return Destination(service=ref.get("name"), kind=ref.get("kind", "Service"), uri=spec.get("uri", ""))


def _delivery(spec: dict[str, Any] | None, default: Delivery | None = None) -> Delivery:
    if not spec:
        return default or Delivery()
    return Delivery(retry=int(spec.get("retry", 0)), backoff_policy=spec.get("backoffPolicy", "exponential"),
                    backoff_delay_s=iso_duration_s(spec["backoffDelay"]) if spec.get("backoffDelay") else 0.2,
                    dead_letter=_destination(spec.get("deadLetterSink")))


def parse(documents: list[dict[str, Any]]) -> EventingConfig:
    config = EventingConfig()
    for doc in documents:
        kind, meta, spec = doc.get("kind"), doc.get("metadata") or {}, doc.get("spec") or {}
        if kind == "Broker":
            config.brokers[meta["name"]] = _delivery(spec.get("delivery"))
    for doc in documents:
        kind, meta, spec = doc.get("kind"), doc.get("metadata") or {}, doc.get("spec") or {}
        if kind == "Trigger":
            broker = spec.get("broker", "default")
            subscriber = _destination(spec.get("subscriber"))
            if subscriber is None:
                raise ValueError(f"Trigger {meta.get('name')!r} has no subscriber")
            config.triggers.append(Trigger(meta["name"], broker, dict((spec.get("filter") or {}).get("attributes") or {}),
                                           subscriber, _delivery(spec.get("delivery"), config.brokers.get(broker))))
        elif kind == "PingSource":
            sink = _destination(spec.get("sink"))
            if sink is None:
                raise ValueError(f"PingSource {meta.get('name')!r} has no sink")
            config.pingsources.append(PingSource(meta["name"], meta.get("namespace", "default"), spec["schedule"],
                                                 spec.get("timezone", "UTC"), spec.get("contentType", "application/json"),
                                                 spec.get("data", ""), sink))
    return config


def load_texts(texts: list[str]) -> EventingConfig:
    documents = [doc for text in texts for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]
    return parse(documents)
