"""Job templates: sandboxed, strict, errors naming the value and the line of the file."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from vllmbench.errors import ValidationFailed
from vllmbench.evals import templates
from vllmbench.evals.schedules import evaluation_id, last_fire, parse, pingsource
from vllmbench.models.evaluations import ScheduleSpec

FILE = """name: t
harness: vllmbench
job: |
  apiVersion: batch/v1
  kind: Job
  metadata: {name: "{{ job_name }}"}
  spec:
    template:
      spec:
        restartPolicy: Never
        containers:
        - name: c
          image: x
          args: {{ vllmbench_args(benchmark) | tojson }}
          env: [{name: URL, value: {{ server_urll | quote }}}]
"""
PROFILE = {"load": {"mode": "concurrency", "concurrency": 8, "duration_s": 30,
                    "input_tokens": {"kind": "uniform", "mean": 100, "min": 50, "max": 150}}}


def test_a_missing_value_is_named_with_its_file_line() -> None:
    template = templates.load(FILE, path="projects/demo/templates/t.yaml")
    assert template.job_line == 4
    with pytest.raises(ValidationFailed) as raised:
        templates.render(template, {"job_name": "j", "benchmark": PROFILE, "server_url": "http://s"})
    assert raised.value.message.startswith("projects/demo/templates/t.yaml:15: 'server_urll' is undefined")


def test_it_renders_a_job_with_the_profile_as_flags() -> None:
    template = templates.load(FILE.replace("server_urll", "server_url"), path="t.yaml")
    job = templates.render(template, {"job_name": "j", "benchmark": PROFILE, "server_url": "http://s"})
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["--concurrency=8", "--duration=30", "--input-len=uniform:50:150",
                                 "--output-len=128", "--endpoint=completions"]
    assert container["env"] == [{"name": "URL", "value": "http://s"}]


@pytest.mark.parametrize("job, words", [
    ("{{ ''.__class__.__mro__ }}", "not allowed in a template"),
    ("{% for x in %}", "template syntax"),
    ("kind: ConfigMap", "must render one batch/v1 Job"),
    ("a: [unclosed", "not valid YAML"),
])
def test_what_a_template_may_not_do(job: str, words: str) -> None:
    template = templates.load(f"name: t\nharness: vllmbench\njob: |\n  {job}\n", path="t.yaml")
    with pytest.raises(ValidationFailed, match=words):
        templates.render(template, {})


@pytest.mark.parametrize("text, words", [
    ("name: t\nharness: nope\njob: x", "harness 'nope'"),
    ("name: t\nharness: vllmbench\njob: x\nextra: 1", "unknown field(s) extra"),
    ("name: t\nharness: vllmbench", "job must be"),
])
def test_a_file_that_is_not_a_template(text: str, words: str) -> None:
    with pytest.raises(ValidationFailed, match=re.escape(words)):
        templates.load(text, path="t.yaml")


def test_mixed_modes_cannot_be_one_vllmbench_run() -> None:
    with pytest.raises(ValueError, match="split the profile"):
        templates.vllmbench_args({"load": {"mode": "rate", "rate_rps": 1},
                                  "sweep": [{"mode": "concurrency", "concurrency": 4}]})


def test_schedules_fire_once_per_minute_and_render_pingsources() -> None:
    spec = ScheduleSpec(project="demo", benchmark="chat", schedule="*/15 * * * *")
    now = dt.datetime(2026, 12, 1, 12, 16, tzinfo=dt.timezone.utc)
    assert last_fire(spec, after=now - dt.timedelta(minutes=2), now=now) == now.replace(minute=15)
    assert last_fire(spec, after=now.replace(minute=15), now=now) is None
    assert evaluation_id("nightly", now) == "nightly-20261201-1216"
    source = pingsource("nightly", spec, namespace="vllmbench", sink_service="benchmark-eval")
    assert source["metadata"]["name"] == "eval-nightly" and source["spec"]["schedule"] == "*/15 * * * *"
    specs, problems = parse({"schedules/a.yaml": b"project: demo\nbenchmark: chat\nschedule: 'not cron'\n",
                             "schedules/b.yaml": b"project: demo\nbenchmark: chat\nschedule: '0 2 * * *'\n"})
    assert list(specs) == ["b"] and "not a five-field cron" in problems["schedules/a.yaml"]
