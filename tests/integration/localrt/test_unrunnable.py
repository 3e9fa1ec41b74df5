"""What the local runtime cannot run stays Pending with the reason, and is never reported running."""

from __future__ import annotations

import time
from pathlib import Path

from vllmbench.runtimes.base import ObjectRef
from vllmbench.runtimes.local import LocalRuntime

from .conftest import condition, job, wait_for


def waiting(rt: LocalRuntime, selector: dict) -> dict:
    pods = wait_for(lambda: rt.pods("t", selector), what="the pod")
    return pods[0]["status"]["containerStatuses"][0]["state"]["waiting"]


def test_an_image_it_cannot_run_stays_pending_with_the_reason(rt: LocalRuntime, root) -> None:
    manifest = job("busy", ["echo", "hi"], image="busybox:1.36")
    sentence = rt.unsupported(manifest)
    assert "busybox" in sentence and "KUBECONFIG" in sentence
    rt.apply(manifest, field_manager="m")
    time.sleep(1.0)
    state = waiting(rt, {"job-name": "busy"})
    assert state["reason"] == "ImageNotRunnableLocally"
    assert "KUBECONFIG" in state["message"] and "busybox" in state["message"]
    [pod] = rt.pods("t", {"job-name": "busy"})
    assert pod["status"]["phase"] == "Pending" and not condition(pod, "Ready")
    live = rt.get(ObjectRef.of(manifest))
    assert not live["status"].get("ready") and not condition(live, "Complete")
    assert [e["reason"] for e in rt.events("t", kind="Pod", name=pod["metadata"]["name"])] == ["Scheduled", "Failed"]
    assert not (root / "pods" / "t" / pod["metadata"]["name"] / "shim.pid").exists()


def test_a_shell_line_and_a_secret_are_not_run(rt: LocalRuntime) -> None:
    shell = job("sh", command=["sh", "-c", "vllmbench run --url x | tee out"])
    assert "not one simple command" in rt.unsupported(shell)
    secret = job("sec", ["simulate", "--help"])
    secret["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "VLLMBENCH_API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}}]
    rt.apply(secret, field_manager="m")
    state = waiting(rt, {"job-name": "sec"})
    assert state["reason"] == "NotSupportedLocally" and "Secret" in state["message"]


def test_a_missing_configmap_waits_and_starts_once_it_exists(rt: LocalRuntime) -> None:
    manifest = job("cfg", command=["python", "-c", "import os; print(os.environ['MODEL'])"])
    manifest["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "MODEL", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "model"}}}]
    rt.apply(manifest, field_manager="m")
    state = waiting(rt, {"job-name": "cfg"})
    assert state["reason"] == "CreateContainerConfigError" and 'configmap "settings" not found' in state["message"]
    rt.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "t"},
              "data": {"model": "opt-125m"}}, field_manager="m")
    done = wait_for(lambda: condition(rt.get(ObjectRef.of(manifest)), "Complete"), what="the job complete")
    assert done
    [pod] = rt.pods("t", {"job-name": "cfg"})
    assert list(rt.logs("t", pod["metadata"]["name"])) == ["opt-125m"]


def test_configmap_volumes_and_mount_paths_in_arguments(rt: LocalRuntime) -> None:
    rt.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "prompts", "namespace": "t"},
              "data": {"prompts.jsonl": '{"prompt": "hi"}\n'}}, field_manager="m")
    manifest = job("vol", command=["python", "-c", "import sys; print(open(sys.argv[1]).read().strip()); "
                                   "open(sys.argv[2] + '/out.txt', 'w').write('ok'); print('wrote')",
                                   "/data/prompts.jsonl", "/scratch"])
    spec = manifest["spec"]["template"]["spec"]
    spec["volumes"] = [{"name": "prompts", "configMap": {"name": "prompts"}}, {"name": "scratch", "emptyDir": {}}]
    spec["containers"][0]["volumeMounts"] = [{"name": "prompts", "mountPath": "/data"},
                                             {"name": "scratch", "mountPath": "/scratch"}]
    rt.apply(manifest, field_manager="m")
    assert wait_for(lambda: condition(rt.get(ObjectRef.of(manifest)), "Complete"), what="the job complete")
    [pod] = rt.pods("t", {"job-name": "vol"})
    assert list(rt.logs("t", pod["metadata"]["name"])) == ['{"prompt": "hi"}', "wrote"]


def test_stored_only_kinds_say_why(rt: LocalRuntime) -> None:
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly", "namespace": "t"},
            "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {}}}}
    rt.apply(cron, field_manager="m")
    assert rt.get(ObjectRef.of(cron))["spec"]["schedule"] == "0 3 * * *"
    assert "stores CronJobs but does not schedule them" in rt.unsupported(cron)
    assert rt.events("t", kind="CronJob", name="nightly")[0]["reason"] == "NotSupportedLocally"


def test_nothing_of_the_runtimes_environment_reaches_a_workload(rt: LocalRuntime, root, monkeypatch) -> None:
    monkeypatch.setenv("VLLMBENCH_API_TOKEN", "tok-never-in-a-workload")
    monkeypatch.setenv("MONGO_URL", "mongodb://user:pw-never-in-a-workload@db:27017/")
    # but the vllmbench this runtime is (a checkout on PYTHONPATH) is the one a vllmbench or python container runs
    import vllmbench

    monkeypatch.setenv("PYTHONPATH", str(Path(vllmbench.__file__).parents[1]))
    manifest = job("env", command=["python", "-c", "import os, time; print(sorted(os.environ)); time.sleep(30)"])
    rt.apply(manifest, field_manager="m")
    [pod] = wait_for(lambda: [p for p in rt.pods("t", {"job-name": "env"}) if "running" in p["status"][
        "containerStatuses"][0]["state"]], what="the pod running")
    logged = wait_for(lambda: list(rt.logs("t", pod["metadata"]["name"])), what="the env printed")
    assert "VLLMBENCH_API_TOKEN" not in logged[0] and "MONGO_URL" not in logged[0] and "HOSTNAME" in logged[0]
    assert "'PYTHONPATH'" in logged[0]
    pod_dir = root / "pods" / "t" / pod["metadata"]["name"]
    shim = int((pod_dir / "shim.pid").read_text())
    container = int(pod["status"]["containerStatuses"][0]["containerID"].rsplit("/", 1)[1])
    for pid in (shim, container):
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert b"never-in-a-workload" not in environ
