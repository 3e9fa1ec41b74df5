"""A real Kubernetes control plane on loopback, with kwok simulating the nodes.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok run as
plain processes of this machine (no Docker), on free ports, in one folder that
holds their certificates, data, logs and a kubeconfig. `make cluster` and the
pytest fixture in tests/fixtures/cluster.py both start it through this module, so
they run the same thing.

    python tools/cluster/localcluster.py up --dir .data/cluster
    python tools/cluster/localcluster.py down --dir .data/cluster

The binaries come from tools/cluster/build.sh (versions in tools/versions.env),
cached under ${VLLMBENCH_CACHE_DIR:-~/.cache/vllmbench}. Besides the control plane,
`up` installs the CustomResourceDefinitions that vllmbench's manifests use
(Knative Serving and Eventing, from the Knative Go modules' own config files, which
build.sh copies into the cache) and creates the simulated nodes of
DEFAULT_NODES: GPU capacity included, so that scheduling decisions are real.

Only PyYAML is needed beyond the standard library.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
VERSIONS_FILE = REPO_ROOT / "tools" / "versions.env"
KWOK_CONFIG_TEMPLATE = HERE / "kwok.yaml"
FIELD_MANAGER = "vllmbench-localcluster"
# kwok kinds read from the API server instead of kwok.yaml: a test can give one pod
# its own log file or exec target by creating a Logs or Exec object named after it.
KWOK_CRDS_FROM_API = ("Logs", "Exec")
KWOK_CRD_FILES = ("kwok.x-k8s.io_logs.yaml", "kwok.x-k8s.io_execs.yaml")

H100 = "NVIDIA-H100-80GB-HBM3"
A100 = "NVIDIA-A100-SXM4-40GB"


class ClusterError(RuntimeError):
    """The local cluster could not be built, started or reached."""


class MissingBinaries(ClusterError):
    """A binary or data file that tools/cluster/build.sh makes is not in the cache."""


# ---------------------------------------------------------------------------
# Binaries and data from the cache


def read_versions(path: Path = VERSIONS_FILE) -> dict[str, str]:
    versions: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            versions[key.strip()] = value.strip()
    return versions


def cache_dir() -> Path:
    if os.environ.get("VLLMBENCH_CACHE_DIR"):
        return Path(os.environ["VLLMBENCH_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vllmbench"


@dataclass(frozen=True)
class Toolset:
    """Paths of everything build.sh puts in the cache, for the pinned versions."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    kwok: Path
    kustomize: Path
    kwok_crds: Path
    knative_crds: Path

    @classmethod
    def from_cache(cls, cache: Path | None = None) -> "Toolset":
        v = read_versions()
        cache = cache or cache_dir()
        bin_dir, data = cache / "bin", cache / "cluster-data"
        k8s = v["KUBERNETES_VERSION"]
        tools = cls(
            etcd=bin_dir / f"etcd-{v['ETCD_VERSION']}",
            kube_apiserver=bin_dir / f"kube-apiserver-{k8s}",
            kube_controller_manager=bin_dir / f"kube-controller-manager-{k8s}",
            kube_scheduler=bin_dir / f"kube-scheduler-{k8s}",
            kubectl=bin_dir / f"kubectl-{k8s}",
            kwok=bin_dir / f"kwok-{v['KWOK_VERSION']}",
            kustomize=bin_dir / f"kustomize-{v['KUSTOMIZE_VERSION']}",
            kwok_crds=data / f"kwok-{v['KWOK_VERSION']}",
            knative_crds=data
            / f"knative-serving-{v['KNATIVE_SERVING_VERSION']}-eventing-{v['KNATIVE_EVENTING_RELEASE']}",
        )
        missing = [str(p) for p in asdict(tools).values() if not Path(p).exists()]
        if missing:
            raise MissingBinaries(
                "the local cluster's binaries are not built: missing "
                + ", ".join(missing)
                + ". Run `make cluster-tools` (or tools/cluster/build.sh) once; "
                "it builds them from Go modules into the cache."
            )
        return tools


# ---------------------------------------------------------------------------
# Nodes


