"""Sinusoidal embeddings: diffusion / flow-matching time steps and Transformer positions.

* :func:`timestep_embedding` — the DDPM / Grad-TTS / diffusers form ``[sin(s t w_i), cos(s t w_i)]`` with
  ``w_i = max_period^(-i / (half - shift))``, ``i < half = dim / 2`` (Ho et al. 2020, App. B, after Vaswani et
  al. 2017). ``shift = 1`` is Grad-TTS / PeriodWave / diffusers' default ``downscale_freq_shift=1``; ``shift = 0``
  is the original Transformer spacing. ``scale`` maps a continuous ``t in [0, 1]`` to the ``[0, 1000]`` range
  the frequencies were designed for (Grad-TTS, PeriodWave: 1000).
* :func:`sinusoidal_positions` — the Transformer table (Vaswani et al. 2017, Section 3.5): sine on even,
  cosine on odd channels, ``PE(p, 2i) = sin(p / base^(2i / d))``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import ConfigError

__all__ = ["sinusoidal_positions", "timestep_embedding"]


def timestep_embedding(t: Tensor, dim: int, *, scale: float = 1.0, max_period: float = 10000.0,
                       freq_shift: float = 1.0, flip_sin_to_cos: bool = False) -> Tensor:
    """``t (B,)`` -> ``(B, dim)``: ``[sin(scale t w), cos(scale t w)]`` (``[cos, sin]`` with ``flip_sin_to_cos``).

    Frequencies ``w_i = exp(-ln(max_period) i / (dim / 2 - freq_shift))`` in float32; an odd ``dim`` gets one
    zero channel at the end (as diffusers). The result has ``t``'s dtype (float32 for integer ``t``).
    """
    if t.ndim != 1:
        raise ConfigError(f"timestep_embedding expects t of shape (B,), got {tuple(t.shape)}")
    half = dim // 2
    if half < 1 or half - freq_shift <= 0:
        raise ConfigError(f"timestep_embedding: dim {dim} too small for freq_shift {freq_shift}")
    # arange * (-ln P / (half - shift)) in this order: PeriodWave's official code, kept bit for bit
    freqs = torch.exp(torch.arange(half, device=t.device, dtype=torch.float32)
                      * (-math.log(max_period) / (half - freq_shift)))
    arg = scale * t.float()[:, None] * freqs[None]
    emb = torch.cat([arg.cos(), arg.sin()] if flip_sin_to_cos else [arg.sin(), arg.cos()], dim=-1)
    if dim % 2:
        emb = torch.nn.functional.pad(emb, (0, 1))
    return emb.to(t.dtype if t.is_floating_point() else torch.float32)


def sinusoidal_positions(n: int, dim: int, base: float = 10000.0, offset: int = 0,
                         device: torch.device | str | None = None) -> Tensor:
    """Transformer positional encodings ``(n, dim)`` of positions ``offset .. offset + n - 1`` (float32).

    Channel ``2i`` is ``sin(p / base^(2i / dim))`` and ``2i + 1`` its cosine (odd ``dim``: the last cosine is
    dropped). ``offset`` continues the table for cached incremental decoding.
    """
    if n < 0 or dim < 1:
        raise ConfigError(f"sinusoidal_positions needs n >= 0 and dim >= 1, got n={n}, dim={dim}")
    pos = torch.arange(offset, offset + n, dtype=torch.float32, device=device)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=device) * (-math.log(base) / dim))
    pe = torch.zeros(n, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)[:, : dim // 2]
    return pe
