"""Rotary position embeddings (RoPE; Su et al. 2021, arXiv:2104.09864).

RoPE rotates each pair of feature dims ``(x_a, x_b)`` of a query or key at position ``m`` by the angle
``m * theta_i``, ``theta_i = base^(-2i/d)`` (paper Section 3.4.2, eq. 34), so that ``<R_m q, R_n k>`` depends
only on ``m - n``. Two layouts of the pairs are in use and both are supported:

- **half-split** (``interleaved=False``): pair ``i`` is ``(x[i], x[i + d/2])``; GPT-NeoX, Llama (transformers'
  ``rotate_half``), wav2vec2-conformer.
- **interleaved** (``interleaved=True``): pair ``i`` is ``(x[2i], x[2i+1])``; the paper, Meta's original Llama
  (complex multiplication), GPT-J, ``rotary_embedding_torch`` (HiFi-SR/MossFormer2).

The two differ only by a fixed permutation of the head dims. ``cos``/``sin`` tables carry the full rotated width
``r`` (each angle repeated twice in the layout's order); when ``r`` is smaller than the last dim of ``x`` only the
first ``r`` dims are rotated and the rest pass through (partial rotary, GPT-NeoX ``rotary_pct``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..errors import ConfigError


def rope_inv_freq(dim: int, base: float = 10000.0, device: torch.device | str | None = None) -> Tensor:
    """``theta_i = base^(-2i/dim)`` for ``i < dim/2``: ``(dim // 2,)`` float32.

    Computed in float32 from integer exponents, as transformers and fairseq do, so tables agree bit for bit.
    """
    if dim <= 0 or dim % 2:
        raise ConfigError(f"rotary dim must be a positive even number, got {dim}")
    if base <= 0:
        raise ConfigError(f"rotary base must be positive, got {base}")
    exponents = torch.arange(0, dim, 2, dtype=torch.int64, device=device).float() / dim
    return 1.0 / (base ** exponents)


def rope_cos_sin(positions: Tensor, inv_freq: Tensor, interleaved: bool = False,
                 dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor]:
    """Cos/sin tables for ``positions``.

    Args:
        positions: ``(L,)`` or ``(B, L)`` positions (integer or float; fractional positions are allowed).
        inv_freq: ``(r/2,)`` angular frequencies, see :func:`rope_inv_freq`.
        interleaved: table layout (see the module docstring).
        dtype: cast the tables to this dtype (angles are always computed in float32).

    Returns:
        ``cos, sin``, each ``positions.shape + (r,)``.
    """
    # float32 angles: in half precision m * theta loses the position for m in the thousands
    angles = positions.to(torch.float32)[..., None] * inv_freq.to(torch.float32)
    if interleaved:
        angles = angles.repeat_interleave(2, dim=-1)
    else:
        angles = torch.cat((angles, angles), dim=-1)
    cos, sin = angles.cos(), angles.sin()
    if dtype is not None:
        cos, sin = cos.to(dtype), sin.to(dtype)
    return cos, sin


def rotate_half(x: Tensor) -> Tensor:
    """``(x1, x2) -> (-x2, x1)`` on the two halves of the last dim (half-split layout)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rotate_interleaved(x: Tensor) -> Tensor:
    """``(x[2i], x[2i+1]) -> (-x[2i+1], x[2i])`` on adjacent pairs of the last dim (interleaved layout)."""
    pairs = x.unflatten(-1, (-1, 2))
    return torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor, interleaved: bool = False, seq_dim: int = -2) -> Tensor:
    """Rotate ``x`` by the tables ``cos``/``sin``.

    Args:
        x: ``(..., L, ..., D)`` queries or keys, e.g. ``(B, H, L, D)`` (``seq_dim=-2``) or ``(B, L, H, D)``
            (``seq_dim=-3``).
        cos, sin: ``(L, r)`` or ``(B, L, r)`` (per-sample positions), ``r <= D`` even, from
            :func:`rope_cos_sin` with the same ``interleaved``. They are broadcast against ``x``: a
            ``(B, L, r)`` table needs ``x``'s batch dim first.
        interleaved: pair layout (see the module docstring).
        seq_dim: the dim of ``x`` that indexes positions (negative, counted from the end).

    Returns:
        ``x``'s shape and dtype, first ``r`` dims rotated, the rest unchanged.
    """
    r = cos.shape[-1]
    if cos.shape != sin.shape:
        raise ConfigError(f"cos {tuple(cos.shape)} and sin {tuple(sin.shape)} tables differ in shape")
    if r % 2 or r > x.shape[-1]:
        raise ConfigError(f"rotary width {r} must be even and at most the feature dim {x.shape[-1]}")
    if seq_dim >= 0:
        seq_dim -= x.ndim
    if not -x.ndim < seq_dim < -1:
        raise ConfigError(f"seq_dim {seq_dim} must index a dim of x {tuple(x.shape)} before the feature dim")
    if cos.shape[-2] != x.shape[seq_dim]:
        raise ConfigError(f"tables cover {cos.shape[-2]} positions, x has {x.shape[seq_dim]} along dim {seq_dim}")
    # tables (*lead, L, r) -> (*lead, 1.., L, 1.., r): leading dims (per-sample positions) align with x's
    # first dims, L with seq_dim, r with the feature dim
    lead = cos.shape[:-2]
    n_before = x.ndim + seq_dim - len(lead)
    if n_before < 0:
        raise ConfigError(f"tables {tuple(cos.shape)} have more leading dims than x {tuple(x.shape)}")
    view = lead + (1,) * n_before + cos.shape[-2:-1] + (1,) * (-seq_dim - 2) + (r,)
    cos, sin = cos.reshape(view).to(x.dtype), sin.reshape(view).to(x.dtype)
    rot = rotate_interleaved if interleaved else rotate_half
    if r == x.shape[-1]:
        return x * cos + rot(x) * sin
    x_rot, x_pass = x[..., :r], x[..., r:]
    return torch.cat((x_rot * cos + rot(x_rot) * sin, x_pass), dim=-1)


