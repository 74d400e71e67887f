"""Gated linear attention (GLA; Yang et al. 2024, arXiv:2312.06635), causal, in pure torch.

The state ``S_t (d_k, d_v)`` of each head decays per key dim by a data-dependent gate ``alpha_t`` (Section
4.1, eq. for ``S_t = (alpha_t^T 1) * S_{t-1} + k_t^T v_t``, ``o_t = q_t S_t``). Gates are passed in log space,
``g_t = log alpha_t <= 0``.

- :func:`gla_recurrent` — the recurrent form, one step per position.
- :func:`gla_chunk` — the chunk-parallel form (Section 4.2-4.3): within a chunk, attention-like
  ``(q_t * exp(b_t - b_s)) . k_s`` for ``s <= t`` with ``b`` the cumulative log-gate (exponents are <= 0, so no
  overflow and no secondary chunking are needed); across chunks, the recurrent state.
- :class:`GatedLinearAttention` — the GLA layer of Section 4.4: low-rank gate ``alpha = sigmoid(x W1 W2 +
  b)^(1/16)``, ``d_k = d/2``, ``d_v = d``, per-head RMSNorm, ``swish`` output gate; parameter names follow the
  authors' ``flash-linear-attention`` ``GatedLinearAttention``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError


def _check(q: Tensor, k: Tensor, v: Tensor, g: Tensor, initial_state: Tensor | None) -> None:
    if q.ndim != 4 or k.shape != q.shape or g.shape != q.shape:
        raise ConfigError(f"q, k and g must be (B, H, L, d_k) alike; got {tuple(q.shape)}, {tuple(k.shape)}, "
                          f"{tuple(g.shape)}")
    if v.ndim != 4 or v.shape[:3] != q.shape[:3]:
        raise ConfigError(f"v must be (B, H, L, d_v) with q's (B, H, L) = {tuple(q.shape[:3])}, got "
                          f"{tuple(v.shape)}")
    want = q.shape[:2] + (q.shape[3], v.shape[3])
    if initial_state is not None and initial_state.shape != want:
        raise ConfigError(f"initial_state must be {tuple(want)}, got {tuple(initial_state.shape)}")


def gla_recurrent(q: Tensor, k: Tensor, v: Tensor, g: Tensor, scale: float | None = None,
                  initial_state: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Recurrent GLA: ``S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t``, ``o_t = scale * q_t S_t``.

    Args:
        q, k, g: ``(B, H, L, d_k)``; ``g`` log forget gates (``<= 0``).
        v: ``(B, H, L, d_v)``.
        scale: query scale (default ``d_k ** -0.5``).
        initial_state: ``(B, H, d_k, d_v)`` (default zeros).

    Returns:
        ``o (B, H, L, d_v)`` in ``q``'s dtype and the final state ``(B, H, d_k, d_v)`` float32.
    """
    _check(q, k, v, g, initial_state)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    b, h, length, dk = q.shape
    s = q.new_zeros(b, h, dk, v.shape[-1], dtype=torch.float32) if initial_state is None else initial_state.float()
    qf, kf, vf, gf = q.float() * scale, k.float(), v.float(), g.float()
    outs = []
    # unbind once: slicing per step would make each step's backward write a full-size gradient
    for q_t, k_t, v_t, g_t in zip(qf.unbind(2), kf.unbind(2), vf.unbind(2), gf.unbind(2)):
        s = g_t[..., None].exp() * s + k_t[..., None] * v_t[..., None, :]
        outs.append(torch.einsum("bhk,bhkv->bhv", q_t, s))
    o = torch.stack(outs, dim=2) if outs else vf.new_zeros(b, h, 0, v.shape[-1])
    return o.to(q.dtype), s


