"""Jobs of the vllmbench image run as local processes: completion, failure, indexes, deadlines, logs."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

from vllmbench.runtimes.base import ObjectRef
from vllmbench.runtimes.local import LocalRuntime, pods
from vllmbench.runtimes.local.procs import parse_time

from .conftest import condition, job, python_job, wait_for


def finished(rt: LocalRuntime, ref: ObjectRef, *, timeout_s: float = 60.0) -> dict:
    return wait_for(lambda: (lambda j: j if condition(j, "Complete") or condition(j, "Failed") else None)(
        rt.get(ref)), timeout_s=timeout_s, what=f"{ref} finished")


def test_a_vllmbench_job_runs_as_a_process_and_completes(rt: LocalRuntime) -> None:
    manifest = job("help", ["simulate", "--help"])
    created = rt.apply(manifest, field_manager="m")
    assert created["status"]["active"] == 1 and created["status"]["startTime"]
    done = finished(rt, ObjectRef.of(manifest))
    assert condition(done, "Complete")["reason"] == "CompletionsReached"
    assert condition(done, "SuccessCriteriaMet")
    assert done["status"]["succeeded"] == 1 and "active" not in done["status"] and done["status"]["completionTime"]
    [pod] = rt.pods("t", {"job-name": "help"})
    assert pod["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "help"
    assert pod["metadata"]["ownerReferences"][0]["uid"] == done["metadata"]["uid"]
    assert pod["status"]["phase"] == "Succeeded"
    state = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert state["exitCode"] == 0 and state["reason"] == "Completed" and state["startedAt"] and state["finishedAt"]
    assert any("Serve an OpenAI-compatible vLLM simulator" in line for line in rt.logs("t", pod["metadata"]["name"]))
    reasons = [e["reason"] for e in rt.events("t", kind="Job", name="help")]
    assert reasons == ["SuccessfulCreate", "Completed"]
    pod_reasons = [e["reason"] for e in rt.events("t", kind="Pod", name=pod["metadata"]["name"])]
    assert pod_reasons[:2] == ["Scheduled", "Started"]


def test_a_failing_job_is_failed_with_the_reason_and_its_last_lines(rt: LocalRuntime) -> None:
    manifest = python_job("boom", "import sys; print('loading the dataset'); print('no such dataset: x'); sys.exit(3)")
    rt.apply(manifest, field_manager="m")
    done = finished(rt, ObjectRef.of(manifest))
    failed = condition(done, "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    assert failed["message"] == "Job has reached the specified backoff limit"
    assert condition(done, "FailureTarget") and done["status"]["failed"] == 1
    [pod] = rt.pods("t", {"job-name": "boom"})
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
    assert pod["status"]["phase"] == "Failed"
    assert list(rt.logs("t", pod["metadata"]["name"], tail_lines=1)) == ["no such dataset: x"]
    assert [e["reason"] for e in rt.events("t", kind="Job", name="boom")][-1] == "BackoffLimitExceeded"


def test_an_indexed_job_runs_each_index_once_with_its_env(rt: LocalRuntime) -> None:
    code = "import os; print('index', os.environ['JOB_COMPLETION_INDEX'], os.environ['HOSTNAME'])"
    manifest = python_job("slices", code, completions=3, parallelism=2, completionMode="Indexed")
    rt.apply(manifest, field_manager="m")
    done = finished(rt, ObjectRef.of(manifest))
    assert condition(done, "Complete") and done["status"]["completedIndexes"] == "0-2"
    assert done["status"]["succeeded"] == 3
    found = rt.pods("t", {"job-name": "slices"})
    by_index = {p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: p for p in found}
    assert sorted(by_index) == ["0", "1", "2"]
    for index, pod in by_index.items():
        assert pod["metadata"]["name"].startswith(f"slices-{index}-")
        assert pod["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == index
        assert list(rt.logs("t", pod["metadata"]["name"])) == [f"index {index} {pod['metadata']['name']}"]


def test_active_deadline_stops_the_job_with_deadline_exceeded(rt: LocalRuntime) -> None:
    manifest = python_job("slow", "import time; print('working', flush=True); time.sleep(120)",
                          activeDeadlineSeconds=2, backoffLimit=3)
    started = time.monotonic()
    rt.apply(manifest, field_manager="m")
    # nobody runs the controller meanwhile (the store is read as it is): the pod's shim looks in at the deadline
    stored = wait_for(lambda: condition(rt.store.get(rt.kind_of("batch/v1", "Job"), "t", "slow"), "Failed"),
                      timeout_s=20, what="the Job failed by itself")
    assert stored["reason"] == "DeadlineExceeded"
    done = finished(rt, ObjectRef.of(manifest), timeout_s=30)
    assert condition(done, "Failed")["reason"] == "DeadlineExceeded"
    assert condition(done, "Failed")["message"] == "Job was active longer than specified deadline"
    assert time.monotonic() - started < 30
    wait_for(lambda: not [p for p in rt.pods("t", {"job-name": "slow"})
                          if p["status"]["phase"] == "Running"], what="the job's pod stopped")


def test_a_followed_log_streams_while_the_job_writes_and_ends_with_it(rt: LocalRuntime) -> None:
    code = "import time\nfor i in range(6):\n    print('line', i, flush=True)\n    time.sleep(0.3)"
    manifest = python_job("chatty", code)
    rt.apply(manifest, field_manager="m")
    pod = wait_for(lambda: rt.pods("t", {"job-name": "chatty"}), what="the pod")[0]["metadata"]["name"]
    arrivals = []
    for line in rt.logs("t", pod, follow=True):
        arrivals.append((time.monotonic(), line))
    assert [line for _, line in arrivals] == [f"line {i}" for i in range(6)]
    # written over 1.5 s: read as they came, not in one burst at the end
    assert arrivals[-1][0] - arrivals[0][0] > 1.0, [round(t - arrivals[0][0], 2) for t, _ in arrivals]
    assert condition(finished(rt, ObjectRef.of(manifest)), "Complete")
    stamped = list(rt.logs("t", pod, timestamps=True, tail_lines=2))
    assert stamped[-1].endswith(" line 5") and stamped[-1][:4].isdigit() and "Z " in stamped[-1]
    assert list(rt.logs("t", pod, since_seconds=3600))[0] == "line 0"


def test_close_ends_a_followed_log_at_once(rt: LocalRuntime) -> None:
    manifest = python_job("quiet", "import time; print('hello', flush=True); time.sleep(60)")
    rt.apply(manifest, field_manager="m")
    pod = wait_for(lambda: rt.pods("t", {"job-name": "quiet"}), what="the pod")[0]["metadata"]["name"]
    stream = rt.logs("t", pod, follow=True)
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(stream))
    reader.start()
    wait_for(lambda: seen, what="the first line")
    closed_at = time.monotonic()
    stream.close()
    reader.join(5)
    assert not reader.is_alive() and time.monotonic() - closed_at < 1.0
    assert seen == ["hello"]
    assert rt.delete(ObjectRef.of(manifest), wait_s=20)
    assert rt.get(ObjectRef.of(manifest)) is None and rt.pods("t", {"job-name": "quiet"}) == []


def test_a_job_runs_the_load_generator_against_a_simulator_through_its_service(rt: LocalRuntime) -> None:
    from .conftest import service, sim_deployment

    rt.apply(service(), field_manager="m")
    rt.apply(sim_deployment(), field_manager="m")
    wait_for(lambda: rt.get(ObjectRef("apps/v1", "Deployment", "t", "sim"))["status"].get("availableReplicas"),
             what="the simulator available")
    bench = job("bench", ["run", "--url", "http://$(SIM_SERVICE_HOST):$(SIM_SERVICE_PORT)", "--rate", "5",
                          "--duration", "2", "--input-len", "16", "--output-len", "8", "--quiet"])
    rt.apply(bench, field_manager="m")
    done = finished(rt, ObjectRef.of(bench), timeout_s=90)
    [pod] = rt.pods("t", {"job-name": "bench"})
    lines = list(rt.logs("t", pod["metadata"]["name"]))
    assert condition(done, "Complete"), lines[-20:]
    url = rt.service_url("t", "sim", 80)
    with urllib.request.urlopen(f"{url}/_sim/requests", timeout=10) as answer:
        served = json.loads(answer.read())["requests"]
    assert len(served) >= 8 and all(r["outcome"] == "ok" for r in served), served[:3]


def test_a_container_over_its_memory_limit_is_oom_killed(rt: LocalRuntime) -> None:
    manifest = python_job("hungry", "import time; block = bytearray(300 * 2**20); block[::4096] = b'x' * "
                          "len(block[::4096]); print('allocated', flush=True); time.sleep(30)")
    manifest["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"memory": "100Mi"}}
    rt.apply(manifest, field_manager="m")
    done = finished(rt, ObjectRef.of(manifest))
    assert condition(done, "Failed")["reason"] == "BackoffLimitExceeded"
    [pod] = rt.pods("t", {"job-name": "hungry"})
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)
    assert "limits.memory 100 MiB" in terminated["message"]


def test_a_failed_pod_is_replaced_after_the_back_off_with_nobody_reading(rt: LocalRuntime) -> None:
    manifest = python_job("flaky", "raise SystemExit(1)", backoffLimit=1)
    started = time.monotonic()
    rt.apply(manifest, field_manager="m")
    # the store is read as it is (no controller runs): the failed pod's shim stays to start the next one
    # once the back-off (10 s) is over
    pods_kind = rt.kind_of("v1", "Pod")
    first = wait_for(lambda: [p for p in rt.store.list(pods_kind, "t") if pods.with_status(rt, p)["status"][
        "phase"] == "Failed"], what="the first pod failed")[0]
    failed_at = parse_time(first["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"])
    second = wait_for(lambda: [p for p in rt.store.list(pods_kind, "t") if p["metadata"]["name"] !=
                               first["metadata"]["name"]], timeout_s=30, what="the replacement pod")[0]
    assert parse_time(second["metadata"]["creationTimestamp"]) - failed_at >= 9  # whole seconds in the API's times
    done = finished(rt, ObjectRef.of(manifest))
    assert condition(done, "Failed")["reason"] == "BackoffLimitExceeded" and done["status"]["failed"] == 2
    assert time.monotonic() - started < 40


def test_on_failure_restarts_count_toward_the_backoff_limit(rt: LocalRuntime) -> None:
    manifest = python_job("restarts", "raise SystemExit(1)", backoffLimit=1, restart="OnFailure")
    rt.apply(manifest, field_manager="m")
    done = finished(rt, ObjectRef.of(manifest))
    assert condition(done, "Failed")["reason"] == "BackoffLimitExceeded"
    # restarted in place until the restarts passed the limit; then, as the API does, the pod was deleted
    assert done["status"]["failed"] == 1
    assert [e["reason"] for e in rt.events("t", kind="Job", name="restarts")] == [
        "SuccessfulCreate", "SuccessfulDelete", "BackoffLimitExceeded"]
    wait_for(lambda: rt.pods("t", {"job-name": "restarts"}) == [], what="the pod removed")


def test_init_containers_run_first_and_share_an_empty_dir(rt: LocalRuntime) -> None:
    manifest = python_job("init", "import sys; print(open(sys.argv[1]).read())")
    manifest["spec"]["template"]["spec"]["containers"][0]["command"].append("/work/ready.txt")
    manifest["spec"]["template"]["spec"]["volumes"] = [{"name": "work", "emptyDir": {}}]
    manifest["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [{"name": "work", "mountPath": "/work"}]
    manifest["spec"]["template"]["spec"]["initContainers"] = [{
        "name": "prepare", "image": "vllmbench", "volumeMounts": [{"name": "work", "mountPath": "/work"}],
        "command": ["python", "-c", "import sys, time; time.sleep(0.5); open(sys.argv[1], 'w').write('prepared')",
                    "/work/ready.txt"]}]
    rt.apply(manifest, field_manager="m")
    done = finished(rt, ObjectRef.of(manifest))
    assert condition(done, "Complete")
    [pod] = rt.pods("t", {"job-name": "init"})
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    assert condition(pod, "Initialized")
    assert list(rt.logs("t", pod["metadata"]["name"], container="main")) == ["prepared"]
