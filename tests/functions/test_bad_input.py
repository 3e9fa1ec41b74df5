"""Bad input is refused with a clear 4xx and nothing is stored."""

from __future__ import annotations

import json

import pytest

from tests.fixtures.records import record


@pytest.fixture
def results(serve_function):
    return serve_function("results", max_body_bytes=64 * 1024)


def _with(path: str, value):
    body = record("bad-run")
    target = body
    *parents, last = path.split(".")
    for key in parents:
        target = target[key]
    target[last] = value
    return body


BAD_RECORDS = [
    ("wrong type", _with("results.requests.total", "many"), "body.results.requests.total"),
    ("negative count", _with("results.requests.failed", -1), "body.results.requests.failed"),
    ("unknown field", _with("results.surprise", 1), "body.results.surprise"),
    ("percentiles out of order", _with("results.latency.ttft.p50", 1000.0), "body.results.latency.ttft"),
    ("array where an object is expected", _with("scenario", []), "body.scenario"),
    ("counts that do not add up", _with("results.requests.succeeded", 10_000), "body.results.requests"),
    ("bad run id", _with("run.run_id", "../etc"), "body.run.run_id"),
]


@pytest.mark.parametrize("label,body,loc", BAD_RECORDS, ids=[b[0] for b in BAD_RECORDS])
def test_bad_records_are_422_naming_the_field_and_nothing_is_stored(results, label, body, loc):
    response = results.post("/standardized_output", json=body)
    assert response.status_code == 422, response.text
    locs = [d["loc"] for d in response.json()["details"]]
    assert any(l.startswith(loc) or l.startswith(loc.replace("body.", "body.StandardizedRecord.")) for l in locs), locs
    assert all("expected" in d for d in response.json()["details"])
    assert results.get("/standardized_output").json()["count"] == 0


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused(results, text):
    body = json.dumps(record("nan-run")).replace('"duration_s": 60.0', f'"duration_s": {text}')
    response = results.post("/standardized_output", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert text.lstrip("-") in response.json()["message"]
    assert results.get("/standardized_output").json()["count"] == 0


def test_malformed_json_is_400(results):
    response = results.post("/raw_input", data=b'{"run_id": "x",', headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["message"]


def test_non_utf8_body_is_400(results):
    response = results.post("/raw_input", data=b"\xff\xfe\x00", headers={"Content-Type": "application/json"})
    assert response.status_code == 400


def test_huge_body_is_413(results):
    big = {"run_id": "big", "harness": {"name": "x"}, "data": {"blob": "a" * 100_000}}
    response = results.post("/raw_input", json=big)
    assert response.status_code == 413
    assert "limit" in response.json()["message"]


def test_huge_body_without_content_length_is_413(results):
    def chunks():
        for _ in range(100):
            yield b" " * 1024

    response = results.post("/raw_input", data=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_deeply_nested_body_is_400(results):
    deep = '{"run_id": "deep", "harness": {"name": "x"}, "data": ' + '{"a":' * 200 + "1" + "}" * 200 + "}"
    response = results.post("/raw_input", data=deep, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "nested deeper" in response.json()["message"]
    assert results.get("/raw_input").json()["count"] == 0


def test_extremely_deep_body_does_not_crash(results):
    deep = "[" * 30_000 + "]" * 30_000  # under the size limit, far over the depth limit
    response = results.post("/raw_input", data=deep, headers={"Content-Type": "application/json"})
    assert response.status_code == 400


def test_errors_are_json_never_html(results):
    for response in (results.get("/nope"), results.put("/raw_input", data="x"), results.post("/raw_input", data="")):
        assert response.headers["Content-Type"].startswith("application/json")
        assert "<html" not in response.text.lower()
        assert "Traceback" not in response.text


def test_wrong_method_is_405_with_allow(results):
    response = results.delete("/raw_input")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}


def test_request_ids_are_echoed_when_plain_and_replaced_when_not(results):
    assert results.get("/raw_input", headers={"X-Request-Id": "trace-42.a"}).headers["X-Request-Id"] == "trace-42.a"
    replaced = results.get("/raw_input", headers={"X-Request-Id": "x" * 500}).headers["X-Request-Id"]
    assert replaced != "x" * 500 and len(replaced) == 32