@dataclass(frozen=True)
class NodeSpec:
    name: str
    gpus: int = 0
    gpu_product: str | None = None
    cpu: str = "32"
    memory: str = "256Gi"
    pods: int = 110
    labels: dict[str, str] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "type": "kwok",
        }
        capacity = {"cpu": self.cpu, "memory": self.memory, "pods": str(self.pods)}
        if self.gpus:
            capacity["nvidia.com/gpu"] = str(self.gpus)
            labels["nvidia.com/gpu.present"] = "true"
            labels["nvidia.com/gpu.count"] = str(self.gpus)
            if self.gpu_product:
                labels["nvidia.com/gpu.product"] = self.gpu_product
        labels.update(self.labels)
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": labels,
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            },
            "status": {"capacity": capacity, "allocatable": dict(capacity)},
        }


DEFAULT_NODES = (
    NodeSpec("gpu-h100-0", gpus=8, gpu_product=H100, cpu="96", memory="1Ti"),
    NodeSpec("gpu-h100-1", gpus=8, gpu_product=H100, cpu="96", memory="1Ti"),
    NodeSpec("gpu-a100-0", gpus=4, gpu_product=A100, cpu="64", memory="512Gi"),
    NodeSpec("gpu-a100-1", gpus=4, gpu_product=A100, cpu="64", memory="512Gi"),
    NodeSpec("cpu-0", cpu="32", memory="128Gi"),
)


# ---------------------------------------------------------------------------
# Certificates (openssl, EC P-256: fast to generate)


def _openssl(*args: str, cwd: Path) -> None:
    try:
        subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise ClusterError("openssl is needed to make the local cluster's certificates") from exc
    except subprocess.CalledProcessError as exc:
        raise ClusterError(f"openssl {args[0]} failed: {exc.stderr.strip()}") from exc


def make_pki(pki: Path) -> None:
    pki.mkdir(parents=True, exist_ok=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
             "-subj", "/CN=vllmbench-local-ca", cwd=pki)
    (pki / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc,IP:10.96.0.1\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
    )
    (pki / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, subject, ext in (
        ("apiserver", "/CN=kube-apiserver", "server.ext"),
        # Also serves kwok's kubelet endpoint (logs, exec) on 127.0.0.1.
        ("kubelet", "/CN=kwok-kubelet", "server.ext"),
        ("admin", "/O=system:masters/CN=vllmbench-admin", "client.ext"),
    ):
        _openssl("req", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=pki)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "3650", "-extfile", ext, "-out", f"{name}.crt", cwd=pki)
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "sa.key", cwd=pki)
    _openssl("ec", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, server: str, pki: Path, name: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": _b64(pki / "ca.crt")}}],
        "users": [{"name": f"{name}-admin", "user": {
            "client-certificate-data": _b64(pki / "admin.crt"),
            "client-key-data": _b64(pki / "admin.key"),
        }}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-admin"}}],
        "current-context": name,
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)


# ---------------------------------------------------------------------------
# A small REST client (the control plane must start before the venv has kubernetes)


class Api:
    def __init__(self, server: str, pki: Path):
        self.server = server
        self.ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        self.ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))

    def request(self, method: str, path: str, body: Any = None, *, content_type: str = "application/json",
                timeout: float = 10) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            with exc:  # holds the connection open until closed
                detail = exc.read().decode(errors="replace")[:500]
            raise ClusterError(f"{method} {path}: HTTP {exc.code}: {detail}") from exc
        return json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode()

    def apply(self, obj: dict[str, Any], *, dry_run: bool = False, field_manager: str = FIELD_MANAGER,
              path: str | None = None) -> Any:
        """Server-side apply of one object; unknown fields are errors (fieldValidation=Strict).

        `path` is the object's URL path when its plural is irregular (from discovery).
        """
        query = f"?fieldManager={field_manager}&force=true&fieldValidation=Strict"
        if dry_run:
            query += "&dryRun=All"
        return self.request("PATCH", (path or object_path(obj)) + query, obj, content_type="application/apply-patch+yaml")

    def ok(self, path: str) -> bool:
        try:
            self.request("GET", path, timeout=2)
            return True
        except (ClusterError, OSError):
            return False


_CORE_PLURALS = {"Node": "nodes", "Namespace": "namespaces", "CustomResourceDefinition": "customresourcedefinitions"}


def object_path(obj: dict[str, Any]) -> str:
    api_version, kind = obj["apiVersion"], obj["kind"]
    plural = _CORE_PLURALS.get(kind) or kind.lower() + "s"
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    namespace = obj["metadata"].get("namespace")
    if namespace:
        base += f"/namespaces/{namespace}"
    return f"{base}/{plural}/{obj['metadata']['name']}"


