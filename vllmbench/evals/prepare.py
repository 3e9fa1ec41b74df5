"""Turning a request (``POST /evaluate``, a schedule firing, the deployer's ``POST /run``) into a
new evaluation, checking everything that can be checked before answering: the project and
profile exist in the Manager's synced snapshot, the template exists and renders, the
server exists in Git (or a URL is given). Nothing is stored when one of them fails (422
with the reason)."""

from __future__ import annotations

import datetime as dt
import secrets
from importlib import resources
from typing import Any

import yaml

from vllmbench.errors import NotFound, UserError, ValidationFailed
from vllmbench.evals import machine, templates
from vllmbench.models.evaluations import EvaluateRequest
from vllmbench.services import Service

PLACEHOLDER_URL = "http://server.invalid:8000"


def _refuse(field: str, message: str, expected: str) -> ValidationFailed:
    return ValidationFailed.at(f"body.{field}", message, expected)


def builtin_template(name: str) -> templates.Template:
    try:
        text = resources.files("vllmbench.evals.builtin").joinpath(f"{name}.yaml").read_text()
    except (FileNotFoundError, OSError):
        known = sorted(p.name[:-5] for p in resources.files("vllmbench.evals.builtin").iterdir()
                       if p.name.endswith(".yaml"))
        raise _refuse("template", f"no built-in template {name!r}", "one of " + ", ".join(f"builtin:{k}" for k in known)) from None
    return templates.load(text, path=f"builtin:{name}")


def manager_file(manager: Service, project: str, path: str) -> str | None:
    """A file of the project's synced snapshot, or None when it does not exist."""
    try:
        answer = manager.get(f"/projects/{project}/files/{path}")
    except NotFound:
        return None
    return answer.get("content")


def load_profile(manager: Service, project: str, benchmark: str) -> tuple[dict[str, Any], str | None]:
    from gitops.kinds import BenchmarkSpec

    try:
        manager.get(f"/projects/{project}")
    except NotFound:
        raise _refuse("project", f"no project {project!r} on the Manager; GET /projects there lists them",
                      "a registered project") from None
    for suffix in ("yaml", "yml"):
        text = manager_file(manager, project, f"benchmarks/{benchmark}.{suffix}")
        if text is not None:
            break
    else:
        raise _refuse("benchmark", f"project {project!r} has no benchmark profile {benchmark!r} "
                      f"(benchmarks/{benchmark}.yaml at its last sync)", "a profile of the project")
    try:
        spec = BenchmarkSpec.model_validate(yaml.safe_load(text))
    except Exception as exc:  # noqa: BLE001 - a YAML or validation error: the profile is broken
        raise _refuse("benchmark", f"benchmarks/{benchmark}.yaml of project {project!r} is not a valid profile: "
                      f"{str(exc)[:300]}", "a profile that validates (see GET /projects/{id}/files)") from exc
    return spec.model_dump(mode="json", exclude_none=True), spec.server


def load_template(manager: Service, project: str, name: str) -> templates.Template:
    if name.startswith("builtin:"):
        return builtin_template(name.split(":", 1)[1])
    for suffix in ("yaml", "yml"):
        text = manager_file(manager, project, f"templates/{name}.{suffix}")
        if text is not None:
            return templates.load(text, path=f"projects/{project}/templates/{name}.{suffix}")
    raise _refuse("template", f"project {project!r} has no template {name!r} (templates/{name}.yaml); "
                  "or use builtin:vllmbench, builtin:guidellm, builtin:vllm-bench-serve, builtin:lm-eval",
                  "a template of the project or a built-in one")


def load_server(settings: Any, server: str) -> dict[str, Any]:
    """The ModelServer ``<namespace>/<name>`` from the configuration repository's models/ folder."""
    from gitops import installation
    from vllmbench.models.servers import ModelServerSpec

    namespace, name = server.split("/", 1)
    with installation.open_repository(settings) as repo:
        commit = installation.head(repo)
        folder = installation.read_folder(repo, commit, f"models/{namespace}")
    for path, data in folder.files.items():
        document = yaml.safe_load(data.decode("utf-8", "replace")) or {}
        if isinstance(document, dict) and (document.get("name") == name or path.rsplit("/", 1)[-1].split(".")[0] == name):
            try:
                spec = ModelServerSpec.model_validate(document)
            except Exception as exc:  # noqa: BLE001
                raise _refuse("server", f"{path} is not a valid ModelServer: {str(exc)[:300]}", "a valid ModelServer") from exc
            served = getattr(spec, "served_model_name", None) or getattr(spec, "model_name", None)
            return {"namespace": namespace, "name": name, "path": path, "commit": commit,
                    "model": served, "spec": spec.model_dump(mode="json", exclude_none=True)}
    raise _refuse("server", f"no ModelServer {server!r} in models/{namespace}/ of the configuration repository",
                  "a ModelServer in Git, or target_url")


def evaluation_id(benchmark: str, now: dt.datetime) -> str:
    return f"{benchmark}-{now.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"[:63]


