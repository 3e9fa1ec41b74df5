"""The trees hold record ids; their leaves written when they held whole records (the time
tree until December 2026, the facet trees before that) still list, beside entries appended
since, and a page spans both (docs/results.md, "Records")."""

from __future__ import annotations

import datetime as dt

from pymongo import MongoClient

from tests.fixtures.old_layout import write_records_in_leaves
from tests.fixtures.records import record
from vllmbench.models.results import StandardizedRecord
from vllmbench.store import results_layout as L

START = dt.datetime(2026, 9, 1, tzinfo=dt.timezone.utc)


def test_a_page_spans_leaves_with_records_and_entries_that_name_them(serve_function, mongo_url,
                                                                            database_name):
    client = MongoClient(mongo_url, tz_aware=True)
    try:
        db = client[database_name]
        before = [StandardizedRecord.model_validate(record(f"before-{i}", project="mixed", started=START
                                                           + dt.timedelta(hours=i), tags=["t1"]))
                  for i in range(10)]  # a leaf under half full: the appends rewrite it, with both kinds
        write_records_in_leaves(db, before)
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
        # The time tree (no filter, and a time range) too: its leaf of before holds the records.
        unfiltered = results.get("/standardized_output", params={"limit": 100}).json()["items"]
        assert unfiltered == seen
        since = results.get("/standardized_output", params={"since": (START + dt.timedelta(hours=8)).isoformat(),
                                                            "until": (START + dt.timedelta(hours=11)).isoformat(),
                                                            "sort": "time"}).json()["items"]
        assert [i["run"]["run_id"] for i in since] == ["before-8", "before-9", "after-0"]
        assert results.get("/standardized_output/before-3%230").json()["run"]["run_id"] == "before-3"
    finally:
        client.close()


def test_a_new_record_is_stored_once_and_every_tree_names_it(serve_function, mongo_url, database_name):
    results = serve_function("results")
    batch = [record(f"run-{i}", project="p", model="m", tags=["a", "b"], started=START + dt.timedelta(minutes=i))
             for i in range(10)]
    assert results.post("/standardized_output", json=batch).status_code == 201
    client = MongoClient(mongo_url, tz_aware=True)
    try:
        from vllmbench.store.nodes import Packed
        from vllmbench.store.results import ResultsStore

        snap = ResultsStore(client[database_name]).forest.snapshot()
        names = [L.STD, *(L.facet_tree(L.STD, f, v) for f, v in [("project", "p"), ("model", "m"),
                                                                 ("harness", "vllmbench"), ("tag", "a"), ("tag", "b")])]
        entries = {name: [value for _, value in snap.scan(name)] for name in names}
        assert {name: len(found) for name, found in entries.items()} == dict.fromkeys(names, 10)
        assert not any(type(v) is Packed for found in entries.values() for value in found for v in value)
        stored = {doc["_id"] for doc in client[database_name][L.RECORDS].find({}, {"_id": 1})}
        assert {value[0] for value in entries[L.STD]} == stored and len(stored) == 10
        page = results.get("/standardized_output").json()
        assert page["items"] == [StandardizedRecord.model_validate(r).model_dump(mode="json") for r in reversed(batch)]
        assert results.get("/standardized_output", params={"tag": "b"}).json()["count"] == 10
    finally:
        client.close()


def test_records_stored_under_the_first_form_of_id_are_the_same_content_posted_again(serve_function, mongo_url,
                                                                                      database_name):
    """Record ids now start with the record's time (``record_id``); a record stored before, under
    the hash of its content alone, posted again unchanged is "unchanged", and changed a 409."""
    client = MongoClient(mongo_url, tz_aware=True)
    try:
        db = client[database_name]
        docs = [record(f"old-id-{i}", project="ids", started=START + dt.timedelta(minutes=i)) for i in range(5)]
        write_records_in_leaves(db, [StandardizedRecord.model_validate(d) for d in docs])
        assert all(not doc["_id"].startswith("t") for doc in db[L.RECORDS].find({}, {"_id": 1}))
        results = serve_function("results")
        again = results.post("/standardized_output", json=docs)
        assert again.status_code in (200, 201), again.text
        assert again.json()["stored"] == 0 and again.json()["unchanged"] == 5
        changed = dict(docs[2], tags=["changed"])
        clash = results.post("/standardized_output", json=[changed])
        assert clash.status_code == 409 and "old-id-2#0" in clash.text
        assert db[L.RECORDS].count_documents({}) == 5
        new = results.post("/standardized_output", json=[record("new-id-0", project="ids",
                                                                started=START + dt.timedelta(minutes=9))])
        assert new.status_code == 201
        assert db[L.RECORDS].count_documents({"_id": {"$regex": "^t"}}) == 1
        page = results.get("/standardized_output", params={"project": "ids", "limit": 10}).json()
        assert [i["run"]["run_id"] for i in page["items"]] == ["new-id-0", *(f"old-id-{i}" for i in (4, 3, 2, 1, 0))]
    finally:
        client.close()


def test_record_and_node_ids_come_in_time_order():
    """The database's _id index takes new documents at its end (docs/results.md, "Ingest")."""
    import time

    from vllmbench.store.results import content_id, record_id, same_record
    from vllmbench.store.tree import new_node_id

    early, late = record_id(1_000, "{}"), record_id(2_000, "{}")
    assert early < late and early[13:] == late[13:] == content_id("{}")
    assert same_record(content_id("{}"), early) and same_record(early, early) and not same_record(early, late)
    assert not same_record(content_id("{\"a\":1}"), early)
    first = new_node_id()
    time.sleep(0.002)
    assert new_node_id() > first and len({new_node_id() for _ in range(10_000)}) == 10_000
