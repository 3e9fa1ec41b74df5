"""The deployer's reconcile engine on the local Kubernetes control plane (kwok nodes).

Prints, for N objects committed to deployments/ (default 200: ConfigMaps, Services and
Deployments in one namespace):
- the first apply: time, writes;
- a no-op reconcile: time and the API server's writes (resourceVersions compared:
  must be 0; target under 1 s);
- log follow: lines per second through GET /jobs/{name}/logs?follow=true, and the delay
  from a line written in the pod (kwok serves the pod's log file) to the client.

    .venv/bin/python tests/bench/bench_deployer.py [--objects N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import yaml  # noqa: E402

from tests.fixtures.cluster import KubeCluster, load_localcluster, wait_for  # noqa: E402
from tests.fixtures.functions import start_function  # noqa: E402
from tests.integration.gitops.gitutil import Person, make_remote  # noqa: E402
from vllmbench.embedded.ferretdb import FerretDB  # noqa: E402
from vllmbench.embedded.processes import free_port  # noqa: E402


def objects(n: int) -> list[dict]:
    out = []
    for i in range(n):
        kind = i % 3
        name = f"o{i:04d}"
        if kind == 0:
            out.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"i": str(i)}})
        elif kind == 1:
            out.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                        "spec": {"selector": {"app": name}, "ports": [{"port": 8000, "targetPort": 8000}]}})
        else:
            out.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
                        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                                 "template": {"metadata": {"labels": {"app": name}},
                                              "spec": {"containers": [{"name": "c", "image": "x:1",
                                                                       "resources": {"limits": {"cpu": "500m"}}}]}}}})
    return out


def versions(cluster: KubeCluster, ns: str) -> dict[str, str]:
    found = {}
    for item in cluster.core_v1.list_namespaced_config_map(ns).items:
        found[f"cm/{item.metadata.name}"] = item.metadata.resource_version
    for item in cluster.core_v1.list_namespaced_service(ns).items:
        found[f"svc/{item.metadata.name}"] = item.metadata.resource_version
    for item in cluster.apps_v1.list_namespaced_deployment(ns).items:
        found[f"deploy/{item.metadata.name}"] = item.metadata.resource_version
    return found


def writes_seen(cluster: KubeCluster) -> int:
    """Write requests the API server has served to the deployer: apply (server-side apply, which only
    vllmbench uses here), create, update, patch and delete on the benchmark's kinds, from /metrics."""
    import requests

    pki = cluster.local.pki
    text = requests.get(cluster.server + "/metrics", cert=(str(pki / "admin.crt"), str(pki / "admin.key")),
                        verify=str(pki / "ca.crt"), timeout=30).text
    total = 0
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = line[line.index("{") + 1:line.index("}")]
        fields = dict(part.split("=", 1) for part in labels.split(",") if "=" in part)
        fields = {k: v.strip('"') for k, v in fields.items()}
        if fields.get("verb") == "APPLY" and fields.get("resource") in ("configmaps", "services", "deployments") \
                and not fields.get("subresource") and "dry_run" not in fields:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    lc = load_localcluster()
    with tempfile.TemporaryDirectory(prefix="bench-deployer-") as work:
        root = Path(work)
        db = FerretDB(root / "ferretdb", free_port()).start()
        local = lc.LocalCluster(root / "cluster", tools=lc.Toolset.from_cache(), name="bench", die_with_parent=True)
        local.start()
        cluster = KubeCluster(local)
        try:
            ns = "bench"
            cluster.core_v1.create_namespace({"metadata": {"name": ns}})
            wait_for(lambda: cluster.core_v1.list_namespaced_service_account(ns).items, 30, "the default SA")
            remote = make_remote(root / "config.git", {"README.md": "bench\n"})
            person = Person(remote, root / "person")
            person.commit({f"deployments/{ns}/all.yaml": yaml.safe_dump_all(objects(args.objects))}, "objects")
            served, stop = start_function("deploy", mongo_url=db.url, database="bench_deployer",
                                          gitops_repo_url=str(remote), runtime="kube",
                                          kubeconfig=str(cluster.kubeconfig), workload_namespaces=ns,
                                          data_dir=str(root / "data"))
            try:
                started = time.perf_counter()
                first = served.post("/reconcile", json={}).json()
                first_s = time.perf_counter() - started
                print(f"first apply of {args.objects} objects: {first_s:.2f} s, {first['writes']} writes, "
                      f"errors {len(first['errors'])}")
                time.sleep(3)  # let the controllers finish writing the Deployments' status
                before, applies = versions(cluster, ns), writes_seen(cluster)
                times = []
                for _ in range(args.repeats):
                    started = time.perf_counter()
                    again = served.post("/reconcile", json={}).json()
                    times.append(time.perf_counter() - started)
                after, applies_after = versions(cluster, ns), writes_seen(cluster)
                changed = sum(1 for key in before if before[key] != after.get(key))
                print(f"no-op reconcile of {args.objects} objects ({args.repeats} runs): median "
                      f"{statistics.median(times) * 1000:.0f} ms per POST /reconcile (min {min(times) * 1000:.0f}, "
                      f"max {max(times) * 1000:.0f}; the engine's part {again['duration_ms']:.0f} ms; target < 1 s); "
                      f"apply requests the API server served: {applies_after - applies} (must be 0); objects whose "
                      f"resourceVersion moved: {changed} (controllers' status writes included)")
                follow(cluster, served, person, ns, root)
            finally:
                stop()
        finally:
            cluster.close()
            local.stop()
            db.stop()
    return 0