def prepare(settings: Any, body: EvaluateRequest, *, now: dt.datetime, manager: Service,
            schedule: str | None = None, evaluation_id_: str | None = None) -> dict[str, Any]:
    original = body.project is None and body.benchmark is None
    project = body.project or settings.eval_default_project
    benchmark = body.benchmark or settings.eval_default_benchmark
    if not project:
        raise _refuse("project", "project is needed (or set VLLMBENCH_EVAL_DEFAULT_PROJECT)", "a registered project")
    if not benchmark:
        raise _refuse("benchmark", "benchmark is needed (or set VLLMBENCH_EVAL_DEFAULT_BENCHMARK)",
                      "a profile of the project")
    profile, profile_server = load_profile(manager, project, benchmark)
    harness = body.harness or (profile.get("harness") or {}).get("name") or "vllmbench"
    template = load_template(manager, project, body.template or f"builtin:{harness}")
    server, url, model = None, body.url, body.model_name or profile.get("model")
    if url is None:
        wanted = body.server or profile_server
        if not wanted:
            raise _refuse("server", f"the profile {benchmark!r} names no server: give a server (<namespace>/<name>) "
                          "or a target_url", "a ModelServer in Git, or target_url")
        found = load_server(settings, wanted)
        server = {k: found[k] for k in ("namespace", "name", "path", "commit")}
        model = found["model"] or model
    repeat = body.repeat if body.repeat != 1 else int(profile.get("repeat") or 1)
    delay = body.delay_minutes if body.delay_minutes is not None else (
        settings.evaluation_delay_minutes if original else 0.0)
    at = body.at or now + dt.timedelta(minutes=delay)
    at = at if at.tzinfo else at.replace(tzinfo=dt.timezone.utc)
    eid = evaluation_id_ or body.name or evaluation_id(benchmark, now)
    namespace = settings.workload_namespaces[0] if settings.workload_namespaces else "default"
    request = {"project": project, "benchmark": benchmark, "profile": profile, "template": template.path,
               "template_text": template.job, "template_harness": template.harness, "template_line": template.job_line,
               "harness": template.harness, "repeat": repeat, "baseline": body.baseline, "labels": body.labels,
               "namespace": namespace, "threshold_percent": float((profile.get("verdict") or {}).get(
                   "threshold_percent", 5.0)), "verdict_metrics": (profile.get("verdict") or {}).get("metrics"),
               "pods": templates.client_pods(template, profile), "shard_lead_s": float(settings.eval_shard_lead_s)}
    ev = machine.new(eid, request=request, at=at, timeout_s=body.timeout_s or settings.eval_timeout_s,
                     repeats=repeat, now=now, server=server, target_url=url, model=model, schedule=schedule)
    ev["key"] = f"{project}/{benchmark}/{(server or {}).get('namespace', '')}/{(server or {}).get('name', url)}"
    ev["project"] = project
    try:
        render_job(settings, ev, 0, server_url=url or PLACEHOLDER_URL)  # renders now: a bad template is a 422
    except ValueError as exc:
        raise _refuse("template", str(exc), "a template that renders") from exc
    return ev


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def template_of(ev: dict[str, Any]) -> templates.Template:
    request = ev["request"]
    return templates.Template(name=request["template"], harness=request["template_harness"],
                              job=request["template_text"], path=request["template"],
                              job_line=request.get("template_line", 1))


def render_job(settings: Any, ev: dict[str, Any], index: int, *, server_url: str | None = None) -> dict[str, Any]:
    """The Job of repeat ``index`` (the template stored with the evaluation: Git may move on meanwhile)."""
    request = ev["request"]
    repeat = ev["repeats"][index]
    name = templates.job_name(ev["_id"], index)
    values = {
        "job_name": name, "namespace": request["namespace"], "evaluation_id": ev["_id"], "repeat": index,
        "repeats": len(ev["repeats"]), "run_id": repeat["run_id"], "project": request["project"],
        "benchmark_name": request["benchmark"], "benchmark": request["profile"],
        "model": ev.get("model") or request["profile"].get("model") or "",
        "server_url": server_url or ev.get("server_url") or PLACEHOLDER_URL,
        "results_url": settings.results_url.rstrip("/"), "image": settings.harness_image,
        "token_secret": settings.harness_token_secret, "deadline_s": int(settings.eval_timeout_s),
        "tags": [f"evaluation:{ev['_id']}"] + ([f"schedule:{ev['schedule']}"] if ev.get("schedule") else []),
        "labels": {"vllmbench.dev/evaluation": ev["_id"][:63], "vllmbench.dev/repeat": str(index)},
        # Load beyond one client: the pods of an Indexed Job, each a shard of the schedule from start_at on
        "pods": int(request.get("pods") or 1),
        "start_at": round(_aware(ev["start_at"]).timestamp(), 3) if ev.get("start_at") else 0.0,
    }
    try:
        job = templates.render(template_of(ev), values)
    except ValidationFailed:
        raise
    except UserError as exc:
        raise ValueError(exc.message) from exc
    job.setdefault("metadata", {})["name"] = name
    job["metadata"]["namespace"] = request["namespace"]
    return job
