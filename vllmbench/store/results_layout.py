"""Names and shapes of the results layout (docs/results.md): collections, trees, entries.

Every listing order is a tree keyed ``[time_ms, id]``; every filter of the listing
routes has a tree of its own per value (``std:project=demo``), so one filter and the
default sort read only the page's own entries. Entries carry the few attributes the
other filters need, so a combination of filters walks the smallest tree and checks
the rest on the entries, without fetching documents it will not return.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from vllmbench.models.base import as_utc

PREFIX = "results"               # the trees: results_nodes, results_roots (vllmbench.store.forest)
RECORDS = "results_records"      # {_id: record id, b}: one record compressed, for point reads (/runs, /compare)
RAW_DATA = "results_raw_data"    # {_id: raw id, data_json}: a harness's output, read only when asked for
SAMPLES = "results_samples"      # {_id: chunk id (content hash), raw_id, index, data}

# Tree values start with the attributes the filters check; records and raw metadata
# are kept whole in the leaves (record JSON text, metadata dict).
STD = "std"          # [time_ms, key] -> [record id, project, model, harness, tags, record JSON]
STD_KEY = "std:key"  # [run_id, stage] -> [record id, time_ms, project, model, harness, tags, raw id]
RAW_TIME = "raw"     # [time_ms, raw id] -> [run_id, project, model, harness, tags, metadata]
RAW_RUN = "raw:run"  # [run_id, ingested_ms, raw id] -> [run_id, project, model, harness, tags, metadata]
RAW_ID = "raw:id"    # [raw id] -> [run_id, project, model, harness, tags, metadata]
RUN_SAMPLES = "samples"  # [raw id] -> the samples' header (docs/results.md)

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


@functools.lru_cache(maxsize=4096)
def std_trees(project: str | None, model: str, harness: str, tags: tuple[str, ...]) -> tuple[str, ...]:
    """``trees_of(STD, ...)`` of a record, remembered: the records of a batch, and of the batches
    after it, share a few attribute sets, and naming the trees was a tenth of a commit's CPU."""
    return tuple(trees_of(STD, {"project": project, "model": model, "harness": harness, "tags": tags}))


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


# The preset dictionary each record in a leaf is compressed against: a record's field
# names and usual values, so that a record alone compresses as well as a leaf of them.
# Stored records depend on it byte for byte: never edit it (a new one needs new trees).
RECORD_DICTIONARY = (
    '{"schema_version":"1","run":{"run_id":"run-2026-11-01-a","stage":0,"experiment_id":null,"project":"demo",'
    '"started_at":"2026-11-01T12:00:00Z","ended_at":"2026-11-01T12:10:00Z","duration_s":600.0,"config_commit":null},'
    '"scenario":{"model":"meta-llama/Llama-3.1-8B-Instruct","engine":"vllm","engine_version":"0.11.0",'
    '"accelerator":{"model":"NVIDIA-H100-80GB-HBM3","count":1},"parallelism":{"tp":1,"pp":1,"dp":1,"ep":1},'
    '"load":{"mode":"rate","arrival":"poisson","rate_rps":10.0,"concurrency":null,"max_in_flight":null,'
    '"duration_s":60.0,"request_count":null,"warmup_s":0.0,"cooldown_s":0.0,'
    '"input_tokens":{"kind":"fixed","mean":128.0,"stddev":null,"min":null,"max":null},'
    '"output_tokens":{"kind":"fixed","mean":128.0,"stddev":null,"min":null,"max":null},"dataset":"synthetic",'
    '"unique_prompts":true,"streaming":true,"endpoint":"completions"},"harness":{"name":"vllmbench","version":"0.1.0"}},'
    '"results":{"requests":{"total":600,"succeeded":600,"failed":0,"failures_by_cause":{}},'
    '"throughput":{"requests_per_s":9.98,"input_tokens_per_s":1277.4,"output_tokens_per_s":1277.4,'
    '"total_tokens_per_s":2554.8},"latency":{"ttft":{"units":"ms","count":600,"mean":23.41,"stddev":3.12,'
    '"min":19.87,"p50":22.93,"p90":26.48,"p95":28.05,"p99":33.71,"p999":41.2,"max":44.06},'
    '"itl":{"units":"ms","count":76200,"mean":5.12,"stddev":0.41,"min":4.61,"p50":5.07,"p90":5.52,"p95":5.7,'
    '"p99":6.38,"p999":8.9,"max":12.4},"tpot":{"units":"ms/token","count":600,"mean":5.13,"stddev":0.09,'
    '"min":4.98,"p50":5.12,"p90":5.24,"p95":5.28,"p99":5.37,"p999":5.45,"max":5.47},'
    '"ntpot":{"units":"ms/token","count":600,"mean":5.31,"stddev":0.1,"min":5.14,"p50":5.3,"p90":5.43,'
    '"p95":5.47,"p99":5.58,"p999":5.66,"max":5.69},"e2e":{"units":"ms","count":600,"mean":674.9,"stddev":12.6,'
    '"min":652.3,"p50":673.8,"p90":690.2,"p95":695.7,"p99":706.1,"p999":718.4,"max":720.5},'
    '"e2e_from_schedule":{"units":"ms","count":600,"mean":675.1,"stddev":12.6,"min":652.4,"p50":674.0,'
    '"p90":690.4,"p95":695.9,"p99":706.3,"p999":718.6,"max":720.7}},'
    '"input_tokens":{"units":"tokens","count":600,"mean":128.0,"stddev":0.0,"min":128.0,"p50":128.0,'
    '"p90":128.0,"p95":128.0,"p99":128.0,"p999":128.0,"max":128.0},"output_tokens":{"units":"tokens",'
    '"count":600,"mean":128.0,"stddev":0.0,"min":128.0,"p50":128.0,"p90":128.0,"p95":128.0,"p99":128.0,'
    '"p999":128.0,"max":128.0},"token_counts_from":"server","goodput":{"slo":{"ttft_ms":100.0,"itl_ms":null,'
    '"tpot_ms":10.0,"e2e_ms":null},"good_requests":598,"requests_per_s":9.95,"fraction":0.9966666666666667},'
    '"trust":{"schedule_delay_ms":{"units":"ms","count":600,"mean":0.21,"stddev":0.08,"min":0.05,"p50":0.19,'
    '"p90":0.31,"p95":0.36,"p99":0.52,"p999":0.9,"max":1.1},"requested_rate_rps":10.0,"achieved_rate_rps":9.98,'
    '"client_cpu_percent":7.5,"cap_wait_ms":null,"trustworthy":true,"reasons":[]}},'
    '"tags":["nightly","regression","weekly"],"labels":{"team":"inference","gpu":"h100"}}'
).encode()
