"""Results stored by the first layout keep working: moved into the trees on start, ids kept."""

from __future__ import annotations

import datetime as dt

import pytest
from pymongo import MongoClient

from tests.fixtures.old_layout import write_raw, write_records
from tests.fixtures.records import raw, record
from vllmbench.models.results import RawInput, StandardizedRecord

DAY = dt.timedelta(days=1)
START = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)


@pytest.fixture
def old_data(mongo_url, database_name):
    client = MongoClient(mongo_url, tz_aware=True)
    db = client[database_name]
    raw_key = write_raw(db, RawInput.model_validate(raw("old-run", data={"stages": [1, 2, {"a.b": True}]},
                                                        started_at=START.isoformat())),
                        ingested_at=START + dt.timedelta(hours=1))
    records = [StandardizedRecord.model_validate(record(f"old-{i}", project=f"p{i % 3}", started=START + i * DAY,
                                                        tags=["nightly"] + (["old"] if i % 2 else [])))
               for i in range(12)]
    records.append(StandardizedRecord.model_validate(record("old-run", started=START)))
    write_records(db, records[:-1])
    write_records(db, records[-1:], raw_id=raw_key)
    yield {"raw_id": raw_key, "records": records}
    client.close()


def test_results_of_the_first_layout_are_moved_on_start_and_keep_their_ids(serve_function, old_data):
    results = serve_function("results")
    run = results.get("/runs/old-run").json()
    assert run["raw"][0]["id"] == old_data["raw_id"] and run["raw"][0]["data"] == {"stages": [1, 2, {"a.b": True}]}
    assert run["raw"][0]["ingested_at"].startswith("2026-10-01T01:00:00")
    assert run["standardized"][0]["run"]["run_id"] == "old-run"
    assert results.get(f"/raw_input/{old_data['raw_id']}").status_code == 200
    assert results.get("/standardized_output/old-3%230").json()["run"]["project"] == "p0"
    listed = results.get("/standardized_output", params={"project": "p1", "limit": 2})
    body = listed.json()
    assert [i["run"]["run_id"] for i in body["items"]] == ["old-10", "old-7"] and body["next_cursor"]
    rest = results.get("/standardized_output", params={"project": "p1", "cursor": body["next_cursor"]}).json()
    assert [i["run"]["run_id"] for i in rest["items"]] == ["old-4", "old-1"]
    assert results.get("/standardized_output", params={"tag": "old"}).json()["count"] == 6
    # The same record again is unchanged, other content under a moved id is still a conflict.
    again = results.post("/standardized_output", json=record("old-5", project="p2", started=START + 5 * DAY,
                                                             tags=["nightly", "old"]))
    assert again.status_code == 200 and again.json()["unchanged"] == 1
    assert results.post("/standardized_output", json=record("old-5", ttft=77.0)).status_code == 409


def test_the_move_runs_once(serve_function, old_data, mongo_url, database_name):
    first = serve_function("results")
    assert first.get("/standardized_output").json()["count"] == 13
    client = MongoClient(mongo_url, tz_aware=True)
    try:
        marker = client[database_name]["results_roots"].find_one({"_id": "migrated-v1"})
        assert (marker["raw"], marker["standardized"]) == (1, 13)
        # Written to the old collections after the move: no longer read (the old layout is retired).
        write_records(client[database_name], [StandardizedRecord.model_validate(record("after-the-move"))])
    finally:
        client.close()
    second = serve_function("results")
    assert second.get("/runs/after-the-move").status_code == 404
    assert second.get("/standardized_output").json()["count"] == 13
