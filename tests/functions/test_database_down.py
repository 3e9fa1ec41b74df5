"""The database stopped mid-test: 503 with Retry-After, then recovery without a restart."""

from __future__ import annotations

import pytest

from tests.fixtures.records import raw, record


@pytest.fixture
def results(serve_function):
    return serve_function("results")


def test_database_down_gives_503_then_recovers_and_nothing_is_half_written(results, ferretdb):
    if ferretdb is None:
        pytest.skip("MONGO_URL points at a server this test cannot stop")
    assert results.post("/standardized_output", json=record("before")).status_code == 201
    ferretdb.stop()
    try:
        for method, path, body in [("post", "/standardized_output", [record("during-1"), record("during-2")]),
                                   ("post", "/raw_input", raw("during")),
                                   ("get", "/standardized_output", None)]:
            response = getattr(results, method)(path, json=body) if body is not None else results.get(path)
            assert response.status_code == 503, response.text
            assert int(response.headers["Retry-After"]) > 0
            assert response.json()["dependency"] == "mongodb"
            assert "Traceback" not in response.text
        ready = results.get("/ready")
        assert ready.status_code == 503 and "mongodb" in ready.json()["message"]
        assert results.get("/health").status_code == 200
    finally:
        ferretdb.start()
    assert results.get("/ready").status_code == 200
    listed = results.get("/standardized_output").json()
    assert [i["run"]["run_id"] for i in listed["items"]] == ["before"]
    assert results.get("/raw_input").json()["count"] == 0
    # The client's retry of the refused batch now lands whole.
    assert results.post("/standardized_output", json=[record("during-1"), record("during-2")]).status_code == 201
    assert results.get("/standardized_output").json()["count"] == 3


def test_first_request_while_database_is_down_does_not_wedge_the_start_hooks(serve_function, ferretdb):
    if ferretdb is None:
        pytest.skip("MONGO_URL points at a server this test cannot stop")
    ferretdb.stop()
    try:
        results = serve_function("results")
        assert results.get("/standardized_output").status_code == 503
    finally:
        ferretdb.start()
    assert results.get("/standardized_output").status_code == 200
