"""The built-in job templates: they render one Job from an evaluation's values, their harness's
output file is the one vllmbench posts, and a missing value or a profile the harness cannot run
is a 422 naming the template line."""

from __future__ import annotations

import fnmatch
import json
import re

import pytest
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from tests.fixtures.templates import BUILTIN, BUILTINS, builtin, containers, profile, values
from vllmbench.errors import ValidationFailed
from vllmbench.evals.templates import render
from vllmbench.standardize import converter_for

OTHERS = ["guidellm", "lm-eval", "vllm-bench-serve"]


def test_the_four_harnesses_ship_a_template_each():
    assert BUILTINS == ["guidellm", "lm-eval", "vllm-bench-serve", "vllmbench"]
    assert [builtin(name).harness for name in BUILTINS] == BUILTINS


@pytest.mark.parametrize("name", BUILTINS)
def test_renders_one_job_bounded_in_time_that_never_retries(name):
    job = render(builtin(name), values())
    assert (job["apiVersion"], job["kind"], job["metadata"]["name"]) == ("batch/v1", "Job", "ev-7f3a-r0")
    assert job["metadata"]["labels"] == values()["labels"] == job["spec"]["template"]["metadata"]["labels"]
    spec = job["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"]) == (0, 3600)
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    for container in containers(job).values():
        assert container["resources"]["requests"] and container["resources"]["limits"]


