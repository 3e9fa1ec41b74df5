"""The live progress line with several worker processes: one line for all of them."""

from vllmbench.harness.sender import merge_snapshots
from vllmbench.harness.summary import progress_line


def test_the_counts_of_every_worker_are_added_and_their_recent_ttfts_pooled():
    a = {"done": 30, "in_flight": 2, "errors": 1, "ttfts": [20.0] * 300}
    b = {"done": 25, "in_flight": 5, "errors": 0, "ttfts": [30.0] * 300}
    merged = merge_snapshots([a, b], 2.0)
    assert (merged["done"], merged["in_flight"], merged["errors"], merged["elapsed_s"]) == (55, 7, 1, 2.0)
    assert sorted(set(merged["ttfts"])) == [20.0, 30.0] and len(merged["ttfts"]) == 200
    assert progress_line(merged).startswith("done 55  in flight 7  errors 1  rate 27.5/s")


def test_a_finished_worker_without_ttfts_still_counts():
    merged = merge_snapshots([{"done": 30, "in_flight": 0, "errors": 0, "ttfts": []},
                              {"done": 3, "in_flight": 1, "errors": 0, "ttfts": [21.0]}], 1.0)
    assert merged["done"] == 33 and merged["ttfts"] == [21.0]
