"""Batching variable-length audio: zero padding plus an explicit ``lengths`` tensor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..errors import DataError


def pad_sequence(
    seqs: Sequence[torch.Tensor], dim: int = -1, value: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack tensors that differ only in size along ``dim``, padding them at the end with ``value``.

    Args:
        seqs: B tensors of equal rank, e.g. waveforms ``(T_i,)`` or features ``(F, L_i)``.
        dim: the variable axis of each tensor (``-1``: time last, the audiozoo convention).

    Returns:
        ``(padded, lengths)``: ``padded`` is ``(B, *shape)`` with the ``dim`` axis of size ``max_i``,
        ``lengths`` is ``(B,)`` long with each tensor's size along ``dim``.
    """
    if len(seqs) == 0:
        raise DataError("pad_sequence needs at least one tensor")
    ref = seqs[0]
    d = dim % ref.dim()
    for i, s in enumerate(seqs):
        if s.dim() != ref.dim() or any(s.shape[k] != ref.shape[k] for k in range(ref.dim()) if k != d):
            raise DataError(
                f"pad_sequence: tensor {i} has shape {tuple(s.shape)}, incompatible with "
                f"{tuple(ref.shape)} (only axis {dim} may differ)"
            )
    lengths = torch.tensor([s.shape[d] for s in seqs], dtype=torch.long)
    shape = list(ref.shape)
    shape[d] = int(lengths.max())
    out = torch.full((len(seqs), *shape), value, dtype=ref.dtype, device=ref.device)
    for i, s in enumerate(seqs):
        out[i].narrow(d, 0, s.shape[d]).copy_(s)
    return out, lengths


def collate_audio(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Collate :class:`AudioDataset` items into a batch.

    Returns ``{"audio": (B, T_max) or (B, C, T_max) zero padded, "lengths": (B,) long,
    "label": (B,) long (or (B, K) when every item has a (K,) label tensor)``, every other key as a
    list of B values}. ``lengths`` is taken from the items' ``length`` (real samples, before any
    padding the dataset added) when present.
    """
    if len(items) == 0:
        raise DataError("collate_audio needs at least one item")
    audio, lengths = pad_sequence([it["audio"] for it in items], dim=-1)
    if all("length" in it for it in items):
        lengths = torch.tensor([int(it["length"]) for it in items], dtype=torch.long)
    batch: dict[str, Any] = {"audio": audio, "lengths": lengths}
    if all("label" in it for it in items):
        labels = [it["label"] for it in items]
        if all(isinstance(x, torch.Tensor) for x in labels):
            if len({tuple(x.shape) for x in labels}) == 1:
                batch["label"] = torch.stack(labels).long()
            else:  # label sequences of different lengths: pad with -100 (ignored by cross-entropy)
                batch["label"], batch["label_lengths"] = pad_sequence(labels, dim=-1, value=-100)
        else:
            batch["label"] = torch.tensor([int(x) for x in labels], dtype=torch.long)
    skip = {"audio", "length", "label"}
    keys = dict.fromkeys(k for it in items for k in it if k not in skip)
    for k in keys:
        batch[k] = [it.get(k) for it in items]
    return batch