def follow(cluster: KubeCluster, served, person: Person, ns: str, root: Path) -> None:  # noqa: ANN001
    import requests

    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "logs"},
           "spec": {"template": {"metadata": {"annotations": {"pod-complete.stage.kwok.x-k8s.io/delay": "120s"}},
                                 "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}}
    person.commit({f"deployments/{ns}/job.yaml": yaml.safe_dump(job)}, "a job")
    served.post("/reconcile", json={})
    pod = wait_for(lambda: cluster.core_v1.list_namespaced_pod(ns, label_selector="job-name=logs").items, 30,
                   "the pod")[0].metadata.name
    wait_for(lambda: cluster.core_v1.read_namespaced_pod(pod, ns).status.phase == "Running", 30, "running")
    log_file = root / "pod.log"
    log_file.write_text("")
    cluster.dynamic.resources.get(api_version="kwok.x-k8s.io/v1alpha1", kind="Logs").create(
        {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Logs", "metadata": {"name": pod, "namespace": ns},
         "spec": {"logs": [{"containers": ["c"], "logsFile": str(log_file), "follow": True}]}}, namespace=ns)
    lines, delays = 20_000, []
    got: list[float] = []
    sent: dict[int, float] = {}

    def read() -> None:
        with requests.get(served.url + "/jobs/logs/logs", params={"follow": "true"}, stream=True, timeout=120) as r:
            for line in r.iter_lines(decode_unicode=True):
                got.append(time.monotonic())
                if line.startswith("delay "):
                    delays.append(time.monotonic() - sent[int(line.split()[1])])
                if line == "end":
                    return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(1.0)
    started = time.monotonic()
    with log_file.open("a") as out:
        for i in range(lines):
            out.write(f"2026-01-01T00:00:00.000000000Z stdout F bulk line {i}\n")
        out.flush()
    reader_wait = time.monotonic()
    while len(got) < lines and time.monotonic() - reader_wait < 60:
        time.sleep(0.05)
    bulk_s = max(got[-1] - started, 1e-6) if got else float("nan")
    for i in range(20):
        with log_file.open("a") as out:
            sent[i] = time.monotonic()
            out.write(f"2026-01-01T00:00:00.000000000Z stdout F delay {i}\n")
        time.sleep(0.2)
    with log_file.open("a") as out:
        out.write("2026-01-01T00:00:00.000000000Z stdout F end\n")
    reader.join(60)
    print(f"log follow: {len(got)} lines in {bulk_s:.2f} s = {len(got) / bulk_s:,.0f} lines/s through the API; "
          f"write-to-client delay p50 {statistics.median(delays) * 1000:.0f} ms, max {max(delays) * 1000:.0f} ms "
          f"({len(delays)} samples)" if delays else "log follow: no delay samples arrived")


if __name__ == "__main__":
    sys.exit(main())
