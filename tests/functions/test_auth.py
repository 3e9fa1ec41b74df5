"""With VLLMBENCH_API_TOKEN set, everything but /health and /ready needs the bearer token."""

from __future__ import annotations

import pytest
import requests

from tests.fixtures.records import raw

TOKEN = "test-token-3f9a7c21d8"


@pytest.fixture
def results(serve_function):
    return serve_function("results", api_token=TOKEN)


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Bearer {TOKEN}x", f"Basic {TOKEN}", TOKEN, "Bearer "])
def test_missing_or_wrong_token_is_401_and_nothing_is_stored(results, header):
    headers = {"Authorization": header} if header is not None else {}
    response = requests.post(results.url + "/raw_input", json=raw("auth-run"), headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.json()["message"] == "missing or invalid bearer token (send 'Authorization: Bearer <token>')"
    assert TOKEN not in response.text
    assert results.get("/raw_input").json()["count"] == 0


def test_right_token_works(results):
    assert results.post("/raw_input", json=raw("auth-ok")).status_code == 201


@pytest.mark.parametrize("path", ["/health", "/ready", "/docs"])
def test_health_ready_and_docs_page_are_open(results, path):
    assert requests.get(results.url + path, timeout=10).status_code == 200


@pytest.mark.parametrize("path", ["/openapi.json", "/raw_input", "/standardized_output", "/compare?runs=a,b"])
def test_data_and_spec_need_the_token(results, path):
    assert requests.get(results.url + path, timeout=10).status_code == 401


def test_events_need_the_token_unless_told_otherwise(serve_function):
    locked = serve_function("results", api_token=TOKEN)
    event_headers = {"ce-id": "1", "ce-source": "/t", "ce-type": "dev.vllmbench.result.raw", "ce-specversion": "1.0",
                     "Content-Type": "application/json"}
    assert requests.post(locked.url + "/", json=raw("ev"), headers=event_headers, timeout=10).status_code == 401
    open_events = serve_function("results", api_token=TOKEN, events_require_token=False)
    assert requests.post(open_events.url + "/", json=raw("ev"), headers=event_headers, timeout=10).status_code == 202
