"""DataLoader helpers for reproducible epochs, mid-epoch resume and distributed sampling.

Exact resume needs the data order of any epoch to be reproducible, so at the start of every epoch the
engine calls :func:`set_loader_epoch`: ``set_epoch(epoch)`` on every sampler/dataset that has one
(``DistributedSampler``, audiozoo's ``BucketingSampler`` and ``AudioDataset``), and it re-seeds the
generators of ``RandomSampler`` and of the loader (worker base seeds) from ``(seed, epoch)``. Per-item
randomness inside datasets should derive from ``(seed, epoch, index)`` (as ``AudioDataset`` does) so
that it does not depend on which worker loads an item.

A resumed run skips the batches already consumed in its epoch by wrapping the batch sampler
(:func:`skip_first_batches`, the approach of HF ``accelerate``): indices are drawn and dropped, no
sample is loaded.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, RandomSampler, Sampler

from ..errors import ConfigError
from .rng import epoch_seed


def _loader_kwargs(loader: DataLoader) -> dict[str, Any]:
    kw: dict[str, Any] = dict(
        dataset=loader.dataset, num_workers=loader.num_workers, collate_fn=loader.collate_fn,
        pin_memory=loader.pin_memory, timeout=loader.timeout, worker_init_fn=loader.worker_init_fn,
        multiprocessing_context=loader.multiprocessing_context, generator=loader.generator,
        persistent_workers=loader.persistent_workers,
    )
    if loader.num_workers > 0:
        kw["prefetch_factor"] = loader.prefetch_factor
    if getattr(loader, "pin_memory_device", ""):
        kw["pin_memory_device"] = loader.pin_memory_device
    if hasattr(loader, "in_order"):
        kw["in_order"] = loader.in_order
    return kw


def _epoch_objects(loader: DataLoader) -> list[Any]:
    objs, seen = [], set()
    bs = loader.batch_sampler
    for o in (loader.dataset, bs, getattr(bs, "sampler", None), loader.sampler):
        if o is not None and id(o) not in seen:
            seen.add(id(o))
            objs.append(o)
    return objs


def set_loader_epoch(loader: Iterable, epoch: int, seed: int) -> None:
    """Make epoch ``epoch`` of ``loader`` a pure function of ``(seed, epoch)`` (see the module docstring)."""
    if not isinstance(loader, DataLoader):
        for o in (loader, getattr(loader, "sampler", None)):
            if callable(getattr(o, "set_epoch", None)):
                o.set_epoch(epoch)
        return
    s = epoch_seed(seed, epoch)
    for o in _epoch_objects(loader):
        if callable(getattr(o, "set_epoch", None)):
            o.set_epoch(epoch)
        elif isinstance(o, RandomSampler):
            if o.generator is None:
                o.generator = torch.Generator()
            o.generator.manual_seed(s)
    if loader.generator is None:
        loader.generator = torch.Generator()  # allowed: not one of DataLoader's frozen attributes
    loader.generator.manual_seed(s ^ 0x5DEECE66D)


class _SkipBatches(Sampler):
    """A batch sampler yielding ``inner``'s batches after the first ``skip``."""

    def __init__(self, inner: Iterable, skip: int) -> None:
        self.inner, self.skip = inner, int(skip)

    def __iter__(self) -> Iterator:
        for i, b in enumerate(self.inner):
            if i >= self.skip:
                yield b

    def __len__(self) -> int:
        return max(0, len(self.inner) - self.skip)  # type: ignore[arg-type]


class _DropFirst:
    """Fallback for loaders without a batch sampler (iterable datasets): load and drop ``skip`` batches."""

    def __init__(self, loader: Iterable, skip: int) -> None:
        self.loader, self.skip = loader, skip

    def __iter__(self) -> Iterator:
        it = iter(self.loader)
        for _ in range(self.skip):
            if next(it, None) is None:
                return
        yield from it


def skip_first_batches(loader: Iterable, skip: int) -> Iterable:
    """An iterable over ``loader``'s current epoch without its first ``skip`` batches."""
    if skip <= 0:
        return loader
    if isinstance(loader, DataLoader) and loader.batch_sampler is not None:
        return DataLoader(batch_sampler=_SkipBatches(loader.batch_sampler, skip), **_loader_kwargs(loader))
    return _DropFirst(loader, skip)


def _is_rank_aware(obj: Any) -> bool:
    return isinstance(obj, DistributedSampler) or (
        hasattr(obj, "rank") and (hasattr(obj, "world_size") or hasattr(obj, "num_replicas"))
    )


def distribute_loader(loader: Iterable, rank: int, world_size: int, seed: int) -> Iterable:
    """Give each rank its own shard of ``loader``'s data (a ``DistributedSampler``).

    A loader whose sampler or batch sampler already knows its rank is returned unchanged. A plain
    ``RandomSampler``/``SequentialSampler`` loader is rebuilt with ``DistributedSampler(shuffle=...,
    seed=seed)``; the per-rank batch size stays the loader's, so the global batch is ``world_size``
    times larger.
    """
    if not isinstance(loader, DataLoader):
        return loader
    bs = loader.batch_sampler
    if _is_rank_aware(loader.sampler) or _is_rank_aware(bs) or _is_rank_aware(getattr(bs, "sampler", None)):
        return loader
    if isinstance(loader.dataset, torch.utils.data.IterableDataset):
        warnings.warn("an IterableDataset must shard itself across ranks (torch.utils.data.get_worker_info "
                      "and RANK/WORLD_SIZE); the engine leaves it unchanged", stacklevel=2)
        return loader
    if bs is None or type(bs) is not BatchSampler:
        raise ConfigError(
            f"train_loader uses a custom batch sampler ({type(bs).__name__}) that does not know its rank; "
            "give it rank/world_size (e.g. audiozoo.data.BucketingSampler(..., rank=, world_size=))"
        )
    shuffle = isinstance(loader.sampler, RandomSampler)
    sampler = DistributedSampler(loader.dataset, num_replicas=world_size, rank=rank, shuffle=shuffle,
                                 seed=seed, drop_last=bs.drop_last)
    return DataLoader(sampler=sampler, batch_size=bs.batch_size, drop_last=bs.drop_last, **_loader_kwargs(loader))
