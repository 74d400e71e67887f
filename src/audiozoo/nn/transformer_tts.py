"""Blocks of Transformer TTS (Li et al. 2019, arXiv:1809.08895) and its Tacotron 2 pre-nets, and the attention
tools FastSpeech's duration extractor needs.

- :class:`ConvPrenet` — the encoder pre-net (Section 3.2; Tacotron 2's encoder convolutions, Shen et al. 2018,
  arXiv:1712.05884, Section 2.2): ``layers x [conv1d k (no bias) -> BatchNorm -> ReLU -> dropout]``. Padded
  positions are zeroed before every convolution (the same output as the item alone).
- :class:`DecoderPrenet` — the decoder pre-net (Section 3.3; Tacotron 2's): ``layers x [linear -> ReLU ->
  dropout]`` with dropout **always on**, in training and at inference (Tacotron 2 Section 2.2: "to introduce
  output variation at inference time"); ``always=False`` turns it off (deterministic synthesis, parity tests).
- :class:`ScaledPositionalEncoding` — Section 3.4: ``x + alpha * PE(pos)`` with a trainable scalar ``alpha``
  (initialised to 1) so the positional encoding adapts its scale to the embedding of each domain (text, mel);
  ``offset`` continues the positions for cached decoding.
- :func:`cross_attention_probs` — the weights ``(B, H, N, M)`` of a :class:`~audiozoo.nn.attention.
  CrossAttention` (it computes its output with fused SDPA, which does not return them): guided-attention
  losses and duration extraction read them.
- :func:`focus_rate` / :func:`durations_from_attention` — FastSpeech (Ren et al. 2019, arXiv:1905.09263,
  Section 3.3): of the teacher's encoder-decoder attention heads, pick the one with the largest focus rate
  ``F = 1/S sum_s max_t a_{s,t}`` (S frames, T tokens), then the duration of token ``t`` is the number of
  frames whose attention argmax is ``t``.

Tensors are batch-first ``(B, N, D)``; ``mask`` ``(B, N)`` is True at padded positions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .attention import CrossAttention
from .embeddings import sinusoidal_positions

__all__ = ["ConvPrenet", "DecoderPrenet", "ScaledPositionalEncoding", "cross_attention_probs",
           "durations_from_attention", "focus_rate"]


class ConvPrenet(nn.Module):
    """Encoder pre-net ``(B, N, in_dim) -> (B, N, channels)``: ``layers`` x [conv1d -> BN -> ReLU -> dropout]."""

    def __init__(self, in_dim: int, channels: int = 512, kernel_size: int = 5, layers: int = 3,
                 dropout: float = 0.5):
        super().__init__()
        if kernel_size % 2 == 0 or layers < 1:
            raise ConfigError(f"ConvPrenet needs an odd kernel and >= 1 layer, got kernel {kernel_size}, {layers}")
        self.convs = nn.ModuleList(
            nn.Sequential(nn.Conv1d(in_dim if i == 0 else channels, channels, kernel_size, padding=kernel_size // 2,
                                    bias=False), nn.BatchNorm1d(channels)) for i in range(layers))
        self.dropout = dropout

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        x = x.transpose(1, 2)
        for conv in self.convs:
            if mask is not None:
                x = x.masked_fill(mask[:, None], 0.0)
            x = F.dropout(F.relu(conv(x)), self.dropout, self.training)
        return x.transpose(1, 2)


class DecoderPrenet(nn.Module):
    """Decoder pre-net ``(B, L, in_dim) -> (B, L, units)``; its dropout is always on unless ``always=False``."""

    def __init__(self, in_dim: int, units: int = 256, layers: int = 2, dropout: float = 0.5):
        super().__init__()
        if layers < 1:
            raise ConfigError(f"DecoderPrenet needs >= 1 layer, got {layers}")
        self.layers = nn.ModuleList(nn.Linear(in_dim if i == 0 else units, units) for i in range(layers))
        self.dropout = dropout

    def forward(self, x: Tensor, always: bool = True) -> Tensor:
        for lin in self.layers:
            x = F.dropout(F.relu(lin(x)), self.dropout, training=always or self.training)
        return x


class ScaledPositionalEncoding(nn.Module):
    """``x (B, L, D) -> dropout(x + alpha * PE[offset : offset + L])`` with a trainable scalar ``alpha``."""

    def __init__(self, dim: int, dropout: float = 0.1, max_positions: int = 2000, alpha: float = 1.0):
        super().__init__()
        self.dim = dim
        self.alpha = nn.Parameter(torch.tensor(float(alpha)))
        self.register_buffer("positions", sinusoidal_positions(max_positions, dim), persistent=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        n = x.shape[1]
        if offset + n <= self.positions.shape[0]:
            pe = self.positions[offset: offset + n]
        else:
            pe = sinusoidal_positions(n, self.dim, offset=offset, device=x.device)
        return self.dropout(x + self.alpha * pe.to(x.dtype)[None])


def cross_attention_probs(attn: CrossAttention, x: Tensor, memory: Tensor,
                          memory_padding_mask: Tensor | None = None) -> Tensor:
    """Attention weights ``(B, H, N, M)`` of ``attn`` for queries ``x (B, N, D)`` over ``memory (B, M, D_mem)``
    (the softmax that ``attn(x, memory, memory_padding_mask)`` applies; padded memory frames get 0)."""
    b, n, d = x.shape
    q = attn.q(x).view(b, n, attn.num_heads, attn.head_dim).transpose(1, 2)
    k = attn.kv(memory)[..., :d].view(b, memory.shape[1], attn.num_heads, attn.head_dim).transpose(1, 2)
    logits = (q @ k.transpose(-1, -2)) / math.sqrt(attn.head_dim)
    if memory_padding_mask is not None:
        logits = logits.masked_fill(memory_padding_mask[:, None, None, :], float("-inf"))
    return logits.float().softmax(-1)


def focus_rate(attn: Tensor, text_lengths: Tensor | None = None, frame_lengths: Tensor | None = None) -> Tensor:
    """FastSpeech's focus rate of each head: ``attn (B, H, S, T)`` (S frames attending T tokens) -> ``(B, H)``,
    the mean over valid frames of the largest weight per frame (1 = perfectly sharp, 1/T = uniform)."""
    if attn.ndim != 4:
        raise ConfigError(f"focus_rate expects attention (B, H, S_frames, T_tokens), got {tuple(attn.shape)}")
    b, _, s, t = attn.shape
    a = attn
    if text_lengths is not None:
        a = a.masked_fill((torch.arange(t, device=a.device)[None] >= text_lengths[:, None])[:, None, None], 0.0)
    peak = a.max(-1).values  # (B, H, S)
    if frame_lengths is None:
        return peak.mean(-1)
    valid = (torch.arange(s, device=a.device)[None] < frame_lengths[:, None]).to(peak.dtype)[:, None]
    return (peak * valid).sum(-1) / valid.sum(-1).clamp_min(1.0)


def durations_from_attention(attn: Tensor, text_lengths: Tensor, frame_lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Frames per token from a teacher's encoder-decoder attention (FastSpeech Section 3.3).

    Args:
        attn: ``(B, H, S, T)`` weights of the candidate heads (e.g. every head of every decoder layer stacked).
        text_lengths: ``(B,)`` valid tokens; frame_lengths: ``(B,)`` valid frames.

    Returns:
        ``durations (B, T)`` long (padded tokens 0; each row sums to its ``frame_lengths``) and the index of the
        head picked per item ``(B,)`` (the largest focus rate).
    """
    rate = focus_rate(attn, text_lengths, frame_lengths)
    head = rate.argmax(1)
    a = attn[torch.arange(attn.shape[0], device=attn.device), head]  # (B, S, T)
    t = a.shape[-1]
    a = a.masked_fill((torch.arange(t, device=a.device)[None] >= text_lengths[:, None])[:, None], -1.0)
    token = a.argmax(-1)  # (B, S)
    valid = torch.arange(a.shape[1], device=a.device)[None] < frame_lengths[:, None]
    durations = torch.zeros(a.shape[0], t, dtype=torch.long, device=a.device)
    durations.scatter_add_(1, token, valid.long())
    return durations, head