class RotaryEmbedding(nn.Module):
    """RoPE for heads of width ``head_dim`` (rotating the first ``rotary_dim`` of them).

    ``forward(x, offset=0)`` rotates ``x`` ``(..., L, D)`` (or any layout via ``seq_dim``) at positions
    ``offset .. offset + L - 1``; ``offset`` is the number of positions already in a KV cache, so a cached
    decoder rotates the new queries/keys exactly as the uncached forward would. ``positions`` ``(L,)`` or
    ``(B, L)`` overrides them (left-padded batches, packed sequences).

    The cos/sin tables are recomputed per call and not cached: they cost ``L * r`` sin/cos, negligible next to
    attention, and no cache can then go stale across devices, dtypes or lengths.
    """

    def __init__(self, head_dim: int, rotary_dim: int | None = None, base: float = 10000.0,
                 interleaved: bool = False):
        super().__init__()
        rotary_dim = head_dim if rotary_dim is None else rotary_dim
        if rotary_dim > head_dim:
            raise ConfigError(f"rotary_dim {rotary_dim} exceeds head_dim {head_dim}")
        self.head_dim, self.rotary_dim, self.base, self.interleaved = head_dim, rotary_dim, base, interleaved
        # not persistent: a function of the config, recomputed on load (as transformers does)
        self.register_buffer("inv_freq", rope_inv_freq(rotary_dim, base), persistent=False)

    def cos_sin(self, length: int, offset: int = 0, positions: Tensor | None = None,
                dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor]:
        """Tables ``(L, rotary_dim)`` for positions ``offset .. offset + length - 1`` (or ``positions``)."""
        if positions is None:
            positions = torch.arange(offset, offset + length, device=self.inv_freq.device)
        return rope_cos_sin(positions, self.inv_freq, self.interleaved, dtype)

    def forward(self, x: Tensor, offset: int = 0, positions: Tensor | None = None, seq_dim: int = -2) -> Tensor:
        """Rotate ``x`` (sequence along ``seq_dim``, heads of width ``head_dim`` last)."""
        if x.shape[-1] != self.head_dim:
            raise ConfigError(f"expected last dim {self.head_dim} (head_dim), got {tuple(x.shape)}")
        cos, sin = self.cos_sin(x.shape[seq_dim], offset, positions)
        return apply_rotary(x, cos, sin, self.interleaved, seq_dim)

    def extra_repr(self) -> str:
        return (f"head_dim={self.head_dim}, rotary_dim={self.rotary_dim}, base={self.base}, "
                f"interleaved={self.interleaved}")
