"""Recurrent blocks of Tacotron 2 (Shen et al. 2018, "Natural TTS Synthesis by Conditioning WaveNet on Mel
Spectrogram Predictions", arXiv:1712.05884, Section 2.2).

- :class:`LocationSensitiveAttention` — Chorowski et al. 2015's location-sensitive attention as Tacotron 2 uses it:
  ``e_j = w^T tanh(W s + V h_j + U f_j + b)`` where ``s`` is the decoder query, ``h_j`` the encoder output at token
  ``j`` and ``f = F * alpha_cum`` are ``filters`` 1-D convolution features (kernel ``kernel_size``) of the
  cumulative attention weights of the previous steps. Weights ``softmax(scale * e)`` over the valid tokens; the
  context is their weighted sum of ``h``. ``scale`` is 1 in the paper; espnet's ``AttLoc`` uses 2.
- :class:`ZoneoutLSTMCell` — an ``nn.LSTMCell`` with zoneout (Krueger et al. 2016; Tacotron 2 regularises its
  decoder LSTMs with zoneout 0.1): in training each unit of ``(h, c)`` keeps its previous value with probability
  ``p``; in eval the expectation ``p * previous + (1 - p) * new`` is used (as espnet's ``ZoneOutCell``).

Tensors are batch-first: memory ``(B, N, D)``, weights ``(B, N)``; ``mask`` ``(B, N)`` is True at padded tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

__all__ = ["LocationSensitiveAttention", "ZoneoutLSTMCell"]


class LocationSensitiveAttention(nn.Module):
    """``(query (B, Q), memory (B, N, D), processed (B, N, A), cumulative (B, N), mask) -> (context (B, D),
    weights (B, N))``; call :meth:`process_memory` once per utterance for ``processed``."""

    def __init__(self, query_dim: int, memory_dim: int, attn_dim: int = 128, filters: int = 32,
                 kernel_size: int = 31, scale: float = 1.0):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ConfigError(f"the location convolution needs an odd kernel (same padding), got {kernel_size}")
        self.memory_layer = nn.Linear(memory_dim, attn_dim)
        self.query_layer = nn.Linear(query_dim, attn_dim, bias=False)
        self.location_conv = nn.Conv1d(1, filters, kernel_size, padding=kernel_size // 2, bias=False)
        self.location_layer = nn.Linear(filters, attn_dim, bias=False)
        self.v = nn.Linear(attn_dim, 1)
        self.scale = float(scale)

    def process_memory(self, memory: Tensor) -> Tensor:
        """``memory (B, N, D) -> V h + b (B, N, attn_dim)`` (constant over decoder steps)."""
        return self.memory_layer(memory)

    def forward(self, query: Tensor, memory: Tensor, processed: Tensor, cumulative: Tensor,
                mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        loc = self.location_layer(self.location_conv(cumulative[:, None]).transpose(1, 2))
        e = self.v(torch.tanh(processed + self.query_layer(query)[:, None] + loc))[..., 0]
        if mask is not None:
            e = e.masked_fill(mask, float("-inf"))
        w = F.softmax(self.scale * e, dim=-1)
        return torch.bmm(w[:, None], memory)[:, 0], w


class ZoneoutLSTMCell(nn.Module):
    """``(x (B, I), (h, c)) -> (h, c)`` each ``(B, H)``: an ``nn.LSTMCell`` (``.cell``) with zoneout ``p``."""

    def __init__(self, input_size: int, hidden_size: int, zoneout: float = 0.1):
        super().__init__()
        if not 0.0 <= zoneout <= 1.0:
            raise ConfigError(f"zoneout must lie in [0, 1], got {zoneout}")
        self.cell = nn.LSTMCell(input_size, hidden_size)
        self.hidden_size, self.zoneout = hidden_size, float(zoneout)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        new = self.cell(x, state)
        p = self.zoneout
        if p == 0.0:
            return new
        if self.training:
            out = []
            for old, nxt in zip(state, new):
                keep = torch.bernoulli(torch.full_like(old, p))
                out.append(keep * old + (1.0 - keep) * nxt)
            return out[0], out[1]
        return p * state[0] + (1.0 - p) * new[0], p * state[1] + (1.0 - p) * new[1]
