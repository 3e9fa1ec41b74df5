"""Job templates of evaluations: Jinja2, sandboxed and strict, rendered into one Kubernetes Job. Pure.

A template is a YAML file (``projects/<p>/templates/<name>.yaml``, or one shipped with
vllmbench under ``builtin:<name>``)::

    name: vllmbench
    description: Our own harness; posts raw and standardized results with the run id.
    harness: vllmbench          # what its output is: vllmbench | guidellm | vllm-bench-serve | lm-eval
    max_rate_per_pod: 400       # optional: above it the stage runs as an Indexed Job of several pods
    job: |                      # Jinja2 text that renders to one batch/v1 Job
      apiVersion: batch/v1
      kind: Job
      metadata: {name: "{{ job_name }}"}
      spec: ...

The ``job`` text is rendered in Jinja2's sandbox (no attribute access to Python
internals, no imports) with ``StrictUndefined``: a missing value is an error that
names it and the line (``projects/demo/templates/x.yaml:14``). The context is
:func:`context`'s; helpers: ``vllmbench_args(profile)`` (the ``vllmbench run`` flags of
a benchmark profile), those of the other harnesses in :mod:`vllmbench.evals.harness_args`,
``tojson``, ``quote`` (a YAML-safe string), ``shell_quote``.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from dataclasses import dataclass
from typing import Any

import yaml

from vllmbench.errors import ValidationFailed
from vllmbench.evals.harness_args import HELPERS

_FIELDS = {"name", "description", "harness", "job", "max_rate_per_pod", "labels"}
HARNESSES = ("vllmbench", "guidellm", "vllm-bench-serve", "lm-eval")
TEMPLATE_NAME = "template"
MAX_CLIENT_PODS = 100
BURSTINESS = 0.5  # a profile's "burst" arrivals: gamma with this shape, for every harness that has one


@dataclass(frozen=True)
class Template:
    name: str
    harness: str
    job: str
    path: str
    job_line: int  # the line of the file where the job text starts
    description: str = ""
    max_rate_per_pod: float | None = None


def _problem(path: str, line: int | None, message: str, expected: str) -> ValidationFailed:
    where = f"{path}:{line}" if line else path
    return ValidationFailed(f"{where}: {message}", details=[{"loc": where, "msg": message, "expected": expected}])


def load(text: str, *, path: str) -> Template:
    """Parse a template file; 422 naming the file and the field when it is not one."""
    try:
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise _problem(path, mark.line + 1 if mark else None, f"not valid YAML: {getattr(exc, 'problem', exc)}",
                       "a YAML mapping") from exc
    if not isinstance(document, dict):
        raise _problem(path, None, "a template is a mapping with name, harness and job", "a mapping")
    unknown = sorted(set(document) - _FIELDS)
    if unknown:
        raise _problem(path, None, f"unknown field(s) {', '.join(unknown)}", f"only {', '.join(sorted(_FIELDS))}")
    job = document.get("job")
    if not isinstance(job, str) or not job.strip():
        raise _problem(path, None, "job must be the Job's YAML as a block of text (job: |)", "a text block")
    harness = document.get("harness")
    if harness not in HARNESSES:
        raise _problem(path, None, f"harness {harness!r} is not one vllmbench can read the output of",
                       f"one of {', '.join(HARNESSES)}")
    rate = document.get("max_rate_per_pod")
    if rate is not None and (not isinstance(rate, (int, float)) or isinstance(rate, bool) or rate <= 0):
        raise _problem(path, None, "max_rate_per_pod must be a positive number", "requests per second")
    job_line = 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == "job":
                # a block scalar starts on the line after "job: |"
                job_line = value.start_mark.line + (2 if value.style in ("|", ">") else 1)
    return Template(name=str(document.get("name") or path.rsplit("/", 1)[-1].rsplit(".", 1)[0]),
                    harness=harness, job=job, path=path, job_line=job_line,
                    description=str(document.get("description") or ""),
                    max_rate_per_pod=float(rate) if rate is not None else None)


def client_pods(template: Template, profile: dict[str, Any]) -> int:
    """How many client pods send the profile's load with this template: its highest stage rate over
    the template's ``max_rate_per_pod``, rounded up. One for a template without that limit, for a
    harness other than ours (only vllmbench's parts can be merged into one run), and for concurrency
    stages (a lane sends its next request when the last one ends: the rate is the server's, known
    only after the run, and one client holds as many lanes as the server can answer)."""
    limit = template.max_rate_per_pod
    stages = [profile["load"], *(profile.get("sweep") or [])]
    if template.harness != "vllmbench" or not limit or any(s.get("mode") != "rate" for s in stages):
        return 1
    top = max(float(s["rate_rps"]) for s in stages)
    pods = max(1, math.ceil(top / limit - 1e-9))
    if pods > MAX_CLIENT_PODS:
        raise _problem(template.path, None, f"a rate of {top:g}/s needs {pods} client pods of max_rate_per_pod "
                       f"{limit:g}; at most {MAX_CLIENT_PODS} are started", f"a rate up to {limit * MAX_CLIENT_PODS:g}/s")
    return pods


def _quote(value: Any) -> str:
    return json.dumps("" if value is None else str(value))


def _length(dist: dict[str, Any] | None, default: str = "128") -> str:
    if not dist:
        return default
    kind, mean = dist.get("kind", "fixed"), dist.get("mean", 128)
    if kind == "uniform" and dist.get("min") is not None and dist.get("max") is not None:
        return f"uniform:{dist['min']}:{dist['max']}"
    if kind == "normal":
        parts = [mean, dist.get("stddev") or 0]
        if dist.get("min") is not None and dist.get("max") is not None:
            parts += [dist["min"], dist["max"]]
        return "normal:" + ":".join(str(p) for p in parts)
    return str(int(mean))


def vllmbench_args(profile: dict[str, Any]) -> list[str]:
    """``vllmbench run`` flags for a benchmark profile (its load, its sweep of the same mode, its SLOs)."""
    stages = [profile["load"], *(profile.get("sweep") or [])]
    modes = {stage["mode"] for stage in stages}
    if len(modes) != 1:
        raise ValueError("vllmbench run cannot mix rate and concurrency stages in one run; "
                         "split the profile into two benchmarks")
    first = stages[0]
    args = []
    if first["mode"] == "rate":
        args.append("--rate=" + ",".join(f"{s['rate_rps']:g}" for s in stages))
        arrival = first.get("arrival") or "constant"
        if arrival == "burst":  # gamma arrivals burstier than Poisson, as vllm bench serve's template does
            args += ["--arrival=gamma", f"--burstiness={BURSTINESS}"]
        else:
            args.append(f"--arrival={arrival}")
    else:
        args.append("--concurrency=" + ",".join(str(s["concurrency"]) for s in stages))
    if first.get("duration_s"):
        args.append(f"--duration={first['duration_s']:g}")
    if first.get("request_count"):
        args.append(f"--requests={first['request_count']}")
    for flag, key in (("--warmup", "warmup_s"), ("--cooldown", "cooldown_s")):
        if first.get(key):
            args.append(f"{flag}={first[key]:g}")
    if first.get("max_in_flight"):
        args.append(f"--max-in-flight={first['max_in_flight']}")
    args.append(f"--input-len={_length(first.get('input_tokens'))}")
    args.append(f"--output-len={_length(first.get('output_tokens'))}")
    args.append(f"--endpoint={first.get('endpoint') or 'completions'}")
    dataset = first.get("dataset") or "synthetic"
    if dataset not in ("synthetic",):
        args.append("--dataset=sharegpt" if dataset == "sharegpt" else "--dataset=jsonl")
        if dataset != "sharegpt":
            args.append(f"--dataset-path={dataset}")
    if first.get("unique_prompts") is False:
        args.append("--shared-prompts")
    if first.get("streaming") is False:
        args.append("--no-stream")
    for key, value in (profile.get("slo") or {}).items():
        if value is not None:
            args.append(f"--slo-{key.replace('_ms', '')}-ms={value:g}")
    return args


def render(template: Template, values: dict[str, Any]) -> dict[str, Any]:
    """The Job ``template`` renders to with ``values``; 422 naming the missing value and the line."""
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters["quote"] = _quote
    env.filters["shell_quote"] = lambda v: shlex.quote(str(v))
    env.filters["format_tag"] = lambda v: f"--tag={v}"
    env.globals["vllmbench_args"] = vllmbench_args
    env.globals.update(HELPERS)  # guidellm_args, vllm_bench_args, lm_eval_args
    try:
        from jinja2 import meta

        wanted = meta.find_undeclared_variables(env.parse(template.job)) - set(env.globals)
        missing = sorted(wanted - set(values))
        if missing:
            line = _first_line(template.job, missing[0])
            raise _problem(template.path, template.job_line + line - 1 if line else None,
                           f"{missing[0]!r} is undefined: the evaluation has no such value",
                           "one of " + ", ".join(sorted(values)))
        compiled = env.from_string(template.job)
        text = compiled.render(**values)
    except jinja2.TemplateSyntaxError as exc:
        raise _problem(template.path, template.job_line + (exc.lineno or 1) - 1, f"template syntax: {exc.message}",
                       "valid Jinja2") from exc
    except jinja2.UndefinedError as exc:
        line = _template_line(exc)
        raise _problem(template.path, template.job_line + line - 1 if line else None,
                       f"{exc.message}: the evaluation has no such value", "one of " + ", ".join(sorted(values))) from exc
    except jinja2.exceptions.SecurityError as exc:
        raise _problem(template.path, None, f"not allowed in a template: {exc}", "plain values") from exc
    except (ValueError, TypeError, KeyError) as exc:
        line = _template_line(exc)
        raise _problem(template.path, template.job_line + line - 1 if line else None, str(exc),
                       "values the template can use") from exc
    try:
        job = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise _problem(template.path, template.job_line + mark.line if mark else None,
                       f"the rendered job is not valid YAML: {getattr(exc, 'problem', exc)}", "YAML") from exc
    if not isinstance(job, dict) or job.get("kind") != "Job" or job.get("apiVersion") != "batch/v1":
        raise _problem(template.path, template.job_line, "the template must render one batch/v1 Job",
                       "apiVersion: batch/v1, kind: Job")
    return job


def _first_line(text: str, name: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        if re.search(rf"\b{re.escape(name)}\b", line):
            return number
    return None


def _template_line(exc: BaseException) -> int | None:
    """The template line an exception was raised at (Jinja2 maps its frames to the template)."""
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def job_name(evaluation_id: str, repeat: int) -> str:
    """A Job name (DNS label) for one repeat of an evaluation."""
    base = re.sub(r"[^a-z0-9-]", "-", evaluation_id.lower()).strip("-")[:50] or "eval"
    return f"{base}-r{repeat}"
