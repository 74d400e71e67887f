"""Random fixed-length segments of padded sequences, aligned between a frame-rate and a sample-rate signal.

End-to-end text-to-waveform models (FastSpeech 2s, Ren et al. 2021, Sec. 2.4; JETS; VITS) cannot decode a whole
utterance's waveform in training: they decode a random slice of ``S`` frames of the hidden sequence and compare it
with samples ``[start * hop, (start + S) * hop)`` of the audio. :func:`random_segment_starts` draws one start per
item inside its valid frames; :func:`slice_segments` cuts ``(B, ..., L)``-shaped tensors at those starts (zero
padding past the end, for items shorter than ``S``). Slicing the audio with ``starts * hop`` and ``S * hop`` gives
the samples of exactly those frames when frame ``i`` owns samples ``[i * hop, (i + 1) * hop)`` (HiFi-GAN's mel:
``L = T // hop`` frames, frame ``i`` centred on sample ``hop * i + hop / 2``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError

__all__ = ["random_segment_starts", "slice_segments"]


def random_segment_starts(lengths: Tensor, segment: int, generator: torch.Generator | None = None) -> Tensor:
    """One start per item, uniform in ``[0, max(lengths[i] - segment, 0)]``: ``(B,)`` long on ``lengths``' device.

    An item shorter than ``segment`` starts at 0 (its slice is zero-padded by :func:`slice_segments`).
    """
    if segment < 1:
        raise ConfigError(f"segment must be >= 1, got {segment}")
    room = (lengths.long() - int(segment)).clamp_min(0)
    u = torch.rand(lengths.shape, generator=generator, device="cpu" if generator is not None else lengths.device)
    return torch.minimum((u.to(lengths.device) * (room + 1).to(u.dtype)).long(), room)


def slice_segments(x: Tensor, starts: Tensor, segment: int, dim: int = -1) -> Tensor:
    """``x[i, ..., starts[i] : starts[i] + segment, ...]`` along ``dim`` for every item ``i`` (batch first), zero
    past ``x``'s end: ``(B, ..., L, ...) -> (B, ..., segment, ...)``."""
    if segment < 1:
        raise ConfigError(f"segment must be >= 1, got {segment}")
    dim = dim % x.ndim
    if dim == 0 or starts.shape != (x.shape[0],):
        raise ConfigError(f"slice_segments needs starts (B,) = ({x.shape[0]},) and a non-batch dim, got "
                          f"{tuple(starts.shape)}, dim {dim}")
    pad = [0, 0] * (x.ndim - 1 - dim) + [0, int(segment)]
    xp = F.pad(x, pad)
    idx = starts.long().to(x.device)[:, None] + torch.arange(int(segment), device=x.device)[None]  # (B, S)
    shape = [x.shape[0]] + [1] * (x.ndim - 1)
    shape[dim] = int(segment)
    idx = idx.reshape(shape).expand(*[s if i != dim else int(segment) for i, s in enumerate(xp.shape)])
    return torch.gather(xp, dim, idx)
