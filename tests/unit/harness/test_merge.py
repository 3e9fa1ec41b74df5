"""The merge of client pods' parts (vllmbench/harness/merge.py) on synthetic runs: the merged record is
the one-client record of the same requests, every pod's trust counts, and parts that are not the slices
of one schedule are refused with what is wrong."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.fixtures import shards as S
from vllmbench.errors import ValidationFailed
from vllmbench.harness.config import RunConfig
from vllmbench.harness.merge import merge, merged_run_id, part_from_raw, part_run_id
from vllmbench.harness.schedule import shard_of, split, worker_of
from vllmbench.samples import Samples
from vllmbench.standardize.samples import ours_row


def parts_of(reports, *, via_samples=False):
    out = []
    for report in reports:
        data = report.raw()
        rows = None
        if via_samples:  # as the Results service gives them back: VBS1 columns, 1 us, gaps 10 us
            rows = Samples.from_rows([ours_row(r, 0, measured=True) for r in data["stages"][0]["requests"]]).rows()
            for stage in data["stages"]:
                stage["requests_sent_apart"], stage["requests"] = len(stage["requests"]), []
        out.append(part_from_raw(report.config.run_id, data, rows, harness_version="test"))
    return out


def figures(record):
    results = record.results.model_dump(mode="json")
    trust = results.pop("trust")
    return results, trust


def same(got, want, path="results"):
    """Equal, floats to 1 us (a raw report keeps times to 0.1 us); counts exactly."""
    if isinstance(want, dict):
        assert sorted(got) == sorted(want), path
        for key in want:
            same(got[key], want[key], f"{path}.{key}")
    elif isinstance(want, float):
        assert got == pytest.approx(want, abs=1e-3, rel=1e-6), path
    else:
        assert got == want, path


@pytest.mark.parametrize("shards", [2, 3])
def test_merged_parts_are_the_one_client_record_of_the_same_requests(shards):
    cfg = S.config()
    offsets, requests = S.requests(cfg, error=lambda i: "http_500" if i % 17 == 5 else None)
    single = S.one_client(cfg, offsets, requests, processes=shards).records[0]
    merged = merge(parts_of([S.part(cfg, offsets, requests, k, shards) for k in range(shards)]))
    [record] = merged.records
    assert merged.config.run_id == "ev-1-r0" and merged.config.shards == shards
    assert record.run.run_id == "ev-1-r0" and record.labels == {"client_pods": str(shards)}
    want, want_trust = figures(single)
    got, got_trust = figures(record)
    same(got, want)  # counts, every latency statistic, throughput, goodput
    assert got["requests"]["total"] == len(offsets) and got["requests"]["failed"] > 0
    # the trust figures over all requests and processes are the one client's (achieved rate over every pod)
    same(got_trust, want_trust, "trust")
    assert got_trust["achieved_rate_rps"] > 0.9 * cfg.rates[0]
    assert [p["run_id"] for p in merged.stages[0].pods] == [f"ev-1-r0-p{k}" for k in range(shards)]
    assert sorted(r.index for r in merged.stages[0].requests) == list(range(len(offsets)))


def test_parts_read_back_from_their_samples_merge_to_the_same_figures_to_their_resolution():
    cfg = S.config()
    offsets, requests = S.requests(cfg)
    single = S.one_client(cfg, offsets, requests, processes=2).records[0].results.latency
    record = merge(parts_of([S.part(cfg, offsets, requests, k, 2) for k in range(2)], via_samples=True)).records[0]
    got = record.results.latency
    for name in ("ttft", "itl", "tpot", "e2e", "e2e_from_schedule"):
        for figure in ("p50", "p90", "p99", "mean"):
            assert getattr(getattr(got, name), figure) == pytest.approx(getattr(getattr(single, name), figure), abs=0.01)
    assert record.results.requests.total == len(offsets) and record.results.trust.trustworthy


def test_load_workers_inside_the_pods_keep_their_own_lateness_in_the_merge():
    cfg = S.config()
    offsets, requests = S.requests(cfg)
    merged = merge(parts_of([S.part(cfg, offsets, requests, k, 2, workers=2) for k in range(2)]))
    clients = merged.stages[0].facts.clients
    assert sorted(c.worker for c in clients) == [0, 1, 2, 3]
    by_worker = {}
    for rec in merged.stages[0].requests:
        by_worker.setdefault(rec.worker, []).append(rec.index)
    # pod k's worker w sent its arrivals k + 2 (w + 2 j): process 2k + w of the merged run
    assert by_worker[3][:3] == [3, 7, 11] and by_worker[0][:3] == [0, 4, 8]
    assert merged.records[0].results.trust.trustworthy


def test_one_pod_that_fell_behind_makes_the_merged_stage_untrustworthy_and_is_named():
    cfg = S.config(duration_s=3.0)
    # pod 1 of 3 sent every request 4 ms late: a third of the requests, which pooled figures do not show
    offsets, requests = S.requests(cfg, late_ms=lambda i: 4.0 if i % 3 == 1 else 0.0)
    reports = [S.part(cfg, offsets, requests, k, 3) for k in range(3)]
    assert [r.records[0].results.trust.trustworthy for r in reports] == [True, False, True]
    single = S.one_client(cfg, offsets, requests, processes=3).records[0].results.trust
    assert single.trustworthy  # one client's pooled figures miss it (p50 on time, p99 4 ms < 10 ms)
    trust = merge(parts_of(reports)).records[0].results.trust
    assert not trust.trustworthy
    assert trust.reasons == ["client pod 1 of 3 (ev-1-r0-p1): schedule delay p50 4.04 ms > 2.0 ms: "
                             "the client fell behind its schedule"]


def test_a_pod_whose_loop_ran_late_is_named_with_its_own_estimate():
    cfg = S.config()
    offsets, requests = S.requests(cfg)
    reports = [S.part(cfg, offsets, requests, 0, 2), S.part(cfg, offsets, requests, 1, 2, late_bin=60)]  # ~3 ms late
    trust = merge(parts_of(reports)).records[0].results.trust
    assert not trust.trustworthy
    assert any(r.startswith("client pod 1 of 2 (ev-1-r0-p1): the client read responses late") for r in trust.reasons)


def _refused(parts, words):
    with pytest.raises(ValidationFailed) as caught:
        merge(parts)
    assert words in caught.value.message, caught.value.message


def test_parts_that_are_not_the_slices_of_one_schedule_are_refused_with_what_is_wrong():
    cfg = S.config()
    offsets, requests = S.requests(cfg)
    p0, p1, p2 = parts_of([S.part(cfg, offsets, requests, k, 3) for k in range(3)])
    _refused([p0, p2], "expected shards 0..2 of 3 once each, got ev-1-r0-p0 (0/3), ev-1-r0-p2 (2/3)")
    _refused([p0, p1, p1], "expected shards 0..2 of 3 once each")
    # a part run with another seed planned another schedule
    other_offsets, other = S.requests(replace(cfg, seed=8))
    q1 = parts_of([S.part(cfg, other_offsets, other, 1, 3)])[0]
    _refused([p0, q1, p2], "ev-1-r0-p1 ran other stages than ev-1-r0-p0")
    moved = list(p1.stages[0].requests)
    moved[2] = replace(moved[2], scheduled_ns=moved[2].scheduled_ns + 5 * S.MS)
    _refused([p0, replace(p1, stages=[replace(p1.stages[0], requests=moved)]), p2],
             f"ev-1-r0-p1 planned request {moved[2].index} at")
    # a request lost on the way, one of another slice
    lost = replace(p1, stages=[replace(p1.stages[0], requests=p1.stages[0].requests[1:])])
    _refused([p0, lost, p2], "ev-1-r0-p1 stage 0 holds 39 requests, its slice of the schedule 40; missing [1]")
    stray = replace(p1, stages=[replace(p1.stages[0], requests=p1.stages[0].requests + [p0.stages[0].requests[0]])])
    _refused([p0, stray, p2], "not its own [0]")
    # other settings
    odd = replace(p2, config=replace(p2.config, output_len="16"))
    _refused([p0, p1, odd], "ev-1-r0-p2 was run with other settings than ev-1-r0-p0: output_len")
    _refused([p0, p1, replace(p2, model="other")], "ran model 'other'")


def test_run_ids_of_parts():
    assert part_run_id("ev-1-r0", 3) == "ev-1-r0-p3"
    assert merged_run_id("ev-1-r0-p3") == "ev-1-r0" and merged_run_id("ev-1-r0") == "ev-1-r0"


def test_a_shard_sends_every_nth_arrival_and_its_workers_split_them_as_the_runner_does():
    assert shard_of(10, 1, 3) == [1, 4, 7]
    for shard, shards, workers in ((0, 1, 3), (1, 3, 2), (2, 4, 3)):
        mine = shard_of(50, shard, shards)
        for worker, indices in enumerate(split(mine, workers)):
            assert all(worker_of(i, shard=shard, shards=shards, workers=workers) == worker for i in indices)


@pytest.mark.parametrize("kw, words", [
    (dict(shard_index=0, shards=2, run_id="r"), "--shard needs --start-at"),
    (dict(shard_index=0, shards=2, start_at=1e9), "--shard needs --run-id"),
    (dict(shard_index=2, shards=2, start_at=1e9, run_id="r"), "shard must be I/N with 0 <= I < N, got 2/2"),
    (dict(shard_index=0, shards=101, start_at=1e9, run_id="r"), "shards must be 1..100"),
    (dict(shard_index=0, shards=2, start_at=1e9, run_id="r", mode="concurrency", rates=(), concurrencies=(4,)),
     "--shard splits a rate schedule"),
    (dict(start_at=-1.0), "start at must be a Unix time"),
])
def test_impossible_shard_settings_are_refused(kw, words):
    values = dict(url="http://x", rates=(10.0,))
    values.update(kw)
    with pytest.raises(ValidationFailed, match=words.replace("(", r"\(").replace(")", r"\)")):
        RunConfig(**values).validate()
    RunConfig(url="http://x", rates=(10.0,), shard_index=0, shards=1).validate()  # 0/1 is one client