def gla_chunk(q: Tensor, k: Tensor, v: Tensor, g: Tensor, chunk_size: int = 16, scale: float | None = None,
              initial_state: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Chunk-parallel GLA; same arguments and results as :func:`gla_recurrent` (equal to float32 rounding).

    Cost per chunk of size ``C``: an ``(C, C, d_k)`` gated score tensor (``B H L C d_k`` floats in all, hence
    the small default ``C``), then matmuls; a Python loop runs over the ``L / C`` chunks only for the state.
    ``L`` need not be a multiple of ``C`` (zero keys with zero log-gates pad the tail; they change neither
    outputs nor the final state).
    """
    _check(q, k, v, g, initial_state)
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    b, h, length, dk = q.shape
    dv = v.shape[-1]
    c = min(chunk_size, max(length, 1))
    pad = (-length) % c
    qf, kf, vf, gf = (F.pad(t.float(), (0, 0, 0, pad)) for t in (q, k, v, g))
    n = qf.shape[2] // c
    qf, kf, vf, gf = (t.view(b, h, n, c, t.shape[-1]) for t in (qf, kf, vf, gf))
    qf = qf * scale
    cum = gf.cumsum(3)  # b_t: log of the decay from the chunk start through t
    total = cum[:, :, :, -1]  # (B, H, N, d_k)
    # intra-chunk: A[t, s] = sum_k q[t,k] k[s,k] exp(b[t,k] - b[s,k]) for s <= t (exponent <= 0)
    causal = torch.ones(c, c, dtype=torch.bool, device=q.device).tril()
    diff = cum[:, :, :, :, None, :] - cum[:, :, :, None, :, :]  # (B, H, N, C_t, C_s, d_k)
    decay = torch.where(causal[:, :, None], diff, torch.full_like(diff, float("-inf"))).exp()
    scores = torch.einsum("bhntk,bhnsk,bhntsk->bhnts", qf, kf, decay)
    o = scores @ vf
    # inter-chunk: the state entering each chunk, carried by a loop over chunks
    kv = (kf * (total[:, :, :, None] - cum).exp()).transpose(-1, -2) @ vf  # (B, H, N, d_k, d_v)
    s = q.new_zeros(b, h, dk, dv, dtype=torch.float32) if initial_state is None else initial_state.float()
    starts = []
    for i in range(n):
        starts.append(s)
        s = total[:, :, i, :, None].exp() * s + kv[:, :, i]
    o = o + (qf * cum.exp()) @ torch.stack(starts, dim=2)
    return o.reshape(b, h, n * c, dv)[:, :, :length].to(q.dtype), s


class GatedLinearAttention(nn.Module):
    """GLA layer (Section 4.4), causal: ``(B, L, dim) -> (B, L, dim)``.

    Args:
        dim: model width.
        num_heads: heads (4 in the paper).
        expand_k, expand_v: ``d_k = expand_k * dim`` (0.5), ``d_v = expand_v * dim`` (1.0).
        gate_low_rank: rank of the forget-gate projection (16).
        gate_logit_normalizer: ``tau`` of ``alpha = sigmoid(.)^(1/tau)`` (16).
        mode: ``"chunk"`` (training, long inputs) or ``"recurrent"``; both give the same result.
        chunk_size: chunk length of the chunk form.
    """

    def __init__(self, dim: int, num_heads: int = 4, expand_k: float = 0.5, expand_v: float = 1.0,
                 gate_low_rank: int = 16, gate_logit_normalizer: float = 16.0, norm_eps: float = 1e-5,
                 mode: str = "chunk", chunk_size: int = 16):
        super().__init__()
        key_dim, value_dim = int(dim * expand_k), int(dim * expand_v)
        if key_dim % num_heads or value_dim % num_heads:
            raise ConfigError(f"key dim {key_dim} and value dim {value_dim} must be divisible by {num_heads} heads")
        if mode not in ("chunk", "recurrent"):
            raise ConfigError(f"mode must be 'chunk' or 'recurrent', got {mode!r}")
        self.dim, self.num_heads, self.mode, self.chunk_size = dim, num_heads, mode, chunk_size
        self.key_dim, self.value_dim = key_dim, value_dim
        self.head_k, self.head_v = key_dim // num_heads, value_dim // num_heads
        self.gate_logit_normalizer = gate_logit_normalizer
        self.q_proj = nn.Linear(dim, key_dim, bias=False)
        self.k_proj = nn.Linear(dim, key_dim, bias=False)
        self.v_proj = nn.Linear(dim, value_dim, bias=False)
        self.g_proj = nn.Linear(dim, value_dim, bias=False)  # output gate r_t
        # low-rank forget gate: fewer parameters and a smoother gate (Section 4.4)
        self.gk_proj = nn.Sequential(nn.Linear(dim, gate_low_rank, bias=False),
                                     nn.Linear(gate_low_rank, key_dim, bias=True))
        self.g_norm = nn.RMSNorm(self.head_v, eps=norm_eps)
        self.o_proj = nn.Linear(value_dim, dim, bias=False)

    def _heads(self, t: Tensor) -> Tensor:
        return t.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)  # (B, L, H*d) -> (B, H, L, d)

    def forward(self, x: Tensor, padding_mask: Tensor | None = None, state: Tensor | None = None,
                return_state: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """``x (B, L, dim) -> (B, L, dim)``.

        Args:
            padding_mask: ``(B, L)`` bool, True at padded frames: their keys and log-gates are zeroed, so the
                returned state is that after each sequence's last valid frame.
            state: ``(B, H, d_k/H, d_v/H)`` state to continue from (streaming); ``return_state`` returns the
                final one.
        """
        if x.ndim != 3 or x.shape[-1] != self.dim:
            raise ConfigError(f"expected x of shape (B, L, {self.dim}), got {tuple(x.shape)}")
        q, k, v = self._heads(self.q_proj(x)), self._heads(self.k_proj(x)), self._heads(self.v_proj(x))
        g = self._heads(F.logsigmoid(self.gk_proj(x)) / self.gate_logit_normalizer)
        if padding_mask is not None:
            if padding_mask.shape != x.shape[:2]:
                raise ConfigError(f"padding_mask must be {tuple(x.shape[:2])}, got {tuple(padding_mask.shape)}")
            keep = (~padding_mask.bool())[:, None, :, None].to(k.dtype)
            k, g = k * keep, g * keep
        if self.mode == "chunk":
            o, new_state = gla_chunk(q, k, v, g, self.chunk_size, initial_state=state)
        else:
            o, new_state = gla_recurrent(q, k, v, g, initial_state=state)
        o = self.g_norm(o.transpose(1, 2))  # (B, L, H, d_v/H): per-head normalisation
        y = self.o_proj(o.flatten(2) * F.silu(self.g_proj(x)))
        return (y, new_state) if return_state else y

    def init_state(self, batch: int, device: torch.device | str | None = None) -> Tensor:
        """Zero state ``(B, H, d_k/H, d_v/H)`` float32."""
        return torch.zeros(batch, self.num_heads, self.head_k, self.head_v, device=device)

    def step(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """One recurrent step ``x (B, dim) -> (B, dim)`` (constant memory per token)."""
        y, state = self.forward(x[:, None], state=state, return_state=True)
        return y[:, 0], state

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, heads={self.num_heads}, key_dim={self.key_dim}, value_dim={self.value_dim}, "
                f"mode={self.mode!r}, chunk_size={self.chunk_size}")
