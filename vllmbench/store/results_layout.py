"""Names and shapes of the results layout (docs/results.md): collections, trees, entries.

Every listing order is a tree keyed ``[time_ms, id]``; every filter of the listing
routes has a tree of its own per value (``std:project=demo``), so one filter and the
default sort read only the page's own entries. Entries carry the few attributes the
other filters need, so a combination of filters walks the smallest tree and checks
the rest on the entries, without fetching documents it will not return.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from vllmbench.models.base import as_utc

PREFIX = "results"
RECORDS = "results_records"      # {_id: record id (content hash), key, raw_id, json}
RAW = "results_raw"              # {_id: raw id, metadata of the raw result, size_bytes}
RAW_DATA = "results_raw_data"    # {_id: raw id, data_json}
SAMPLES = "results_samples"      # {_id: chunk id (content hash), raw_id, index, data}

STD = "std"                      # [time_ms, key] -> [record id, project, model, harness, tags]
STD_KEY = "std:key"              # [run_id, stage] -> [record id, time_ms, project, model, harness, tags]
RAW_TIME = "raw"                 # [time_ms, raw id] -> [run_id, project, model, harness, tags]
RAW_RUN = "raw:run"              # [run_id, ingested_ms, raw id] -> time_ms
RAW_ID = "raw:id"                # [raw id] -> [run_id, time_ms, ingested_ms]
RUN_SAMPLES = "samples"          # [raw id] -> the samples' header (docs/results.md)

FACETS = ("project", "model", "harness")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_MS = dt.timedelta(milliseconds=1)


def to_ms(value: dt.datetime) -> int:
    return (as_utc(value) - _EPOCH) // _MS


def from_ms(value: int) -> dt.datetime:
    return _EPOCH + value * _MS


def facet_tree(base: str, facet: str, value: str) -> str:
    return f"{base}:{facet}={value}"


def trees_of(base: str, attrs: dict[str, Any]) -> list[str]:
    """Every tree an entry with ``attrs`` (project, model, harness, tags) belongs to."""
    names = [base]
    names += [facet_tree(base, f, attrs[f]) for f in FACETS if attrs.get(f)]
    names += [facet_tree(base, "tag", t) for t in dict.fromkeys(attrs.get("tags") or [])]
    return names


def entry_attrs(attrs: dict[str, Any]) -> list[Any]:
    return [attrs.get("project"), attrs.get("model"), attrs.get("harness"), list(attrs.get("tags") or [])]


def matches(attrs: list[Any], wanted: dict[str, Any]) -> bool:
    """``attrs`` as stored in an entry ([project, model, harness, tags]) against the query's filters."""
    project, model, harness, tags = attrs
    got = {"project": project, "model": model, "harness": harness}
    if any(wanted.get(f) is not None and got[f] != wanted[f] for f in FACETS):
        return False
    return set(wanted.get("tag") or ()) <= set(tags)


def parse_key(key: str) -> tuple[str, int] | None:
    """``run#stage`` (the id POST /standardized_output answers) as (run_id, stage)."""
    run_id, sep, stage = key.rpartition("#")
    if not sep or not run_id or not stage.isdigit() or len(stage) > 18:
        return None
    return run_id, int(stage)
