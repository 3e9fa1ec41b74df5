"""vllmbench's own manifests: they render, validate, and a real API server accepts them."""

from __future__ import annotations

import re
from typing import Any

import kubernetes_validate
import pytest
import yaml

from eventing.types import SERVICES
from tests.fixtures.cluster import REPO_ROOT
from tests.k8s.conftest import TARGETS, by_kind

pytestmark = pytest.mark.k8s

KUBERNETES_SCHEMA_VERSION = "1.37.0"

# function folder -> (Knative Service, stable port): the one table the embedded stack uses too
FUNCTIONS = SERVICES
WORKLOAD_MANAGERS = {"benchmark-deployer", "benchmark-vllm", "benchmark-eval"}


def _eventing_present() -> bool:
    return all((REPO_ROOT / "eventing" / f).exists() for f in ("broker.yaml", "triggers.yaml", "pingsources.yaml"))


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_kustomization_renders(render: Any, target: str) -> None:
    docs = render(target)
    assert docs, f"{target} rendered nothing"
    for doc in docs:
        assert doc.get("apiVersion") and doc.get("kind") and doc.get("metadata", {}).get("name"), doc


@pytest.mark.parametrize("target", ["base", "dev", "prod"])
def test_six_functions_scale_to_zero_behind_their_original_ports(render: Any, target: str) -> None:
    docs = render(target)
    ksvcs = by_kind(docs, "Service", "serving.knative.dev")
    assert set(ksvcs) == {name for name, _ in FUNCTIONS.values()}
    for folder, (name, _port) in FUNCTIONS.items():
        template = ksvcs[name]["spec"]["template"]
        notes = template["metadata"]["annotations"]
        assert notes["autoscaling.knative.dev/min-scale"] == "0"
        assert int(notes["autoscaling.knative.dev/max-scale"]) >= 1
        assert "autoscaling.knative.dev/scale-to-zero-pod-retention-period" in notes
        spec = template["spec"]
        assert 0 < spec["timeoutSeconds"] <= 600
        assert spec["serviceAccountName"] == name
        (container,) = spec["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/health"
        assert container["resources"]["requests"] and container["resources"]["limits"]
        env = {e["name"]: e for e in container["env"]}
        assert env["VLLMBENCH_FUNCTION"]["value"] == folder
        for key in ("MONGO_URL", "VLLMBENCH_API_TOKEN"):
            assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "benchmark-shared-secrets", "key": key}
        assert "functions" in container["image"], "one image for all six functions"

    services = by_kind(docs, "Service", "v1")
    proxy_conf = by_kind(docs, "ConfigMap")["vllmbench-proxy"]["data"]["nginx.conf"]
    proxy_ports = {
        p["containerPort"]
        for c in by_kind(docs, "Deployment")["vllmbench-proxy"]["spec"]["template"]["spec"]["containers"]
        for p in c["ports"]
    }
    for name, port in FUNCTIONS.values():
        svc = services[f"{name}-service"]
        assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(port, port)]
        assert port in proxy_ports
        # The nginx server on that port forwards to that function, and to no other.
        (server,) = [s for s in proxy_conf.split("server {") if f"listen {port};" in s]
        assert re.findall(r"set \$upstream (\S+);", server) == [f"{name}.vllmbench.svc.cluster.local"]


