"""Inputs a tester sent to the landed services (issue 9): each is a clear 4xx, nothing is
stored that cannot be read back, and every answer is JSON with a request id."""

from __future__ import annotations

import json
import socket

import pytest
import requests
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from tests.fixtures.records import raw, record

RAW_TYPE = "dev.vllmbench.result.raw"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def results(serve_function):
    return serve_function("results")


def _post_text(served, path: str, text: str, headers: dict | None = None) -> requests.Response:
    return served.post(path, data=text.encode(), headers=headers or JSON)


def _no_records(results) -> None:
    assert results.get("/standardized_output").json()["count"] == 0
    assert results.get("/raw_input").json()["count"] == 0


# -- text that cannot be written back ------------------------------------------------------

@pytest.mark.parametrize("where", ["labels", "tags", "label key"])
def test_a_lone_surrogate_in_a_record_is_400_and_the_run_stays_readable(results, where):
    body = record("surrogate-run")
    if where == "labels":
        body["labels"] = {"note": "\ud800"}
    elif where == "tags":
        body["tags"] = ["\udfff"]
    else:
        body["labels"] = {"\udbff": "x"}
    text = json.dumps(body)  # ensure_ascii: the surrogate travels as a \\uXXXX escape, as a client sends it
    assert "\\ud" in text
    response = _post_text(results, "/standardized_output", text)
    assert response.status_code == 400, response.text
    assert "surrogate" in response.json()["message"]
    assert results.get("/runs/surrogate-run").status_code == 404
    _no_records(results)


def test_a_lone_surrogate_in_raw_data_is_400(results):
    response = _post_text(results, "/raw_input", json.dumps(raw("s-raw", data={"k": ["ok", "\ud83d"]})))
    assert response.status_code == 400 and "data.k.1" in response.json()["message"]


def test_a_paired_surrogate_escape_is_an_emoji_and_is_stored(results):
    response = _post_text(results, "/raw_input", json.dumps(raw("emoji", data={"k": "\U0001f680"})))
    assert response.status_code == 201, response.text
    assert results.get("/runs/emoji").json()["raw"][0]["data"] == {"k": "\U0001f680"}


# -- numbers -------------------------------------------------------------------------------

def test_a_number_too_large_for_a_float_is_400_not_stored_as_infinity(results):
    text = json.dumps(raw("inf-run", data={"x": 1})).replace('"x": 1', '"x": 1e999')
    response = _post_text(results, "/raw_input", text)
    assert response.status_code == 400 and "data.x" in response.json()["message"]
    _no_records(results)


def test_an_integer_of_thousands_of_digits_is_400(results):
    text = json.dumps(raw("digits", data={"x": 1})).replace('"x": 1', '"x": ' + "9" * 5000)
    response = _post_text(results, "/raw_input", text)
    assert response.status_code == 400 and "digits" in response.json()["message"]


@pytest.mark.parametrize("stage", [2**63, 2**64 + 1, 2**31])
def test_a_stage_beyond_what_the_store_holds_is_422_naming_it(results, stage):
    body = record("big-stage", stage=0)
    body["run"]["stage"] = stage
    response = results.post("/standardized_output", json=body)
    assert response.status_code == 422, response.text
    assert any(d["loc"].endswith("run.stage") for d in response.json()["details"])


@pytest.mark.parametrize("stage", ["0", True, 1.0])
def test_a_stage_of_another_type_is_refused_not_coerced(results, stage):
    body = record("typed-stage")
    body["run"]["stage"] = stage
    response = results.post("/standardized_output", json=body)
    assert response.status_code == 422, response.text
    assert any(d["loc"].endswith("run.stage") for d in response.json()["details"])
    _no_records(results)


def test_dates_are_still_read_from_text(results):
    assert results.post("/standardized_output", json=record("dated")).status_code == 201


# -- bodies and content types --------------------------------------------------------------

