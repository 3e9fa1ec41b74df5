"""Generated inputs against every function (schemathesis over its own /openapi.json).

Each operation of each function gets a bounded number of generated requests, both
ones that fit the schema and ones that do not, against the real app and a real
FerretDB. Asserted: no 500 (a 502/503 only as a typed dependency error with
Retry-After: a git server that a generated URL names does not answer), and every
answer matches the document (status, content type, body schema).

VLLMBENCH_FUZZ_EXAMPLES sets the examples per operation and mode (default 15);
``-m 'not fuzz'`` leaves the suite out.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis.generation.modes import GenerationMode  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = [pytest.mark.fuzz, pytest.mark.slow]

FUNCTIONS = ["results", "sync", "deploy", "mlflow_poll", "eval", "vllm_deploy"]
EXAMPLES = int(os.environ.get("VLLMBENCH_FUZZ_EXAMPLES", "15"))
TOKEN = "fuzz-token-123456"
DEPENDENCY_ERRORS = {"dependency_unavailable", "bad_gateway"}


@pytest.fixture
def offline_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Generated repository URLs must not reach any host: git's HTTP goes to a closed loopback
    proxy, ssh and git:// to a command that fails at once."""
    config = tmp_path / "gitconfig"
    config.write_text("[http]\n\tproxy = http://127.0.0.1:9\n[core]\n\tsshCommand = false\n\tgitProxy = false\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_SSH_COMMAND", "false")


def _header(response, name: str) -> str:
    """A header of schemathesis' response (its names are lower case, its values lists)."""
    for key, value in response.headers.items():
        if key.lower() == name.lower():
            return value[0] if isinstance(value, list) else value
    return ""


def _problems(served, spec: dict) -> list[str]:
    schema = schemathesis.openapi.from_dict(spec)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    problems: list[str] = []
    calls: dict[int, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, print_blob=False,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case) -> None:
                response = case.call(base_url=served.url, headers=headers, timeout=30)
                calls[response.status_code] = calls.get(response.status_code, 0) + 1
                label = f"{operation.label} [{mode.value}] -> {response.status_code}"
                if response.status_code >= 500:
                    body = response.json() if _header(response, "Content-Type").startswith("application/json") else {}
                    typed = body.get("error") in DEPENDENCY_ERRORS and _header(response, "Retry-After")
                    assert response.status_code in (502, 503) and typed, f"{label}: {response.text[:300]}"
                try:
                    case.validate_response(response, checks=[status_code_conformance, content_type_conformance,
                                                             response_schema_conformance])
                except AssertionError as exc:
                    raise AssertionError(f"{label}: {str(exc)[:600]}") from None

            try:
                run()
            except Unsatisfiable:  # nothing in this operation can be made invalid (e.g. GET /health)
                continue
            except AssertionError as exc:
                problems.append(str(exc).split("\n\nFalsifying")[0][:900])
    assert sum(calls.values()) >= EXAMPLES, calls  # the generator did run
    print(f"{served.name}: answers by status {dict(sorted(calls.items()))}")
    return problems


@pytest.mark.parametrize("name", FUNCTIONS)
def test_generated_requests_get_no_500_and_answers_that_match_the_document(serve_function, offline_git, name):
    served = serve_function(name, api_token=TOKEN)
    spec = served.get("/openapi.json").json()
    problems = _problems(served, spec)
    assert not problems, "\n\n".join(problems)
