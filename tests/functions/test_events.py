"""CloudEvents through real HTTP with the cloudevents SDK, binary and structured mode."""

from __future__ import annotations

import json

import pytest
import requests
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent

from tests.fixtures.records import raw

RAW_TYPE = "dev.vllmbench.result.raw"


@pytest.fixture
def results(serve_function):
    return serve_function("results")


def _event(event_id: str, data: dict, event_type: str = RAW_TYPE) -> CloudEvent:
    return CloudEvent({"id": event_id, "source": "/vllmbench/benchmark-job", "type": event_type}, data)


@pytest.mark.parametrize("mode", [to_binary, to_structured], ids=["binary", "structured"])
def test_raw_result_event_is_stored_and_answered_202(results, mode):
    headers, body = mode(_event("evt-1", raw("event-run")))
    response = requests.post(results.url + "/", data=body, headers=headers, timeout=10)
    assert response.status_code == 202, response.text
    assert results.get("/runs/event-run").json()["raw"][0]["data"] == raw("event-run")["data"]


@pytest.mark.parametrize("mode", [to_binary, to_structured], ids=["binary", "structured"])
def test_a_duplicate_delivery_stores_nothing_twice(results, mode):
    headers, body = mode(_event("evt-dup", raw("dup-run", data={"attempt": 1})))
    first = requests.post(results.url + "/events", data=body, headers=headers, timeout=10)
    second = requests.post(results.url + "/events", data=body, headers=headers, timeout=10)
    assert (first.status_code, second.status_code) == (202, 200)
    assert second.json()["status"] == "duplicate"
    assert results.get("/raw_input", params={"run_id": "dup-run"}).json()["count"] == 1


def test_same_id_from_another_source_is_another_event(results):
    for source in ("/a", "/b"):
        event = CloudEvent({"id": "same", "source": source, "type": RAW_TYPE}, raw(f"src-{source[1]}"))
        headers, body = to_binary(event)
        assert requests.post(results.url + "/", data=body, headers=headers, timeout=10).status_code == 202
    assert results.get("/raw_input").json()["count"] == 2


@pytest.mark.parametrize("drop", ["ce-id", "ce-source", "ce-type", "ce-specversion"])
def test_binary_event_missing_an_attribute_is_400_naming_it(results, drop):
    headers, body = to_binary(_event("evt-bad", raw("bad")))
    headers = {k: v for k, v in headers.items() if k.lower() != drop}
    response = requests.post(results.url + "/", data=body, headers=headers, timeout=10)
    assert response.status_code == 400
    assert drop.removeprefix("ce-") in response.json()["message"]


@pytest.mark.parametrize("drop", ["id", "source", "type", "specversion"])
def test_structured_event_missing_an_attribute_is_400_naming_it(results, drop):
    document = {"specversion": "1.0", "id": "x", "source": "/s", "type": RAW_TYPE, "data": raw("s")}
    del document[drop]
    response = requests.post(results.url + "/", data=json.dumps(document),
                             headers={"Content-Type": "application/cloudevents+json"}, timeout=10)
    assert response.status_code == 400
    assert drop in response.json()["message"]


def test_event_of_a_type_the_function_does_not_handle_is_400(results):
    headers, body = to_binary(_event("evt-x", {}, "dev.vllmbench.something.else"))
    response = requests.post(results.url + "/", data=body, headers=headers, timeout=10)
    assert response.status_code == 400
    assert RAW_TYPE in response.json()["message"]


def test_event_with_invalid_data_is_422_and_not_marked_processed(results):
    headers, body = to_binary(_event("evt-invalid", {"run_id": "no harness"}))
    assert requests.post(results.url + "/", data=body, headers=headers, timeout=10).status_code == 422
    # The same id with good data is processed: a refused delivery does not poison the ledger.
    headers, body = to_binary(_event("evt-invalid", raw("fixed-run")))
    assert requests.post(results.url + "/", data=body, headers=headers, timeout=10).status_code == 202


def test_dead_letters_are_kept_once_for_people_to_inspect(results):
    event = CloudEvent({"id": "dl-1", "source": "/broker", "type": "dev.vllmbench.gitops.pushed",
                        "knativeerrorcode": "400", "knativeerrordest": "http://manager/events"}, {"repository": "r"})
    headers, body = to_binary(event)
    first = requests.post(results.url + "/dead-letters", data=body, headers=headers, timeout=10)
    again = requests.post(results.url + "/dead-letters", data=body, headers=headers, timeout=10)
    assert (first.status_code, again.status_code) == (201, 200)
    listed = results.get("/dead-letters").json()
    assert listed["count"] == 1
    assert listed["items"][0]["error"]["code"] == "400"
    assert listed["items"][0]["event"]["type"] == "dev.vllmbench.gitops.pushed"


def test_binary_event_whose_data_is_not_utf8_json_is_422_not_a_500(results):
    # A 5xx would be redelivered by the broker again and again; this data can never be read.
    headers = {"ce-specversion": "1.0", "ce-id": "evt-bytes", "ce-source": "/bench", "ce-type": RAW_TYPE,
               "Content-Type": "application/json"}
    answer = requests.post(results.url + "/", data=b"\xff\xfe\x00{", headers=headers, timeout=10)
    assert answer.status_code == 422, answer.text
    assert "data" in answer.text