def test_an_empty_array_of_llmd_reports_is_400(results):
    response = results.post("/standardized_output/llmd", json=[])
    assert response.status_code == 400 and "empty" in response.json()["message"]


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_json_body_without_a_json_content_type_is_415(results, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    session = requests.Session()
    prepared = requests.Request("POST", results.url + "/raw_input", data=json.dumps(raw("ct")).encode(),
                                headers=headers).prepare()
    if content_type is None:
        prepared.headers.pop("Content-Type", None)
    response = session.send(prepared, timeout=10)
    assert response.status_code == 415, response.text
    assert "application/json" in response.json()["message"]
    _no_records(results)


def test_a_json_content_type_with_parameters_or_a_json_suffix_is_taken(results):
    assert _post_text(results, "/raw_input", json.dumps(raw("ct1")),
                      {"Content-Type": "application/json; charset=utf-8"}).status_code == 201
    assert _post_text(results, "/raw_input", json.dumps(raw("ct2")),
                      {"Content-Type": "application/vnd.vllmbench+json"}).status_code == 201


# -- CloudEvents ---------------------------------------------------------------------------

def test_a_binary_cloudevent_with_nan_is_400(results):
    headers, _ = to_binary(CloudEvent({"id": "nan-1", "source": "/t", "type": RAW_TYPE}, raw("nan-ev")))
    text = json.dumps(raw("nan-ev", data={"x": 1})).replace('"x": 1', '"x": NaN')
    response = requests.post(results.url + "/", data=text, headers=headers, timeout=10)
    assert response.status_code == 400 and "NaN" in response.json()["message"]
    _no_records(results)


def test_a_structured_cloudevent_nested_a_thousand_deep_is_400(results):
    deep = "[" * 1000 + "]" * 1000
    text = '{"specversion":"1.0","id":"deep","source":"/t","type":"' + RAW_TYPE + '","data":' + deep + "}"
    response = requests.post(results.url + "/", data=text, timeout=10,
                             headers={"Content-Type": "application/cloudevents+json"})
    assert response.status_code == 400 and "nested deeper" in response.json()["message"]


@pytest.mark.parametrize("text", [
    '{"specversion":"1.0","id":"x","source":"/t","type":"t","data_base64":"%%%not base64"}',
    '{"specversion":"0.3","id":"x","source":"/t","type":"' + RAW_TYPE + '"}',
    '{"specversion":"1.0","id":5,"source":"/t","type":"' + RAW_TYPE + '"}',
])
def test_malformed_structured_events_are_400_without_the_sdks_words(results, text):
    response = requests.post(results.url + "/", data=text, timeout=10,
                             headers={"Content-Type": "application/cloudevents+json"})
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert "not base64" not in message and "Failed to" not in message and "Traceback" not in message


def test_validator_messages_do_not_carry_pydantics_prefix(results):
    body = record("order")
    body["results"]["latency"]["ttft"]["p50"] = 1000.0
    details = results.post("/standardized_output", json=body).json()["details"]
    assert details and not any(d["msg"].startswith("Value error") or d["expected"].startswith("Value error")
                               for d in details)


# -- projects ------------------------------------------------------------------------------

@pytest.mark.parametrize("repository", ["https://example.com/o/r.git\r\nX: y", "/srv/config\n.git",
                                        "/srv/con\x00fig.git", "https://example.com/o/\tr.git"])
def test_control_characters_in_a_repository_are_422_naming_it(serve_function, repository):
    manager = serve_function("sync")
    response = manager.post("/projects", json={"name": "ctl", "repository": repository, "credentials": "none"})
    assert response.status_code == 422, response.text
    assert [d["loc"] for d in response.json()["details"]] == ["body.repository"]
    assert "control characters" in response.json()["message"]


def test_an_empty_put_is_400_and_commits_nothing(serve_function):
    manager = serve_function("sync")
    response = manager.put("/projects/demo/files/benchmarks/a.yaml", data=b"")
    assert response.status_code == 400 and "DELETE" in response.json()["message"]


# -- the factory ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/runs/a%0Ab", "/x%0A", "/favicon.ico", "/robots.txt"])
def test_paths_the_framework_answers_itself_get_our_json_404_with_a_request_id(results, path):
    response = results.get(path, headers={"X-Request-Id": "trace-1"})
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["X-Request-Id"] == "trace-1"
    assert response.json()["error"] == "not_found"


def test_a_raw_newline_in_the_request_line_is_answered_in_json(results):
    port = int(results.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /runs/a%0Ab HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert b"application/json" in answer and b"<html" not in answer.lower()


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_bearer_scheme_is_case_insensitive(serve_function, scheme):
    served = serve_function("results", api_token="tok-abcdef-123")
    response = requests.get(served.url + "/raw_input", headers={"Authorization": f"{scheme} tok-abcdef-123"},
                            timeout=10)
    assert response.status_code == 200


@pytest.mark.parametrize("header", ["Basic tok-abcdef-123", "Bearer", "tok-abcdef-123", "Bearer tok-abcdef-12"])
def test_other_schemes_and_tokens_are_still_401(serve_function, header):
    served = serve_function("results", api_token="tok-abcdef-123")
    assert requests.get(served.url + "/raw_input", headers={"Authorization": header}, timeout=10).status_code == 401


def test_the_openapi_document_names_every_success_status_and_the_docs_page_type(results):
    spec = results.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/raw_input", "/standardized_output", "/standardized_output/llmd"):
        assert {"200", "201"} <= set(paths[path]["post"]["responses"]), path
    assert {"200", "202"} <= set(paths["/"]["post"]["responses"])
    assert set(paths["/docs"]["get"]["responses"]["200"]["content"]) == {"text/html"}
    page = results.get("/docs")
    assert page.headers["Content-Type"].startswith("text/html")