def load_yaml_documents(paths: Iterable[Path]) -> list[dict[str, Any]]:
    import yaml  # PyYAML: the only dependency beyond the standard library

    docs: list[dict[str, Any]] = []
    for path in sorted(paths):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


# ---------------------------------------------------------------------------
# The cluster


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class State:
    """What `up` leaves in <dir>/state.json, so that `down` (another process) can stop it."""

    server: str
    kubeconfig: str
    ports: dict[str, int]
    pids: dict[str, int]
    binaries: dict[str, str]


class LocalCluster:
    """The control plane in one folder. `start()` returns once it is usable."""

    COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")

    def __init__(self, workdir: Path | str, *, tools: Toolset | None = None, name: str = "vllmbench-local",
                 die_with_parent: bool = False):
        """`die_with_parent`: the components are killed when this process dies, even by
        SIGKILL (tests); otherwise they outlive it (`make cluster`)."""
        self.die_with_parent = die_with_parent
        self.workdir = Path(workdir).resolve()
        self.name = name
        self.tools = tools
        self.pki = self.workdir / "pki"
        self.kubeconfig = self.workdir / "kubeconfig"
        self.logs = self.workdir / "logs"
        self.state_file = self.workdir / "state.json"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._log_files: list[Any] = []
        self.server = ""
        self.api: Api | None = None

    # -- lifecycle ------------------------------------------------------------

    def start(self, *, nodes: Iterable[NodeSpec] = DEFAULT_NODES, timeout: float = 90,
              attempts: int = 3) -> "LocalCluster":
        """Start the cluster; a start that fails (a component that died on a loaded machine)
        is stopped and tried again from scratch, up to ``attempts`` times."""
        nodes = tuple(nodes)
        for attempt in range(1, attempts + 1):
            try:
                return self._start_once(nodes=nodes, timeout=timeout)
            except ClusterError as exc:
                if attempt == attempts:
                    raise
                print(f"localcluster: start {attempt} of {attempts} failed, trying again: {str(exc)[:300]}",
                      file=sys.stderr, flush=True)
        raise AssertionError("unreachable")

    def _start_once(self, *, nodes: Iterable[NodeSpec], timeout: float) -> "LocalCluster":
        tools = self.tools or Toolset.from_cache()
        self.tools = tools
        started = time.monotonic()
        deadline = started + timeout
        for sub in ("etcd", "kwok", "pki"):
            shutil.rmtree(self.workdir / sub, ignore_errors=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        make_pki(self.pki)
        ports = {k: free_port() for k in ("etcd", "etcd_peer", "apiserver", "controller_manager", "scheduler", "kwok")}
        self.server = f"https://127.0.0.1:{ports['apiserver']}"
        write_kubeconfig(self.kubeconfig, self.server, self.pki, self.name)
        self.api = Api(self.server, self.pki)
        kwok_config = self._write_kwok_config()
        pki = self.pki
        try:
            etcd_url = f"http://127.0.0.1:{ports['etcd']}"
            peer_url = f"http://127.0.0.1:{ports['etcd_peer']}"
            self._spawn("etcd", [
                str(tools.etcd), "--name=node0", f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=node0={peer_url}", "--unsafe-no-fsync=true",
                "--auto-compaction-retention=1", "--quota-backend-bytes=2147483648", "--log-level=warn",
            ])
            self._wait(deadline, "etcd to answer /health", lambda: _http_ok(f"{etcd_url}/health"))
            self._spawn("kube-apiserver", [
                str(tools.kube_apiserver), f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={ports['apiserver']}",
                f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--service-account-key-file={pki / 'sa.pub'}", f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--kubelet-client-certificate={pki / 'admin.crt'}", f"--kubelet-client-key={pki / 'admin.key'}",
                "--kubelet-preferred-address-types=InternalIP",
                "--service-cluster-ip-range=10.96.0.0/16",
                # The endpoints of the `kubernetes` Service may not be loopback; nothing here uses them.
                "--endpoint-reconciler-type=none",
                "--authorization-mode=Node,RBAC", "--allow-privileged=true",
                "--enable-priority-and-fairness=false", "--profiling=false", "--v=1",
            ])
            # The controllers give up when the API server does not answer yet (seen on a loaded
            # machine: "connection refused" reading the request-header CA): start them after it.
            self._wait(deadline, "kube-apiserver to answer /readyz", lambda: self.api.ok("/readyz"))
            ctrl_common = [f"--kubeconfig={self.kubeconfig}", f"--authentication-kubeconfig={self.kubeconfig}",
                           f"--authorization-kubeconfig={self.kubeconfig}", "--bind-address=127.0.0.1",
                           "--leader-elect=false", "--profiling=false", "--v=1"]
            self._spawn("kube-controller-manager", [
                str(tools.kube_controller_manager), *ctrl_common, f"--secure-port={ports['controller_manager']}",
                f"--root-ca-file={pki / 'ca.crt'}", f"--service-account-private-key-file={pki / 'sa.key'}",
                "--use-service-account-credentials=false", "--kube-api-qps=200", "--kube-api-burst=400",
                "--concurrent-job-syncs=10",
            ])
            self._spawn("kube-scheduler", [
                str(tools.kube_scheduler), *ctrl_common, f"--secure-port={ports['scheduler']}",
            ])
            self._wait(deadline, "kube-apiserver to answer /readyz", lambda: self.api.ok("/readyz"))
            crds = load_yaml_documents(tools.kwok_crds / f for f in KWOK_CRD_FILES)
            self._apply_all(crds)
            self._wait_established(crds, deadline)
            self._spawn("kwok", [
                str(tools.kwok), f"--kubeconfig={self.kubeconfig}", f"--config={kwok_config}",
                "--manage-all-nodes=true", f"--enable-crds={','.join(KWOK_CRDS_FROM_API)}",
                f"--tls-cert-file={pki / 'kubelet.crt'}", f"--tls-private-key-file={pki / 'kubelet.key'}",
                "--node-ip=127.0.0.1", "--node-name=localhost", f"--node-port={ports['kwok']}",
                f"--server-address=127.0.0.1:{ports['kwok']}", "--node-lease-duration-seconds=40",
            ])
            knative = load_yaml_documents(tools.knative_crds.glob("*.yaml"))
            knative = [d for d in knative if d.get("kind") == "CustomResourceDefinition"]
            self._apply_all(knative)
            for node in nodes:
                self.api.apply(node.manifest())
            self._write_state(ports)
            self._wait_established(knative, deadline)
            node_names = [n.name for n in nodes]
            self._wait(deadline, "the kwok nodes to be Ready", lambda: self._nodes_ready(node_names))
            self._wait(deadline, "the default ServiceAccount (controller-manager running)",
                       lambda: self.api.ok("/api/v1/namespaces/default/serviceaccounts/default"))
            self._wait(deadline, "kube-scheduler to be healthy", lambda: _https_ok(ports["scheduler"], "/healthz"))
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        """Stop every component: ours (Popen) or a previous `up`'s (state.json).

        Nothing is kept between runs (start() wipes etcd's data), so a component that
        does not stop within a few seconds of SIGTERM is killed. etcd goes last: the
        API server waits for it while shutting down.
        """
        pids: dict[str, int] = {name: p.pid for name, p in self._procs.items()}
        if not pids and self.state_file.exists():
            pids = json.loads(self.state_file.read_text()).get("pids", {})
        order = [c for c in reversed(self.COMPONENTS) if c in pids]
        for batch in ([c for c in order if c != "etcd"], [c for c in order if c == "etcd"]):
            for name in batch:
                _signal(pids[name], signal.SIGTERM, expect=self._binary_of(name))
            for name in batch:
                proc = self._procs.get(name)
                if proc is None:
                    _wait_gone(pids[name], timeout=5, expect=self._binary_of(name))
                    continue
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._procs.clear()
        for f in self._log_files:
            f.close()
        self._log_files.clear()
        self.state_file.unlink(missing_ok=True)

    def running(self) -> bool:
        if not self.state_file.exists():
            return False
        state = json.loads(self.state_file.read_text())
        return all(_alive(pid) for pid in state["pids"].values())

    # -- helpers ---------------------------------------------------------------

    def _binary_of(self, name: str) -> str:
        return {"etcd": "etcd", "kwok": "kwok"}.get(name, name)

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._log_files.append(log)
        self._procs[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=self.workdir, start_new_session=True,
            preexec_fn=_kill_me_with_parent if self.die_with_parent else None,
        )

    def _check_alive(self) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-2000:]
                raise ClusterError(f"{name} exited with code {proc.returncode}; last lines of its log:\n{tail}")

    def _wait(self, deadline: float, what: str, check: Any) -> None:
        delay = 0.05
        while True:
            self._check_alive()
            if check():
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"timed out waiting for {what}; logs are in {self.logs}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def _apply_all(self, docs: list[dict[str, Any]]) -> None:
        assert self.api is not None
        for doc in docs:
            self.api.apply(doc)

    def _wait_established(self, crds: list[dict[str, Any]], deadline: float) -> None:
        def established() -> bool:
            for crd in crds:
                obj = self.api.request("GET", object_path(crd))
                # a CRD just created may have "status": {"conditions": null} for a moment (seen on a loaded machine)
                conds = {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions") or []}
                if conds.get("Established") != "True":
                    return False
            return True

        self._wait(deadline, "the CustomResourceDefinitions to be established", established)

    def _nodes_ready(self, names: list[str]) -> bool:
        nodes = self.api.request("GET", "/api/v1/nodes")["items"]
        ready = {
            n["metadata"]["name"]
            for n in nodes
            if any(c["type"] == "Ready" and c["status"] == "True" for c in (n.get("status") or {}).get("conditions") or [])
        }
        return set(names) <= ready

    def _write_kwok_config(self) -> Path:
        """kwok.yaml with this cluster's paths: the default log file and exec's work dir."""
        kwok_dir = self.workdir / "kwok"
        (kwok_dir / "exec").mkdir(parents=True, exist_ok=True)
        default_log = kwok_dir / "default.log"
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
        default_log.write_text(
            f"{stamp} stdout F kwok: this pod runs on a simulated node; its container does not execute\n"
            f"{stamp} stdout F kwok: create a kwok.x-k8s.io/v1alpha1 Logs object named after the pod to give it a log file\n"
        )
        text = KWOK_CONFIG_TEMPLATE.read_text()
        text = text.replace("@DEFAULT_LOG@", str(default_log)).replace("@EXEC_DIR@", str(kwok_dir / "exec"))
        path = kwok_dir / "kwok.yaml"
        path.write_text(text)
        return path

    def _write_state(self, ports: dict[str, int]) -> None:
        assert self.tools is not None
        state = State(
            server=self.server, kubeconfig=str(self.kubeconfig), ports=ports,
            pids={n: p.pid for n, p in self._procs.items()},
            binaries={k: str(v) for k, v in asdict(self.tools).items()},
        )
        self.state_file.write_text(json.dumps(asdict(state), indent=2) + "\n")


def _kill_me_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGKILL it when its parent dies."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _https_ok(port: int, path: str) -> bool:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the component's self-signed serving cert; loopback only
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", context=ctx, timeout=2) as resp:
            return resp.status == 200
    except urllib.error.HTTPError as exc:
        exc.close()
        return False
    except (urllib.error.URLError, OSError):
        return False


def _alive(pid: int) -> bool:
    """True while pid runs; a zombie (exited, not yet reaped by its parent) is dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _signal(pid: int, sig: int, *, expect: str) -> None:
    """Signal pid only if it still runs the binary we started (pids get reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return
    if expect not in Path(cmdline).name:
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_gone(pid: int, timeout: float, *, expect: str) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        _signal(pid, signal.SIGKILL, expect=expect)


# ---------------------------------------------------------------------------
# Command line (tools/cluster/cluster.sh)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--dir", default=str(REPO_ROOT / ".data" / "cluster"))
    args = parser.parse_args(argv)
    cluster = LocalCluster(args.dir)
    if args.command == "status":
        print("running" if cluster.running() else "stopped")
        return 0 if cluster.running() else 1
    if args.command == "down":
        cluster.stop()
        print(f"cluster in {cluster.workdir} stopped")
        return 0
    if cluster.running():
        print(f"cluster already running in {cluster.workdir}")
    else:
        cluster.stop()  # leftovers of a crashed run
        try:
            cluster.start()
        except ClusterError as exc:
            print(f"cluster: {exc}", file=sys.stderr)
            return 1
        # The components outlive this process (own session); forget them here.
        for f in cluster._log_files:
            f.close()
        cluster._procs.clear()
        print(f"cluster started in {cluster.startup_seconds:.1f}s ({cluster.server})")
    kubectl = Toolset.from_cache().kubectl
    print(f"  export KUBECONFIG={cluster.kubeconfig}")
    print(f"  alias kubectl={kubectl}   # if you have no kubectl of your own")
    print("  kubectl get nodes -L nvidia.com/gpu.product   # 4 GPU nodes + 1 CPU node, simulated by kwok")
    print("  make cluster-down                              # stop it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
