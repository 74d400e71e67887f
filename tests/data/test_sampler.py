from __future__ import annotations

import numpy as np
import pytest

from audiozoo.data import BucketingSampler, deterministic_split
from audiozoo.errors import DataError

DURS = list(np.random.default_rng(0).uniform(0.5, 10.0, size=103))


def test_every_index_once_per_epoch_and_epochs_differ():
    s = BucketingSampler(DURS, batch_size=8, num_buckets=5, seed=7)
    epochs = []
    for epoch in range(3):
        s.set_epoch(epoch)
        batches = list(s)
        assert len(batches) == len(s)
        flat = [i for b in batches for i in b]
        assert sorted(flat) == list(range(len(DURS)))
        epochs.append(batches)
    assert epochs[0] != epochs[1]
    s.set_epoch(0)
    assert list(s) == epochs[0]  # deterministic
    assert list(BucketingSampler(DURS, batch_size=8, num_buckets=5, seed=7)) == epochs[0]


def test_batches_come_from_one_bucket():
    s = BucketingSampler(DURS, batch_size=4, num_buckets=6, seed=1)
    bucket_of = {int(i): k for k, b in enumerate(s.buckets) for i in b}
    for batch in s:
        assert len({bucket_of[i] for i in batch}) == 1
        assert max(DURS[i] for i in batch) - min(DURS[i] for i in batch) < 9.5 / 6 + 1.0  # a bucket's span
    # not shuffled: sorted by duration
    flat = [i for b in BucketingSampler(DURS, batch_size=4, shuffle=False) for i in b]
    assert [DURS[i] for i in flat] == sorted(DURS)


@pytest.mark.parametrize("world", [2, 3, 4])
def test_ranks_get_equal_batch_counts_and_cover_everything(world):
    samplers = [BucketingSampler(DURS, batch_size=5, num_buckets=4, seed=3, rank=r, world_size=world)
                for r in range(world)]
    for s in samplers:
        s.set_epoch(2)
    per_rank = [list(s) for s in samplers]
    assert len({len(b) for b in per_rank}) == 1 and len(per_rank[0]) == len(samplers[0])
    flat = [i for batches in per_rank for b in batches for i in b]
    assert set(flat) == set(range(len(DURS)))
    n_batches = sum(len(b) for b in per_rank)
    assert n_batches == len(samplers[0]) * world
    # the padding repeats at most world-1 whole batches
    assert len(flat) - len(DURS) <= (world - 1) * 5
    # all ranks share one batch list: the same seed/epoch on every rank
    assert all(s.all_batches() == samplers[0].all_batches() for s in samplers)


def test_drop_last():
    s = BucketingSampler(DURS, batch_size=8, num_buckets=5, drop_last=True, rank=1, world_size=2)
    batches = list(s)
    assert all(len(b) == 8 for b in batches)
    assert len(batches) == len(BucketingSampler(DURS, batch_size=8, num_buckets=5, drop_last=True, world_size=2))


def test_sampler_errors():
    with pytest.raises(DataError):
        BucketingSampler([], batch_size=2)
    with pytest.raises(DataError, match="rank"):
        BucketingSampler(DURS, batch_size=2, rank=2, world_size=2)
    with pytest.raises(DataError, match="batch_size"):
        BucketingSampler(DURS, batch_size=0)


def _items(n, labels=("a", "b", "c")):
    return [{"audio_filepath": f"/x/{i}.wav", "duration": 1.0, "label": labels[i % len(labels)]} for i in range(n)]


def test_split_fractions_are_exact_deterministic_and_order_free():
    items = _items(100)
    s = deterministic_split(items, {"train": 0.8, "valid": 0.1, "test": 0.1}, seed=0)
    assert [len(s[k]) for k in ("train", "valid", "test")] == [80, 10, 10]
    paths = {k: {it["audio_filepath"] for it in v} for k, v in s.items()}
    assert set.union(*paths.values()) == {it["audio_filepath"] for it in items}
    shuffled = [items[i] for i in np.random.default_rng(1).permutation(100)]
    s2 = deterministic_split(shuffled, {"train": 0.8, "valid": 0.1, "test": 0.1}, seed=0)
    assert {k: {it["audio_filepath"] for it in v} for k, v in s2.items()} == paths
    s3 = deterministic_split(items, {"train": 0.8, "valid": 0.1, "test": 0.1}, seed=1)
    assert {it["audio_filepath"] for it in s3["test"]} != paths["test"]


def test_split_stratified_and_by_function():
    items = _items(30) + _items(5, labels=("rare",))[:5]
    for i, it in enumerate(items):
        it["audio_filepath"] = f"/y/{i}.wav"
    s = deterministic_split(items, {"train": 0.8, "test": 0.2}, seed=0, stratify="label")
    from collections import Counter

    assert Counter(it["label"] for it in s["test"]) == {"a": 2, "b": 2, "c": 2, "rare": 1}
    by_take = deterministic_split(items, lambda it: "test" if it["audio_filepath"].endswith("1.wav") else "train")
    assert all(it["audio_filepath"].endswith("1.wav") for it in by_take["test"])
    with pytest.raises(DataError, match="sum to 1"):
        deterministic_split(items, {"train": 0.5, "test": 0.2})
