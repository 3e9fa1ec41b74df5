"""The Results service through real HTTP against a real FerretDB."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from tests.fixtures.records import raw, record

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture
def results(serve_function):
    return serve_function("results")


def test_raw_input_is_stored_as_is_and_found_by_run(results):
    body = raw("run-raw", data={"weird": {"a.b": [1, {"$x": None}]}, "n": 1.5})
    created = results.post("/raw_input", json=body)
    assert created.status_code == 201, created.text
    run = results.get("/runs/run-raw").json()
    assert run["raw"][0]["data"] == body["data"]
    assert run["raw"][0]["harness"] == {"name": "custom-tool", "version": "1.0"}


def test_raw_input_posted_twice_is_stored_once(results):
    first = results.post("/raw_input", json=raw("run-twice"))
    second = results.post("/raw_input", json=raw("run-twice"))
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    listed = results.get("/raw_input", params={"run_id": "run-twice"}).json()
    assert listed["count"] == 1 and "data" not in listed["items"][0] and listed["items"][0]["size_bytes"] > 0
    with_data = results.get("/raw_input", params={"run_id": "run-twice", "include_data": "true"}).json()
    assert with_data["items"][0]["data"] == raw("run-twice")["data"]


def test_standardized_batch_and_single_are_listed_newest_first(results):
    base = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    batch = [record(f"run-{i}", started=base + dt.timedelta(minutes=i)) for i in range(3)]
    assert results.post("/standardized_output", json=batch).status_code == 201
    assert results.post("/standardized_output", json=record("run-9", started=base + dt.timedelta(hours=1))).status_code == 201
    listed = results.get("/standardized_output").json()
    assert [item["run"]["run_id"] for item in listed["items"]] == ["run-9", "run-2", "run-1", "run-0"]
    oldest = results.get("/standardized_output", params={"sort": "time"}).json()
    assert oldest["items"][0]["run"]["run_id"] == "run-0"


def test_the_same_record_again_is_a_no_op_and_other_content_is_409(results):
    assert results.post("/standardized_output", json=record("run-x")).status_code == 201
    again = results.post("/standardized_output", json=record("run-x"))
    assert again.status_code == 200 and again.json()["unchanged"] == 1
    clash = results.post("/standardized_output", json=record("run-x", ttft=99.0))
    assert clash.status_code == 409
    assert "run-x#0" in clash.json()["message"]


def test_a_batch_with_one_conflict_writes_nothing(results):
    results.post("/standardized_output", json=record("run-a"))
    batch = [record("run-b"), record("run-a", ttft=50.0), record("run-c")]
    assert results.post("/standardized_output", json=batch).status_code == 409
    listed = results.get("/standardized_output").json()
    assert [i["run"]["run_id"] for i in listed["items"]] == ["run-a"]


@pytest.mark.parametrize("params,expected", [
    ({"project": "p2"}, ["r-p2"]),
    ({"model": "m-b"}, ["r-mb"]),
    ({"harness": "guidellm"}, ["r-g"]),
    ({"tag": "gpu"}, ["r-mb", "r-g"]),
    ({"tag": "gpu,weekly"}, ["r-g"]),
    ({"since": "2026-11-02T00:00:00Z"}, ["r-mb", "r-g"]),
    ({"until": "2026-11-02T00:00:00Z"}, ["r-p2"]),
])
def test_filters(results, params, expected):
    day = dt.timedelta(days=1)
    start = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    batch = [
        record("r-p2", project="p2", started=start),
        record("r-mb", model="m-b", started=start + day, tags=["gpu"]),
        record("r-g", harness="guidellm", started=start + 2 * day, tags=["gpu", "weekly"]),
    ]
    assert results.post("/standardized_output", json=batch).status_code == 201
    listed = results.get("/standardized_output", params=params).json()
    assert sorted(i["run"]["run_id"] for i in listed["items"]) == sorted(expected)


def test_cursor_pagination_walks_every_record_once(results):
    base = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    # Several records share a start time, so the cursor must break ties by id.
    batch = [record(f"page-{i:02d}", started=base + dt.timedelta(minutes=i // 3)) for i in range(25)]
    assert results.post("/standardized_output", json=batch).status_code == 201
    seen, cursor = [], None
    for _ in range(10):
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = results.get("/standardized_output", params=params).json()
        seen += [i["run"]["run_id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(f"page-{i:02d}" for i in range(25))
    assert len(seen) == 25


@pytest.mark.parametrize("params,field", [
    ({"limit": 501}, "query.limit"),
    ({"limit": 0}, "query.limit"),
    ({"sort": "sideways"}, "query.sort"),
    ({"since": "yesterday-ish"}, "query.since"),
    ({"bogus": "1"}, "query.bogus"),
])
def test_bad_queries_name_the_field(results, params, field):
    response = results.get("/standardized_output", params=params)
    assert response.status_code == 422
    assert response.json()["details"][0]["loc"] == field


def test_a_cursor_we_did_not_give_out_is_400(results):
    response = results.get("/standardized_output", params={"cursor": "not-a-cursor"})
    assert response.status_code == 400
    assert "cursor" in response.json()["message"]


def test_compare_gives_values_and_differences_against_the_first(results):
    results.post("/standardized_output", json=[record("base", ttft=20.0), record("new", ttft=30.0)])
    compared = results.get("/compare", params={"runs": "base,new"}).json()
    assert compared["baseline"] == "base"
    ttft = next(m for m in compared["metrics"] if m["metric"] == "ttft_p50")
    base_p50, new_p50 = ttft["values"]
    assert new_p50 > base_p50
    assert ttft["abs_diff"][1] == pytest.approx(new_p50 - base_p50)
    assert ttft["rel_diff"][1] == pytest.approx((new_p50 - base_p50) / base_p50)


def test_compare_asks_which_stage_of_a_sweep(results):
    results.post("/standardized_output", json=[record("sweep", stage=0), record("sweep", stage=1, rate=20), record("one")])
    ambiguous = results.get("/compare", params={"runs": "sweep,one"})
    assert ambiguous.status_code == 400 and "sweep@STAGE" in ambiguous.json()["message"]
    assert results.get("/compare", params={"runs": "sweep@1,one"}).status_code == 200
    assert results.get("/compare", params={"runs": "sweep@7,one"}).status_code == 404
    assert results.get("/compare", params={"runs": "sweep@0"}).status_code == 422
    assert results.get("/compare", params={"runs": "nope,one"}).status_code == 404


def test_llmd_export_then_import_round_trips(results):
    results.post("/standardized_output", json=record("llmd-run"))
    exported = results.get("/runs/llmd-run/llmd").json()
    assert exported[0]["version"] == "0.2"
    assert exported[0]["results"]["request_performance"]["aggregate"]["latency"]["time_to_first_token"]["units"] == "ms"
    # Stored again under the same identity with the same content: a no-op, proving a lossless round trip.
    again = results.post("/standardized_output/llmd", json=exported)
    assert again.status_code == 200 and again.json()["unchanged"] == 1


def test_unknown_run_is_404(results):
    response = results.get("/runs/never-ran")
    assert response.status_code == 404
    assert "never-ran" in response.json()["message"]


@pytest.mark.parametrize("harness,sample", [("guidellm", "guidellm_benchmarks.json"),
                                            ("vllm-bench-serve", "vllm_bench_serve.json")])
def test_raw_output_of_a_known_harness_is_standardized_on_arrival(results, harness, sample):
    data = json.loads((DATA / sample).read_text())
    created = results.post("/raw_input", json=raw(f"{harness}-run", harness=harness, data=data))
    assert created.status_code == 201, created.text
    assert created.json()["standardized"]["stored"] >= 1
    run = results.get(f"/runs/{harness}-run").json()
    assert run["raw"][0]["data"] == data
    record = run["standardized"][0]
    assert record["scenario"]["harness"]["name"] == harness
    assert record["results"]["latency"]["ttft"]["mean"] > 0


def test_raw_output_of_a_known_harness_in_the_wrong_format_is_refused_whole(results):
    response = results.post("/raw_input", json=raw("broken-guidellm", harness="guidellm", data={"not": "a report"}))
    assert response.status_code == 422
    assert "guidellm" in response.json()["message"].lower()
    assert results.get("/raw_input").json()["count"] == 0