def test_only_deployer_vllm_and_eval_manage_workloads_and_nobody_is_cluster_admin(render: Any) -> None:
    docs = render("prod")
    bindings = [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
             for d in docs if d["kind"] in ("Role", "ClusterRole")}
    write_verbs = {"create", "update", "patch", "delete", "deletecollection", "*"}
    for binding in bindings:
        ref = binding["roleRef"]
        assert ref["name"] not in ("cluster-admin", "admin", "edit"), binding["metadata"]["name"]
        role_ns = binding["metadata"].get("namespace") if ref["kind"] == "Role" else None
        role = roles[(ref["kind"], role_ns, ref["name"])]
        writes = any(set(r["verbs"]) & write_verbs for r in role["rules"])
        subjects = {s["name"] for s in binding["subjects"]}
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"], role["metadata"]["name"]
        if binding["kind"] == "ClusterRoleBinding":
            assert not writes, "no cluster-wide write permission"
        if writes:
            assert subjects <= WORKLOAD_MANAGERS, binding["metadata"]["name"]


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_builtin_kinds_pass_kubernetes_schema_validation(render: Any, target: str) -> None:
    checked = 0
    for doc in render(target):
        if "." in doc["apiVersion"].split("/")[0] and not doc["apiVersion"].startswith(
            ("apps/", "batch/", "policy/", "rbac.authorization.k8s.io/")
        ):
            continue  # a CRD's kind: the API server validates it against the CRD schema below
        try:
            kubernetes_validate.validate(doc, KUBERNETES_SCHEMA_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{target}: {doc['kind']}/{doc['metadata']['name']}: {exc.message}")
        checked += 1
    if target != "eventing":
        assert checked > 10


def _apply_for_real(k8s_cluster: Any, docs: list[dict[str, Any]], kinds: set[str]) -> None:
    for doc in docs:
        if doc["kind"] in kinds:
            k8s_cluster.raw.apply(doc, path=_path(k8s_cluster, doc), field_manager="vllmbench-tests")


def _path(k8s_cluster: Any, doc: dict[str, Any]) -> str:
    resource = k8s_cluster.dynamic.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
    return resource.path(name=doc["metadata"]["name"], namespace=doc["metadata"].get("namespace"))


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_api_server_accepts_every_object_in_a_dry_run(render: Any, k8s_cluster: Any, target: str) -> None:
    docs = render(target)
    # A dry run does not create the namespaces the other objects live in.
    namespaces = {d["metadata"].get("namespace") for d in docs} - {None}
    for ns in sorted(namespaces):
        k8s_cluster.raw.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
                              field_manager="vllmbench-tests")
    failures = []
    for doc in docs:
        try:
            k8s_cluster.raw.apply(doc, dry_run=True, path=_path(k8s_cluster, doc), field_manager="vllmbench-tests")
        except Exception as exc:  # noqa: BLE001 - collect every rejection, report them together
            failures.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc}")
    assert not failures, "\n".join(failures)


def test_a_misspelt_field_is_rejected_by_the_dry_run(render: Any, k8s_cluster: Any) -> None:
    """The dry run above would be worthless if unknown fields passed silently."""
    ksvc = by_kind(render("base"), "Service", "serving.knative.dev")["benchmark-results"]
    bad = yaml.safe_load(yaml.safe_dump(ksvc))
    bad["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {"httpGet": {"path": "/ready"}}
    k8s_cluster.raw.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vllmbench"}},
                          field_manager="vllmbench-tests")
    with pytest.raises(Exception, match="readinessProbes"):
        k8s_cluster.raw.apply(bad, dry_run=True, path=_path(k8s_cluster, bad), field_manager="vllmbench-tests")


