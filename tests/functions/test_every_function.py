"""What every function has, through the real functions-framework app on a real port."""

from __future__ import annotations

import pytest
import requests

FUNCTIONS = ["results", "sync", "deploy", "mlflow_poll", "eval", "vllm_deploy"]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_health_ready_openapi_and_docs(serve_function, name):
    served = serve_function(name)
    health = served.get("/health")
    assert health.status_code == 200 and health.json()["function"] == name
    ready = served.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["mongodb"] == "ok"
    spec = served.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert {"/health", "/ready", "/"} <= set(spec["paths"])
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            assert operation["summary"], f"{path} has no summary"
    page = served.get("/docs")
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
    assert served.get("/docs/static/swagger-ui-bundle.js").status_code == 200
    assert served.get("/docs/static/../../etc/passwd").status_code == 404


def test_results_spec_describes_the_standardized_record(serve_function):
    spec = serve_function("results").get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert {"StandardizedRecord", "Stats", "LoadProfile", "RawInput"} <= set(schemas)
    assert schemas["Stats"]["properties"]["p999"]["description"] == "The 99.9th percentile."
    listing = spec["paths"]["/standardized_output"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"project", "model", "run_id", "harness", "tag", "since",
                                                          "until", "sort", "limit", "cursor"}
    assert spec["paths"]["/standardized_output"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in spec["paths"]["/health"]["get"]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_ready_is_503_naming_the_database_when_it_cannot_be_reached(serve_function, name):
    served = serve_function(name, mongo_url="mongodb://127.0.0.1:9/", mongo_timeout_ms=300)
    ready = served.get("/ready")
    assert ready.status_code == 503
    assert ready.headers["Retry-After"]
    assert "mongodb" in ready.json()["message"]
    assert requests.get(served.url + "/health", timeout=5).status_code == 200


def test_the_docs_page_ships_a_swagger_ui_that_renders_openapi_31():
    # Swagger UI 4 answers "Unable to render this definition" for the OpenAPI 3.1 our spec is.
    from vllmbench.web.docs import _bundle_dir

    version = (_bundle_dir() / "VERSION").read_text().strip().lstrip("v")
    assert int(version.split(".")[0]) >= 5, version


@pytest.mark.parametrize("name", FUNCTIONS)
def test_a_route_without_variables_is_the_one_the_url_map_picks(name):
    # Cold start: such routes are looked up in a dict, without building werkzeug's Map.
    import runpy

    from tests.fixtures.functions import function_source

    app = runpy.run_path(str(function_source(name)))["app"]
    adapter = app._map().bind("localhost", url_scheme="http")
    for route in app.routes:
        if "<" in route.path:
            continue
        assert app._match(route.method, route.path) == adapter.match(route.path, method=route.method)
        for method, path in (("HEAD", route.path), (route.method, route.path.rstrip("/") + "/")):
            try:
                expected: object = adapter.match(path, method=method)
            except Exception as exc:  # werkzeug's NotFound or MethodNotAllowed: the dispatcher turns them into 404/405
                expected = type(exc)
            try:
                found: object = app._match(method, path)
            except Exception as exc:
                found = type(exc)
            assert found == expected, (method, path)
