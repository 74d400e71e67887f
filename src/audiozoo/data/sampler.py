"""Length-bucketing batch sampler and deterministic dataset splits."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Sampler

from ..errors import DataError


def _dist_rank_world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class BucketingSampler(Sampler[list[int]]):
    """Batch sampler grouping items of similar duration (less padding per batch).

    Items are sorted by duration and cut into ``num_buckets`` equal-count buckets. Each epoch the items
    of every bucket are shuffled, cut into batches of ``batch_size``, and the batches of all buckets are
    shuffled together — all from ``(seed, epoch)`` only, so every rank draws the same batch list and
    takes every ``world_size``-th batch starting at ``rank``. The batch list is padded by repeating its
    first batches (or, with ``drop_last``, trimmed) to a multiple of ``world_size``, so every rank gets
    the same number of batches (DDP would hang otherwise). With one process every index appears exactly
    once per epoch (unless ``drop_last`` drops partial batches).

    Args:
        durations: seconds per item, or a dataset with a ``durations`` attribute (:class:`AudioDataset`).
        batch_size: items per batch.
        num_buckets: number of duration buckets (clipped to the number of items).
        shuffle: shuffle within and between buckets (else sorted order, for evaluation).
        drop_last: drop each bucket's incomplete last batch.
        rank, world_size: this process's place; default from ``torch.distributed`` when initialised.
    """

    def __init__(
        self,
        durations: Sequence[float] | Any,
        batch_size: int,
        num_buckets: int = 10,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if hasattr(durations, "durations"):
            durations = durations.durations
        self.durations = np.asarray(list(durations), dtype=np.float64)
        if self.durations.ndim != 1 or len(self.durations) == 0:
            raise DataError("BucketingSampler needs a non-empty sequence of durations")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise DataError(f"batch_size must be a positive int, got {batch_size!r}")
        if num_buckets < 1:
            raise DataError(f"num_buckets must be >= 1, got {num_buckets}")
        r, w = _dist_rank_world()
        self.rank = r if rank is None else int(rank)
        self.world_size = w if world_size is None else int(world_size)
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise DataError(f"need 0 <= rank < world_size, got rank={self.rank} world_size={self.world_size}")
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0
        order = np.argsort(self.durations, kind="stable")  # ties keep index order: deterministic
        self.buckets = [b for b in np.array_split(order, min(num_buckets, len(order))) if len(b)]
        per_bucket = [
            len(b) // batch_size if drop_last else math.ceil(len(b) / batch_size) for b in self.buckets
        ]
        self.num_batches_total = sum(per_bucket)
        if drop_last:
            self.num_batches_total -= self.num_batches_total % self.world_size
        if self.num_batches_total == 0:
            raise DataError(
                f"no batch left: {len(order)} items, batch_size={batch_size}, drop_last={drop_last}, "
                f"world_size={self.world_size}"
            )

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch's shuffle (call at the start of every epoch, on every rank)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Batches this rank yields per epoch (the same on every rank)."""
        return math.ceil(self.num_batches_total / self.world_size)

    def all_batches(self) -> list[list[int]]:
        """The epoch's batch list shared by all ranks (before taking this rank's share)."""
        rng = np.random.default_rng(np.random.SeedSequence([int(self.seed), int(self.epoch)]))
        batches: list[list[int]] = []
        for bucket in self.buckets:
            idx = rng.permutation(bucket) if self.shuffle else bucket
            for s in range(0, len(idx), self.batch_size):
                b = idx[s : s + self.batch_size]
                if len(b) == self.batch_size or not self.drop_last:
                    batches.append([int(i) for i in b])
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        if self.drop_last:
            batches = batches[: self.num_batches_total]
        else:
            total = len(self) * self.world_size
            batches = batches + [batches[i % len(batches)] for i in range(total - len(batches))]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.all_batches()[self.rank :: self.world_size]


def _identity(item: Any) -> str:
    if isinstance(item, Mapping) and "audio_filepath" in item:
        return f"{item['audio_filepath']}@{item.get('offset', 0)}"
    if isinstance(item, Mapping):
        return json.dumps({k: v for k, v in item.items() if not str(k).startswith("_")}, sort_keys=True,
                          default=str)
    return repr(item)


def _counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Split n into integer counts proportional to ``fractions`` (largest-remainder rounding)."""
    raw = [f * n for f in fractions]
    counts = [math.floor(x) for x in raw]
    rest = n - sum(counts)
    # give the leftovers to the largest remainders; ties go to the earlier split (deterministic)
    for i in sorted(range(len(raw)), key=lambda i: (-(raw[i] - counts[i]), i))[:rest]:
        counts[i] += 1
    return counts


def deterministic_split(
    items: Sequence[Any],
    split: Mapping[str, float] | Callable[[Any], str],
    seed: int = 0,
    stratify: str | Callable[[Any], Any] | None = None,
) -> dict[str, list[Any]]:
    """Split ``items`` deterministically into named subsets.

    Args:
        items: manifest items (or any values).
        split: fractions per subset, e.g. ``{"train": 0.8, "valid": 0.1, "test": 0.1}`` (they must sum
            to 1), or a function mapping an item to its subset name (e.g. by take number).
        seed: varies the assignment for fractional splits.
        stratify: with fractions, split each group of this key (or key function) separately so every
            subset keeps the label proportions.

    Fractional assignment orders items by a hash of ``(seed, audio_filepath)`` rather than by a random
    permutation of the list, so an item's subset does not depend on the order of the input or on what
    other items exist in its group beyond the counts. Items keep their input order inside each subset.
    """
    if callable(split):
        out: dict[str, list[Any]] = {}
        for it in items:
            out.setdefault(str(split(it)), []).append(it)
        return out
    names = list(split)
    fracs = [float(split[k]) for k in names]
    if not names or any(f < 0 for f in fracs) or abs(sum(fracs) - 1.0) > 1e-6:
        raise DataError(f"split fractions must be >= 0 and sum to 1, got {dict(split)}")
    key_fn: Callable[[Any], Any]
    if stratify is None:
        key_fn = lambda it: None  # noqa: E731
    elif callable(stratify):
        key_fn = stratify
    else:
        key_fn = lambda it: it.get(stratify)  # noqa: E731
    groups: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        groups.setdefault(repr(key_fn(it)), []).append(i)
    assign: dict[int, str] = {}
    for idx in groups.values():
        ranked = sorted(
            idx, key=lambda i: (hashlib.sha256(f"{seed}\0{_identity(items[i])}".encode()).hexdigest(), i)
        )
        pos = 0
        for name, c in zip(names, _counts(len(ranked), fracs)):
            for i in ranked[pos : pos + c]:
                assign[i] = name
            pos += c
    return {name: [it for i, it in enumerate(items) if assign[i] == name] for name in names}
