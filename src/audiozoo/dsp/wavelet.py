"""Haar discrete wavelet transform (DWT) and its inverse, as a lossless sub-band split of waveforms.

One level of the orthonormal Haar DWT maps ``x (..., T)`` (``T`` even) to an approximation (low band) and a
detail (high band), each of ``T / 2`` samples::

    low[n]  = (x[2n] + x[2n + 1]) / sqrt(2)        high[n] = (x[2n] - x[2n + 1]) / sqrt(2)

and the inverse interleaves ``(low + high) / sqrt(2)`` and ``(low - high) / sqrt(2)``. The transform is
orthogonal, so it is lossless (the inverse reconstructs ``x`` up to float rounding) and preserves energy
(a squared error between two signals equals the squared error between their sub-bands).

``levels > 1`` splits *every* band again (a full wavelet-packet tree, as multi-band vocoders use: Fre-GAN 2,
FreGrad, PeriodWave's DWT path), giving ``2 ** levels`` bands of ``T / 2 ** levels`` samples. Band order is
the tree order (``[L, H]`` -> ``[LL, LH, HL, HH]``); because the Haar high-pass folds its band, the frequency
order of the deeper high bands is Gray-code-like (``HH`` lies below ``HL``). Lossless either way.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from audiozoo.errors import AudioError, ConfigError

__all__ = ["haar_dwt", "haar_idwt"]

_INV_SQRT2 = 1.0 / math.sqrt(2.0)


def _check_levels(levels: int) -> None:
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        raise ConfigError(f"Haar DWT levels must be a positive integer, got {levels!r}")


def haar_dwt(x: Tensor, levels: int = 1) -> Tensor:
    """Sub-bands of ``x``: ``(..., T)`` -> ``(..., 2 ** levels, T // 2 ** levels)``.

    ``T`` must be a multiple of ``2 ** levels`` (pad or crop first: a DWT of a ragged length is not lossless).
    """
    _check_levels(levels)
    if x.ndim < 1:
        raise AudioError("haar_dwt expects a signal (..., T), got a scalar")
    n = x.shape[-1]
    if n % (2**levels):
        raise AudioError(f"haar_dwt: length {n} is not a multiple of 2 ** levels = {2 ** levels}; pad it first")
    bands = x.unsqueeze(-2)  # (..., 1, T)
    for _ in range(levels):
        even, odd = bands[..., 0::2], bands[..., 1::2]
        low, high = (even + odd) * _INV_SQRT2, (even - odd) * _INV_SQRT2
        # every band k becomes (2k: its low half, 2k + 1: its high half)
        bands = torch.stack([low, high], dim=-2).flatten(-3, -2)
    return bands


def haar_idwt(bands: Tensor, levels: int | None = None) -> Tensor:
    """Inverse of :func:`haar_dwt`: ``(..., 2 ** levels, N)`` -> ``(..., N * 2 ** levels)``.

    ``levels`` defaults to ``log2`` of the band count (which must be a power of two).
    """
    if bands.ndim < 2:
        raise AudioError(f"haar_idwt expects sub-bands (..., n_bands, N), got shape {tuple(bands.shape)}")
    n_bands = bands.shape[-2]
    if levels is None:
        levels = int(round(math.log2(n_bands))) if n_bands > 0 else 0
    _check_levels(levels)
    if n_bands != 2**levels:
        raise AudioError(f"haar_idwt: {n_bands} bands is not 2 ** levels = {2 ** levels}")
    for _ in range(levels):
        pairs = bands.unflatten(-2, (bands.shape[-2] // 2, 2))  # (..., K, 2, N)
        low, high = pairs[..., 0, :], pairs[..., 1, :]
        even, odd = (low + high) * _INV_SQRT2, (low - high) * _INV_SQRT2
        bands = torch.stack([even, odd], dim=-1).flatten(-2)  # interleave: (..., K, 2N)
    return bands.squeeze(-2)
