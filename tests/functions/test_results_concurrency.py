"""The results layout under concurrent writers and readers, through real HTTP and a real FerretDB.

Nothing acknowledged is lost, nothing is stored twice, a refused batch undoes nothing
another request was told is stored (issue 9, item 1), and cursor pages stay exact
while records arrive.
"""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.fixtures.records import record
from vllmbench.query import ResultQuery

BASE = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)


@pytest.fixture
def results(serve_function):
    return serve_function("results")


def walk(results, **params) -> list[str]:
    seen, cursor = [], None
    while True:
        page = results.get("/standardized_output", params={"limit": 37, **params, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        body = page.json()
        seen += [f"{i['run']['run_id']}#{i['run']['stage']}" for i in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


def test_a_refused_batch_never_undoes_what_a_concurrent_request_was_told_is_stored(results):
    """One request posts [new, conflicting], another [new], at the same moment: when the second is
    answered 2xx, the new record is stored. The first layout lost it in 17 of 40 rounds."""
    lost, refused_wrongly = [], []
    for round_ in range(40):
        new, taken = record(f"race-new-{round_}"), record(f"race-taken-{round_}")
        assert results.post("/standardized_output", json=taken).status_code == 201
        clashing = record(f"race-taken-{round_}", ttft=99.0)
        barrier = threading.Barrier(2)

        def post(body):
            barrier.wait()
            return results.post("/standardized_output", json=body)

        with ThreadPoolExecutor(2) as pool:
            refused = pool.submit(post, [new, clashing])
            alone = pool.submit(post, [new])
            refused, alone = refused.result(), alone.result()
        assert refused.status_code == 409, refused.text
        if alone.status_code not in (200, 201):
            refused_wrongly.append(round_)  # a valid batch refused: it saw the other's half-undone write
        elif results.get(f"/runs/race-new-{round_}").status_code != 200:
            lost.append(round_)
    assert (lost, refused_wrongly) == ([], []), f"acknowledged and lost: {lost}; valid but refused: {refused_wrongly}"


def test_concurrent_writers_lose_nothing_and_store_nothing_twice(results):
    writers, batches, per_batch = 8, 6, 10
    answers = []

    def write(w: int) -> None:
        for b in range(batches):
            batch = [record(f"w{w}-b{b}-r{r}", started=BASE + dt.timedelta(seconds=(w * 1000 + b * 10 + r) % 97))
                     for r in range(per_batch)]
            answers.append(results.post("/standardized_output", json=batch).status_code)
            # Every writer also sends one batch twice: the second is unchanged, not a duplicate.
            if b == 0:
                answers.append(results.post("/standardized_output", json=batch).status_code)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers.count(201) == writers * batches and answers.count(200) == writers
    expected = {f"w{w}-b{b}-r{r}#0" for w in range(writers) for b in range(batches) for r in range(per_batch)}
    for params in ({}, {"sort": "time"}, {"project": "demo"}, {"tag": "nightly"}):
        seen = walk(results, **params)
        assert len(seen) == len(set(seen)) == len(expected), params
        assert set(seen) == expected


def test_two_stores_on_one_database_commit_like_two_processes(mongo_url, database_name):
    """Two store instances (each its own client, cache and committer, as two pods have) write at
    once: the root-version insert lets one win at a time and the other rebuild on top."""
    from vllmbench.models.results import StandardizedRecord
    from vllmbench.store.mongo import MongoStore
    from vllmbench.store.results import ResultsStore

    clients = [MongoStore(mongo_url) for _ in range(2)]
    stores = [ResultsStore(client.database(database_name)) for client in clients]

    def write(i: int) -> None:
        for b in range(15):
            stores[i].insert_standardized([StandardizedRecord.model_validate(record(f"s{i}-{b}-{r}")) for r in range(4)])

    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(write, range(2)))
        versions = {store.forest.snapshot().version for store in stores}
        assert versions == {30}, versions  # one commit per batch, none lost to the other writer
        check(stores)
    finally:
        for client in clients:
            client.close()


def check(stores) -> None:
    from vllmbench.query import ResultQuery

    for store in stores:
        found, cursor = [], None
        while True:
            page = store.list_standardized(ResultQuery(limit=500, cursor=cursor))
            found += [i["run"]["run_id"] for i in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert sorted(found) == sorted(f"s{i}-{b}-{r}" for i in range(2) for b in range(15) for r in range(4))


def test_cursor_pages_stay_exact_while_records_arrive(results):
    """Pages walked newest first while newer, older and same-time records are posted between pages:
    every record there at the start is seen exactly once, in order, and none twice."""
    start = [record(f"page-{i:03d}", started=BASE + dt.timedelta(minutes=i // 4)) for i in range(120)]
    assert results.post("/standardized_output", json=start).status_code == 201
    seen, cursor, extra = [], None, 0
    while True:
        page = results.get("/standardized_output", params={"limit": 11, **({"cursor": cursor} if cursor else {})}).json()
        seen += [(i["run"]["started_at"], i["run"]["run_id"]) for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        extra += 1
        arriving = [record(f"late-{extra}-newer", started=BASE + dt.timedelta(days=2)),
                    record(f"late-{extra}-older", started=BASE - dt.timedelta(days=2)),
                    record(f"late-{extra}-same", started=BASE + dt.timedelta(minutes=15))]
        assert results.post("/standardized_output", json=arriving).status_code == 201
    ids = [run_id for _, run_id in seen]
    assert len(ids) == len(set(ids))
    assert {f"page-{i:03d}" for i in range(120)} <= set(ids)
    assert not any(i.endswith("-newer") for i in ids)  # newer than the first page: after the cursor's place
    assert seen == sorted(seen, reverse=True)


def test_a_store_far_behind_another_catches_up_in_a_few_reads(mongo_url, database_name):
    """A process idle while another committed many versions reads the newest one at once
    (the head hint), not one version after the other."""
    from vllmbench.models.results import StandardizedRecord
    from vllmbench.store.mongo import MongoStore
    from vllmbench.store.results import ResultsStore

    clients = [MongoStore(mongo_url) for _ in range(2)]
    try:
        busy, idle = (ResultsStore(c.database(database_name)) for c in clients)
        idle.insert_standardized([StandardizedRecord.model_validate(record("first"))])
        for i in range(40):
            busy.insert_standardized([StandardizedRecord.model_validate(record(f"later-{i}"))])
        reads = []
        roots = idle.forest.roots
        original = roots.find_one
        idle.forest.roots = type("Counting", (), {"find_one": lambda self, *a, **k: reads.append(a) or original(*a, **k)})()
        assert idle.forest.snapshot().version == 41
        assert len(reads) < 15, len(reads)
    finally:
        for client in clients:
            client.close()


def test_a_store_idle_past_the_collection_grace_still_reads_the_newest_version(mongo_url, database_name,
                                                                                monkeypatch):
    """Seen at 1M records in the bench: a reader idle while another process committed and
    collected old roots probed a collected root, found nothing, and answered from its old
    snapshot (404 for new runs). Past the grace period the cached head is not trusted."""
    from vllmbench.models.results import StandardizedRecord
    from vllmbench.store import forest
    from vllmbench.store.mongo import MongoStore
    from vllmbench.store.results import ResultsStore

    monkeypatch.setattr(forest, "GC_GRACE_S", 0.3)
    monkeypatch.setattr(forest, "GC_KEEP_VERSIONS", 2)
    clients = [MongoStore(mongo_url) for _ in range(2)]
    try:
        writer, reader = (ResultsStore(c.database(database_name)) for c in clients)
        writer.insert_standardized([StandardizedRecord.model_validate(record("old"))])
        assert reader.records_of_run("old")
        import time

        for i in range(12):
            writer.insert_standardized([StandardizedRecord.model_validate(record(f"new-{i}"))])
            time.sleep(0.05)
        time.sleep(0.4)
        writer.insert_standardized([StandardizedRecord.model_validate(record("newest"))])  # collects what is due
        assert writer.forest.roots.find_one({"_id": forest.version_id(2)}) is None  # collected
        assert reader.records_of_run("newest") and reader.records_of_run("new-0")
    finally:
        for client in clients:
            client.close()


def test_pipelined_commits_built_on_a_commit_that_loses_its_race_are_built_again(mongo_url, database_name):
    """Within a store, a commit is built on the one before it while that one's writes are under way
    (docs/results.md, "Commits"). Two stores with four writer threads each race for every version:
    commits lose to the other store's, and those built on them must be built again. Every insert
    that returned is readable by both stores, once."""
    from vllmbench.models.results import StandardizedRecord
    from vllmbench.store.mongo import MongoStore
    from vllmbench.store.results import ResultsStore

    clients = [MongoStore(mongo_url) for _ in range(2)]
    stores = [ResultsStore(client.database(database_name)) for client in clients]
    acknowledged: list[str] = []
    lock = threading.Lock()

    def write(job: tuple[int, int]) -> None:
        i, w = job
        for b in range(6):
            ids = [f"p{i}-w{w}-b{b}-r{r}" for r in range(3)]
            stores[i].insert_standardized([StandardizedRecord.model_validate(record(run)) for run in ids])
            with lock:
                acknowledged.extend(ids)

    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(write, [(i, w) for i in range(2) for w in range(4)]))
        assert len(acknowledged) == 2 * 4 * 6 * 3
        for store in stores:
            found, cursor = [], None
            while True:
                page = store.list_standardized(ResultQuery(limit=500, cursor=cursor))
                found += [item["run"]["run_id"] for item in page["items"]]
                cursor = page["next_cursor"]
                if not cursor:
                    break
            assert len(found) == len(set(found)) and sorted(found) == sorted(acknowledged)
    finally:
        for client in clients:
            client.close()
