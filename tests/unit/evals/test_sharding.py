"""Load beyond one client, on the evaluation's side: how many client pods a profile needs with a template,
the built-in vllmbench template rendered as an Indexed Job of them, and their shared start fixed once."""

from __future__ import annotations

import datetime as dt

import kubernetes_validate
import pytest

from tests.fixtures.templates import builtin, containers, profile, values
from tests.k8s.test_manifests import KUBERNETES_SCHEMA_VERSION
from vllmbench.errors import ValidationFailed
from vllmbench.evals import machine
from vllmbench.evals.templates import Template, client_pods, load, render

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)


def rate(*rates: float) -> dict:
    first = {"mode": "rate", "rate_rps": rates[0], "duration_s": 10}
    return profile(load=first, sweep=[{"mode": "rate", "rate_rps": r} for r in rates[1:]])


@pytest.mark.parametrize("prof, pods", [
    (rate(10), 1), (rate(400), 1), (rate(400.5), 2), (rate(900), 3), (rate(100, 1200, 50), 3),
    (profile(load={"mode": "concurrency", "concurrency": 5000, "request_count": 100}), 1),
], ids=["10", "400", "400.5", "900", "sweep-to-1200", "concurrency"])
def test_a_stage_above_what_one_pod_holds_gets_enough_pods(prof, pods):
    assert builtin("vllmbench").max_rate_per_pod == 400
    assert client_pods(builtin("vllmbench"), prof) == pods


def test_only_our_harness_is_sharded_and_only_with_a_limit():
    guidellm = Template(name="g", harness="guidellm", job="", path="p", job_line=1, max_rate_per_pod=10)
    assert client_pods(guidellm, rate(900)) == 1  # its reports cannot be merged: one pod
    unlimited = Template(name="v", harness="vllmbench", job="", path="p", job_line=1)
    assert client_pods(unlimited, rate(900)) == 1
    with pytest.raises(ValidationFailed, match="a rate of 40100/s needs 101 client pods of max_rate_per_pod 400"):
        client_pods(builtin("vllmbench"), rate(40_100))


def test_the_builtin_template_renders_an_indexed_job_of_shards_starting_together():
    job = render(builtin("vllmbench"), values(benchmark=rate(900), pods=3, start_at=1_800_000_000.25))
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"], spec["backoffLimit"]) == ("Indexed", 3, 3, 0)
    args = containers(job)["harness"]["args"]
    assert "--shard=$(JOB_COMPLETION_INDEX)/3" in args and "--start-at=1800000000.25" in args
    assert "--rate=900" in args and "--run-id=ev-7f3a-r0" in args  # the whole rate: each pod sends its third
    kubernetes_validate.validate(job, KUBERNETES_SCHEMA_VERSION, strict=True)
    one = render(builtin("vllmbench"), values(benchmark=rate(300)))
    assert "completionMode" not in one["spec"] and "completions" not in one["spec"]
    assert not [a for a in containers(one)["harness"]["args"] if a.startswith(("--shard", "--start-at"))]


def test_a_template_of_ones_own_may_use_the_pods_and_their_start():
    text = ("harness: vllmbench\nmax_rate_per_pod: 5\njob: |\n  apiVersion: batch/v1\n  kind: Job\n"
            "  metadata: {name: x}\n  spec: {completions: {{ pods }}, template: {spec: {containers: "
            "[{name: h, image: i, args: ['--start-at={{ start_at }}']}]}}}\n")
    template = load(text, path="projects/demo/templates/mine.yaml")
    assert client_pods(template, rate(12)) == 3
    job = render(template, values(pods=3, start_at=1.5))
    assert job["spec"]["completions"] == 3 and containers(job)["h"]["args"] == ["--start-at=1.5"]


def new(pods: int) -> dict:
    return machine.new("e1", request={"project": "demo", "pods": pods, "shard_lead_s": 45}, at=T0, timeout_s=3600,
                       repeats=2, now=T0, server=None, target_url="http://s:8000", model="m")


def test_the_shared_start_is_fixed_once_when_the_jobs_start_and_said_on_the_timeline():
    ev, _ = machine.advance(new(3), {"type": "tick"}, T0)
    assert ev["state"] == "running" and ev["start_at"] == T0 + dt.timedelta(seconds=45)
    assert ev["timeline"][-1]["reason"] == ("target http://s:8000 given: starting 2 job(s) of 3 client pods each, "
                                            "sending together from 2026-12-01T12:00:45+00:00")
    later, actions = machine.advance(ev, {"type": "tick"}, T0 + dt.timedelta(minutes=5))
    assert later["start_at"] == ev["start_at"] and [a.kind for a in actions] == ["apply_jobs"]
    one, _ = machine.advance(new(1), {"type": "tick"}, T0)
    assert "start_at" not in one and one["timeline"][-1]["reason"].endswith("starting 2 job(s)")
