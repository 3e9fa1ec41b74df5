"""The facet trees hold record ids; their leaves written when they held whole records
still list, beside entries appended since, and a page spans both (docs/results.md)."""

from __future__ import annotations

import datetime as dt

from pymongo import MongoClient

from tests.fixtures.old_layout import write_records_in_facet_leaves
from tests.fixtures.records import record
from vllmbench.models.results import StandardizedRecord
from vllmbench.store import results_layout as L

START = dt.datetime(2026, 9, 1, tzinfo=dt.timezone.utc)


def test_a_page_spans_facet_leaves_with_records_and_entries_that_name_them(serve_function, mongo_url,
                                                                            database_name):
    client = MongoClient(mongo_url, tz_aware=True)
    try:
        db = client[database_name]
        before = [StandardizedRecord.model_validate(record(f"before-{i}", project="mixed", started=START
                                                           + dt.timedelta(hours=i), tags=["t1"]))
                  for i in range(10)]  # a leaf under half full: the appends rewrite it, with both kinds
        write_records_in_facet_leaves(db, before)
        results = serve_function("results")
        after = [record(f"after-{i}", project="mixed", started=START + dt.timedelta(hours=10 + i), tags=["t1"])
                 for i in range(30)]
        assert results.post("/standardized_output", json=after).status_code == 201

        # A facet leaf now holds both kinds of entries, and its records are still answered whole.
        from vllmbench.store.nodes import Packed, decode_node

        kinds = [{type(value[-1]) is Packed for _, value in decode_node(doc, L.RECORD_DICTIONARY)[0].entries}
                 for doc in db["results_nodes"].find({"lv": 0, "bl": {"$exists": True}})]
        assert {True, False} in kinds, "a leaf holds records written before and ids appended since"
        seen, cursor = [], None
        while True:
            page = results.get("/standardized_output", params={"project": "mixed", "limit": 25,
                                                               **({"cursor": cursor} if cursor else {})}).json()
            seen += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert [i["run"]["run_id"] for i in seen] == [f"after-{i}" for i in reversed(range(30))] + \
            [f"before-{i}" for i in reversed(range(10))]
        assert seen[-1] == before[0].model_dump(mode="json")
        assert seen[0]["results"]["latency"]["ttft"]["p50"] == after[0]["results"]["latency"]["ttft"]["p50"]
        tagged = results.get("/standardized_output", params={"tag": "t1", "project": "mixed", "limit": 100}).json()
        assert tagged["count"] == 40
        assert results.get("/standardized_output/before-3%230").json()["run"]["run_id"] == "before-3"
    finally:
        client.close()


def test_new_records_are_whole_in_the_time_tree_only(serve_function, mongo_url, database_name):
    results = serve_function("results")
    batch = [record(f"run-{i}", project="p", model="m", tags=["a", "b"], started=START + dt.timedelta(minutes=i))
             for i in range(10)]
    assert results.post("/standardized_output", json=batch).status_code == 201
    client = MongoClient(mongo_url, tz_aware=True)
    try:
        from vllmbench.store.results import ResultsStore

        snap = ResultsStore(client[database_name]).forest.snapshot()
        whole = {name: sum(1 for _, value in snap.scan(name) if len(value) == 6)
                 for name in [L.STD, *(L.facet_tree(L.STD, f, v) for f, v in
                                       [("project", "p"), ("model", "m"), ("harness", "vllmbench"),
                                        ("tag", "a"), ("tag", "b")])]}
        assert whole == {L.STD: 10, "std:project=p": 0, "std:model=m": 0, "std:harness=vllmbench": 0,
                         "std:tag=a": 0, "std:tag=b": 0}
        assert results.get("/standardized_output", params={"tag": "b"}).json()["count"] == 10
    finally:
        client.close()
