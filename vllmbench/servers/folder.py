"""The ``models/`` folder: ModelServer files, read from Git or written from a request. Pure.

Layout: ``models/<namespace>/<server>.yaml``, one spec per file. The folder names the
server's namespace and the file its name; a spec that says otherwise is refused. A file
is valid when its spec validates, the planner has the model's architecture facts (the
spec's ``model`` section or the catalog) and the parallelism suits the model: the
checks a deploy runs before committing, so that a request that fails them commits
nothing and a person's commit that fails them is held (its server keeps what it had).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from vllmbench.errors import ValidationFailed
from vllmbench.models.servers import SLUG, ModelFacts, ModelServerSpec, parallelism_problem
from vllmbench.placement import facts as model_facts

FOLDER = "models"
CONFIGS = "configs"  # ready-made specs a person keeps in the repository: deployed with POST /deploy-from-file
_SLUG = re.compile(SLUG)
# The default server of POST /deploy-default when the repository has no configs/default.yaml:
# the seed's model, on CPU, so that it runs anywhere (the simulator stands in for vLLM here).
DEFAULT_CONFIG: dict[str, Any] = {
    "model_name": "facebook/opt-125m", "served_model_name": "opt-125m", "gpu_resource_type": "cpu",
    "max_model_len": 2048, "max_num_seqs": 32, "priority": 10,
}


@dataclass(frozen=True)
class ServerFile:
    """One valid ModelServer as Git (or a request) holds it."""

    namespace: str
    name: str
    path: str
    spec: ModelServerSpec
    facts: ModelFacts
    facts_source: str
    digest: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def id(self) -> str:
        """The id of the original service's routes (``/deployments/<id>``): ``<namespace>.<server>``."""
        return server_id(self.key)


def server_id(key: str) -> str:
    return key.replace("/", ".", 1)


def key_of(server: str) -> str:
    """``<namespace>.<server>`` (or ``<namespace>/<server>``) as a key; a bare name stays bare."""
    return server.replace(".", "/", 1) if "." in server else server


def path_of(namespace: str, name: str) -> str:
    return f"{FOLDER}/{namespace}/{name}.yaml"


def split_path(path: str) -> tuple[str, str] | None:
    """``(namespace, name)`` of ``models/<namespace>/<name>.yaml``; None for anything else."""
    match = re.fullmatch(rf"{FOLDER}/([^/]+)/([^/]+)\.ya?ml", path)
    return (match[1], match[2]) if match else None


def digest(spec: ModelServerSpec) -> str:
    """What the spec says, defaults included: equal specs written differently hash the same."""
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


def load(value: Any, *, namespace: str, name: str, path: str, where: tuple[str, ...] = ()) -> ServerFile:
    """A :class:`ServerFile` from a parsed spec; 422 naming each wrong field (prefixed by ``where``)."""
    problems: list[dict[str, Any]] = []
    for what, slug in (("namespace", namespace), ("name", name)):
        if not _SLUG.match(slug):
            problems.append(_detail(where + (what,), f"{slug!r} is not a valid server {what}",
                                    "lower case letters, digits and '-', at most 63"))
    if not isinstance(value, dict):
        raise _failed([_detail(where, f"a ModelServer is a mapping, not {type(value).__name__}", "ModelServerSpec")])
    try:
        spec = ModelServerSpec.model_validate(value)
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_input=False):
            expected = "no such field: unknown fields are refused" if error["type"] == "extra_forbidden" else \
                error["msg"].removeprefix("Input should be ")
            problems.append(_detail(where + tuple(str(p) for p in error["loc"]), error["msg"], expected))
        raise _failed(problems) from exc
    for what, given, wanted in (("name", spec.name, name), ("namespace", spec.namespace, namespace)):
        if given is not None and given != wanted:
            problems.append(_detail(where + (what,), f"{what} {given!r} differs from {wanted!r}, the "
                                    f"{'file' if what == 'name' else 'folder'} it is in ({path})", wanted))
    try:
        facts, source = model_facts.resolve(spec)
    except ValidationFailed as exc:
        problems.append(_detail(where + ("model",), exc.message, "architecture facts: a 'model' section or a "
                                "model of the catalog"))
        raise _failed(problems) from exc
    problem = parallelism_problem(facts, spec.tensor_parallel_size, spec.pipeline_parallel_size)
    if problem:
        problems.append(_detail(where + (problem[0],), f"{problem[0]} {problem[1]}", "a parallelism vLLM accepts"))
    if problems:
        raise _failed(problems)
    return ServerFile(namespace, name, path, spec, facts, source, digest(spec))


def parse_file(path: str, data: bytes) -> ServerFile:
    """One file of ``models/``; 422 naming the file and the field."""
    located = split_path(path)
    if located is None:
        raise _failed([_detail((path,), f"{path}: ModelServer files go in {FOLDER}/<namespace>/<server>.yaml",
                               f"{FOLDER}/<namespace>/<server>.yaml")])
    return load(parse_yaml(path, data), namespace=located[0], name=located[1], path=path, where=(path,))


def parse_yaml(path: str, data: bytes) -> Any:
    from gitops.yamldoc import InvalidYaml, parse_documents

    try:
        documents = parse_documents(data.decode("utf-8"), path=path)
    except UnicodeDecodeError:
        raise _failed([_detail((path,), f"{path}: not UTF-8 text", "YAML")]) from None
    except InvalidYaml as exc:
        raise _failed([_detail((path,), exc.message, "valid YAML")]) from exc
    if len(documents) != 1:
        raise _failed([_detail((path,), f"{path}: a ModelServer file holds one document, found {len(documents)}",
                               "one ModelServerSpec mapping")])
    return documents[0]


def read_folder(files: dict[str, bytes]) -> tuple[dict[str, ServerFile], dict[str, list[dict[str, Any]]]]:
    """The valid servers of the folder (by key) and the problems of every other file (by path)."""
    servers: dict[str, ServerFile] = {}
    problems: dict[str, list[dict[str, Any]]] = {}
    for path, data in sorted(files.items()):
        try:
            found = parse_file(path, data)
        except ValidationFailed as exc:
            problems[path] = exc.details
            continue
        if found.key in servers:  # models/a/x.yaml and models/a/x.yml
            problems[path] = [_detail((path,), f"{found.key} is defined in {servers[found.key].path} already",
                                      "each server in one file")]
            continue
        servers[found.key] = found
    return servers, problems


def dump(spec: ModelServerSpec, *, source: str) -> bytes:
    """The file a request commits: the fields it gave, in the spec's order (the path carries name and namespace)."""
    given = spec.model_dump(mode="json", exclude_unset=True, exclude={"name", "namespace"})
    header = f"# A vLLM server (ModelServer spec, docs/placement.md), {source}.\n"
    return (header + yaml.safe_dump(given, sort_keys=False, default_flow_style=False)).encode()


def default_name(spec: ModelServerSpec) -> str:
    """A server name from the served name or the model: ``facebook/opt-125m`` -> ``opt-125m``."""
    base = spec.served_name.rsplit("/", 1)[-1].lower()
    name = re.sub(r"[^a-z0-9-]+", "-", base).strip("-")[:63].strip("-")
    return name or "server"


def _detail(loc: tuple[str, ...], msg: str, expected: str) -> dict[str, Any]:
    return {"loc": ".".join(loc) or "(body)", "msg": msg, "expected": expected}


def _failed(problems: list[dict[str, Any]]) -> ValidationFailed:
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return ValidationFailed(f"{first['loc']}: {first['msg']}{more}; nothing was committed", details=problems)