def test_rbac_grants_workloads_to_deployer_and_vllm_only(render: Any, k8s_cluster: Any) -> None:
    docs = render("base")
    _apply_for_real(k8s_cluster, docs, {"Namespace"})
    _apply_for_real(k8s_cluster, docs, {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"})
    authz = __import__("kubernetes").client.AuthorizationV1Api(k8s_cluster.api_client)

    def allowed(sa: str, verb: str, resource: str, namespace: str, *, group: str = "", sub: str = "") -> bool:
        review = {
            "spec": {
                "user": f"system:serviceaccount:vllmbench:{sa}",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:vllmbench"],
                "resourceAttributes": {"namespace": namespace, "verb": verb, "group": group,
                                       "resource": resource, "subresource": sub},
            }
        }
        return authz.create_subject_access_review(review).status.allowed

    for sa in WORKLOAD_MANAGERS:
        assert allowed(sa, "create", "deployments", "vllmbench-workloads", group="apps")
        assert allowed(sa, "patch", "jobs", "vllmbench-workloads", group="batch")
        assert allowed(sa, "get", "pods", "vllmbench-workloads", sub="log")
        assert allowed(sa, "create", "pods", "vllmbench-workloads", sub="exec")
        assert not allowed(sa, "create", "deployments", "vllmbench", group="apps")
        assert not allowed(sa, "create", "deployments", "default", group="apps")
        assert not allowed(sa, "get", "secrets", "vllmbench-workloads")
    assert allowed("benchmark-vllm", "list", "nodes", "")
    for name, _ in FUNCTIONS.values():
        if name not in WORKLOAD_MANAGERS:
            assert not allowed(name, "create", "jobs", "vllmbench-workloads", group="batch")
            assert not allowed(name, "get", "pods", "vllmbench-workloads", sub="log")


def test_secret_templates_hold_placeholders_only() -> None:
    for path in sorted((REPO_ROOT / "manifests" / "secrets").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "Secret":
                for key, value in doc.get("stringData", {}).items():
                    credentials_free_url = key == "MONGO_URL" and "@" not in value  # users log in apart
                    assert "CHANGE_ME" in value or key.endswith(("USERNAME", "DATABASE")) or credentials_free_url, \
                        f"{path.name}: {key}"
    shared = yaml.safe_load((REPO_ROOT / "manifests" / "secrets" / "benchmark-shared-secrets.yaml").read_text())
    assert {"MONGO_URL", "GITHUB_TOKEN", "VLLMBENCH_API_TOKEN"} <= set(shared["stringData"])


def test_func_yaml_matches_the_knative_service_it_deploys(render: Any) -> None:
    ksvcs = by_kind(render("base"), "Service", "serving.knative.dev")
    allowed_top = {"specVersion", "name", "runtime", "registry", "image", "namespace", "created", "invoke",
                   "build", "run", "deploy", "domain"}
    for folder, (name, _port) in FUNCTIONS.items():
        func = yaml.safe_load((REPO_ROOT / "functions" / folder / "func.yaml").read_text())
        assert set(func) <= allowed_top and {"specVersion", "created"} <= set(func)
        assert func["name"] == name and func["runtime"] == "python"
        deploy = func["deploy"]
        assert deploy["serviceAccountName"] == name
        notes = ksvcs[name]["spec"]["template"]["metadata"]["annotations"]
        scale = deploy["options"]["scale"]
        assert scale["min"] == int(notes["autoscaling.knative.dev/min-scale"])
        assert scale["max"] == int(notes["autoscaling.knative.dev/max-scale"])
        assert scale["target"] == int(notes["autoscaling.knative.dev/target"])
        envs = {e["name"]: e["value"] for e in func["run"]["envs"]}
        assert envs["VLLMBENCH_FUNCTION"] == folder
        assert envs["MONGO_URL"] == "{{ secret:benchmark-shared-secrets:MONGO_URL }}"
        assert envs["VLLMBENCH_EVENTS_REQUIRE_TOKEN"] == "{{ configMap:vllmbench-config:VLLMBENCH_EVENTS_REQUIRE_TOKEN }}"
        assert deploy["healthEndpoints"] == {"liveness": "/health", "readiness": "/ready"}


def test_base_includes_the_eventing_of_eventing_folder(render: Any) -> None:
    if not _eventing_present():
        pytest.fail("eventing/broker.yaml, triggers.yaml and pingsources.yaml are missing")
    base = {(d["kind"], d["metadata"]["name"]) for d in render("base")}
    eventing = {(d["kind"], d["metadata"]["name"]) for d in render("eventing")}
    assert eventing <= base
    assert any(kind == "Broker" for kind, _ in eventing)


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_functions_accept_broker_events_without_the_token_only_on_cluster_local_routes(render: Any, target: str) -> None:
    # Knative brokers cannot send the API token: without this, every event would be a 401 and dead-lettered.
    docs = render(target)
    config = {name: cm for name, cm in by_kind(docs, "ConfigMap").items() if name.startswith("vllmbench-config")}
    assert len(config) == 1
    (config_name, config_map), = config.items()
    assert config_map["data"]["VLLMBENCH_EVENTS_REQUIRE_TOKEN"] == "false"
    for name, service in by_kind(docs, "Service", "serving.knative.dev").items():
        assert service["metadata"]["labels"]["networking.knative.dev/visibility"] == "cluster-local", name
        container = service["spec"]["template"]["spec"]["containers"][0]
        assert {"configMapRef": {"name": config_name}} in container["envFrom"], name