@pytest.mark.parametrize("name", OTHERS)
def test_the_harness_runs_first_then_ours_posts_its_output_with_the_run_id(name):
    job = render(builtin(name), values())
    spec = job["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["harness"]
    assert [c["name"] for c in spec["containers"]] == ["post-results"]
    harness, post = containers(job)["harness"], containers(job)["post-results"]
    assert post["image"] == values()["image"] and post["command"] == ["vllmbench"]
    args = post["args"]
    assert args[0] == "post-raw"
    flags = dict(a[2:].split("=", 1) for a in args if a.startswith("--"))
    assert flags["harness"] == builtin(name).harness and converter_for(flags["harness"]) is not None
    assert (flags["run-id"], flags["results-url"], flags["project"], flags["model"]) == \
        ("ev-7f3a-r0", values()["results_url"], "demo", "facebook/opt-125m")
    assert flags["harness-version"] in harness["image"] + " ".join(harness.get("command", []))
    assert [a for a in args if a.startswith("--tag=")] == ["--tag=nightly", "--tag=opt"]
    assert post["env"] == [{"name": "VLLMBENCH_API_TOKEN",
                            "valueFrom": {"secretKeyRef": {"name": "vllmbench-api-token", "key": "VLLMBENCH_API_TOKEN"}}}]
    # both see the same emptyDir; ours only reads it
    (volume,) = spec["volumes"]
    assert "emptyDir" in volume
    (written,), (read,) = harness["volumeMounts"], post["volumeMounts"]
    assert written["name"] == read["name"] == volume["name"] and written["mountPath"] == read["mountPath"]
    assert read["readOnly"] is True and args[-1].startswith(read["mountPath"] + "/")


def _harness_writes(name: str, args: list[str]) -> str:
    """The file the harness is asked to write (a real name of lm-eval's, which dates it)."""
    if name == "guidellm":
        return json.loads(args[args.index("--output") + 1])["path"]
    flags = dict(a.split("=", 1) for a in args if a.startswith("--") and "=" in a)
    if name == "vllm-bench-serve":
        assert "--save-result" in args and "--save-detailed" in args
        return flags["--result-dir"] + "/" + flags["--result-filename"]
    stem = flags["--output_path"].removesuffix(".json")
    return f"{stem}_2026-12-01T19-50-37.675557.json"  # lm-eval: <path stem>_<date>.json


@pytest.mark.parametrize("name", OTHERS)
def test_the_posted_file_is_the_one_the_harness_writes(name):
    parts = containers(render(builtin(name), values()))
    posted = parts["post-results"]["args"][-1]
    assert fnmatch.fnmatch(_harness_writes(name, parts["harness"]["args"]), posted)


def test_vllm_bench_serve_keeps_what_its_converter_reads():
    """Every request's TTFT and ITLs (--save-detailed) and the percentiles the converter maps."""
    args = containers(render(builtin("vllm-bench-serve"), values()))["harness"]["args"]
    flags = dict(a.split("=", 1) for a in args if "=" in a)
    assert set(flags["--percentile-metrics"].split(",")) == {"ttft", "tpot", "itl", "e2el"}
    assert set(flags["--metric-percentiles"].split(",")) == {"50", "90", "95", "99", "99.9"}


def test_lm_eval_installs_its_pinned_version_and_runs_it_with_the_args():
    harness = containers(render(builtin("lm-eval"), values()))["harness"]
    shell, flag, script, zero = harness["command"]
    assert (shell, flag, zero) == ("sh", "-c", "lm_eval")
    assert "'lm-eval[api]==0.4.13'" in script and script.endswith('exec lm_eval "$@"')
    assert "base_url=http://opt-125m.bench.svc.cluster.local:8000/v1/completions" in harness["args"]


def test_no_token_secret_no_env():
    for name in BUILTINS:
        for container in containers(render(builtin(name), values(token_secret=""))).values():
            assert "env" not in container or all(e["name"] != "VLLMBENCH_API_TOKEN" for e in container["env"])


def test_a_concurrency_profile_renders_for_every_harness():
    bench = profile(load={"mode": "concurrency", "concurrency": 8, "request_count": 200},
                    accuracy={"tasks": ["gsm8k"]})
    for name in BUILTINS:
        assert render(builtin(name), values(benchmark=bench))["kind"] == "Job"


def _used(name: str) -> list[str]:
    env = SandboxedEnvironment()
    env.filters.update({name: str for name in ("quote", "shell_quote", "format_tag")})
    return sorted(meta.find_undeclared_variables(env.parse(builtin(name).job))
                  - {"vllmbench_args", "guidellm_args", "vllm_bench_args", "lm_eval_args"})


@pytest.mark.parametrize("name", BUILTINS)
def test_only_values_the_evaluation_passes(name):
    assert set(_used(name)) <= set(values())


@pytest.mark.parametrize("name,missing", [(n, v) for n in BUILTINS for v in _used(n)])
def test_a_missing_value_is_refused_with_its_name_and_line(name, missing):
    given = values()
    del given[missing]
    with pytest.raises(ValidationFailed) as err:
        render(builtin(name), given)
    found = re.match(rf"builtin:{re.escape(name)}:(\d+): '{missing}' is undefined", err.value.message)
    assert found, err.value.message
    line = (BUILTIN / f"{name}.yaml").read_text().splitlines()[int(found.group(1)) - 1]
    assert re.search(rf"\b{missing}\b", line), line


@pytest.mark.parametrize("name,bench,message", [
    ("vllm-bench-serve", profile(sweep=[{"mode": "rate", "rate_rps": 20}]), "one load point"),
    ("guidellm", profile(load={"mode": "rate", "rate_rps": 5, "arrival": "burst"}), "constant or Poisson"),
    ("lm-eval", profile(), "accuracy section"),
])
def test_a_profile_the_harness_cannot_run_is_refused_at_the_line_that_maps_it(name, bench, message):
    with pytest.raises(ValidationFailed, match=message) as err:
        render(builtin(name), values(benchmark=bench))
    line = int(re.match(rf"builtin:{re.escape(name)}:(\d+):", err.value.message).group(1))
    assert "_args(benchmark" in (BUILTIN / f"{name}.yaml").read_text().splitlines()[line - 1]


def test_a_constant_rate_asked_of_vllm_bench_serve_reads_back_as_constant():
    from vllmbench.models.results import Harness, RawInput
    from vllmbench.standardize import to_standardized

    args = containers(render(builtin("vllm-bench-serve"), values(benchmark=profile(
        load={"mode": "rate", "rate_rps": 20, "duration_s": 10}))))["harness"]["args"]
    burstiness = float(dict(a.split("=", 1) for a in args if "=" in a)["--burstiness"])
    data = json.loads((BUILTIN.parents[2] / "tests" / "data" / "vllm_bench_serve.json").read_text())
    [record] = to_standardized(RawInput(run_id="r", harness=Harness(name="vllm-bench-serve"),
                                        data={**data, "burstiness": burstiness}))
    assert (record.scenario.load.arrival, record.scenario.load.rate_rps) == ("constant", 20.0)
