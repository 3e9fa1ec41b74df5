"""The copy-on-write B+tree against a sorted list: random upserts, every scan direction and start."""

from __future__ import annotations

import bisect
import random

import pytest

from vllmbench.store.tree import Builder, Node, get, scan


class Store:
    """Nodes in a dict, as the forest keeps them in a collection: written once, read by id."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}

    def load(self, node_id: str) -> Node:
        return self.nodes[node_id]

    def apply(self, root, items, **caps):
        builder = Builder(self.load, **caps)
        root, count = builder.upsert(root, sorted(items))
        assert not set(builder.created) & set(self.nodes), "a node id was written twice"
        self.nodes.update(builder.created)
        return root, count, builder


def reference_scan(keys, start, reverse, inclusive):
    if start is None:
        return list(reversed(keys)) if reverse else list(keys)
    if reverse:
        cut = bisect.bisect_right(keys, start) if inclusive else bisect.bisect_left(keys, start)
        return list(reversed(keys[:cut]))
    cut = bisect.bisect_left(keys, start) if inclusive else bisect.bisect_right(keys, start)
    return keys[cut:]


@pytest.mark.parametrize("seed", range(6))
def test_random_upserts_scan_like_a_sorted_list(seed):
    rng = random.Random(seed)
    store, root, truth = Store(), None, {}
    for _ in range(12):
        batch = {}
        for _ in range(rng.choice([1, 5, 40, 300])):
            key = (rng.randrange(200), f"id{rng.randrange(50)}")
            batch[key] = rng.random()
        root, count, _ = store.apply(root, [(list(k), v) for k, v in batch.items()], leaf_capacity=4 + seed,
                                     inner_capacity=3 + seed)
        truth.update(batch)
        assert count == len(truth)
    keys = sorted(list(k) for k in truth)
    for _ in range(60):
        start = rng.choice([None, [rng.randrange(-5, 205)], [rng.randrange(200), f"id{rng.randrange(50)}"]])
        reverse, inclusive = rng.random() < 0.5, rng.random() < 0.5
        got = [k for k, _ in scan(store.load, root, start, reverse=reverse, inclusive=inclusive)]
        assert got == reference_scan(keys, start, reverse, inclusive), (start, reverse, inclusive)
    for key in rng.sample(keys, 20):
        assert get(store.load, root, key) == truth[tuple(key)]
    assert get(store.load, root, [999, "nope"]) is None


def test_an_old_root_still_reads_its_own_snapshot():
    store = Store()
    old_root, _, _ = store.apply(None, [([i], "old") for i in range(100)], leaf_capacity=8, inner_capacity=4)
    new_root, _, builder = store.apply(old_root, [([5], "new"), ([500], "new")], leaf_capacity=8, inner_capacity=4)
    assert [v for _, v in scan(store.load, old_root)] == ["old"] * 100
    assert get(store.load, new_root, [5]) == "new" and get(store.load, new_root, [500]) == "new"
    # Only the path to the two changed leaves was rewritten, and exactly those nodes are freed.
    assert 0 < len(builder.freed) <= 6 and old_root in builder.freed
    reachable = set()
    stack = [new_root]
    while stack:
        node = store.load(stack.pop())
        reachable.add(node.id)
        if node.level:
            stack += [e[1] for e in node.entries]
    assert not reachable & set(builder.freed)


def test_a_node_written_and_replaced_in_one_change_is_never_written():
    store = Store()
    builder = Builder(store.load, leaf_capacity=4, inner_capacity=4)
    root, _ = builder.upsert(None, [([i], i) for i in range(10)])
    root, count = builder.upsert(root, [([i], -i) for i in range(3)])
    store.nodes.update(builder.created)
    assert count == 10 and builder.freed == []
    reachable, stack = set(), [root]
    while stack:
        node = store.load(stack.pop())
        reachable.add(node.id)
        stack += [e[1] for e in node.entries] if node.level else []
    assert reachable == set(builder.created)


@pytest.mark.parametrize("seed", range(3))
def test_many_lookups_at_once_find_what_single_ones_find(seed):
    from vllmbench.store.tree import get_many

    rng = random.Random(seed)
    store = Store()
    items = {(f"run{rng.randrange(300):03d}", stage): rng.random() for _ in range(400) for stage in [rng.randrange(3)]}
    root, _, _ = store.apply(None, [(list(k), v) for k, v in items.items()], leaf_capacity=5, inner_capacity=4)
    loads = []

    def load_many(ids):
        loads.append(len(ids))
        return {i: store.nodes[i] for i in ids}

    wanted = [[f"run{rng.randrange(300):03d}", rng.randrange(3)] for _ in range(30)]
    exact = get_many(load_many, root, wanted)
    for key in wanted:
        assert [v for _, v in exact[tuple(key)]] == ([items[tuple(key)]] if tuple(key) in items else [])
    assert loads
    assert len(loads) == store.load(root).level + 1  # one round trip per level, whatever the number of keys
    runs = [[f"run{rng.randrange(300):03d}"] for _ in range(20)]
    by_run = get_many(load_many, root, runs, prefix=True)
    for run in runs:
        full = [k for k, _ in scan(store.load, root, run) if k[0] == run[0]]
        got = by_run[tuple(run)]
        if got is not None:  # None: the answer may go on past the leaf; the caller scans
            assert [k for k, _ in got] == full
