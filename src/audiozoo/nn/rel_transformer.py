"""Glow-TTS's transformer encoder with windowed relative positions (the "rel_fft" encoder of NATSpeech / PortaSpeech).

Kim et al., Glow-TTS (arXiv:2005.11129) Section 3.3 / Appendix A.1, after Shaw et al. 2018 (arXiv:1803.02155):
self-attention whose logits add ``q_i . E_k[j - i]`` and whose output adds ``sum_j p_ij E_v[j - i]`` for offsets
``|j - i| <= window`` (one table shared by the heads; farther offsets get no relative term); a conv FFN (``conv k ->
ReLU -> 1x1``); channel LayerNorm (eps 1e-4), post-LN or pre-LN (``pre_ln``, with a final LayerNorm). An optional
token embedding (scaled by ``sqrt(hidden)``) and a 3-layer conv-ReLU-LayerNorm pre-net with a zero-initialised
residual projection come before (``RelTransformerEncoder`` of NATSpeech ``modules/commons/rel_transformer.py``, whose
parameter names are kept).

Tensors: ``forward(x (B, T) ids or (B, T, H) features, mask (B, T) bool, True = valid) -> (B, T, H)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .conv import ChannelLayerNorm

__all__ = ["ConvReluNorm", "RelPosEncoder", "RelTransformerEncoder", "WindowedRelPosAttention"]


class WindowedRelPosAttention(nn.Module):
    """Multi-head self-attention with windowed relative key / value embeddings, 1x1-conv projections.

    ``forward(x (B, C, T), mask (B, 1, T, T) with 1 = attend) -> (B, C, T)``; ``self.attn`` keeps the last
    probabilities ``(B, heads, T, T)``."""

    def __init__(self, channels: int, out_channels: int, heads: int, window: int | None = 4, dropout: float = 0.0
                 ) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels {channels} not divisible by heads {heads}")
        self.heads, self.k, self.window = heads, channels // heads, window
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        if window is not None:
            std = self.k ** -0.5
            self.emb_rel_k = nn.Parameter(torch.randn(1, 2 * window + 1, self.k) * std)
            self.emb_rel_v = nn.Parameter(torch.randn(1, 2 * window + 1, self.k) * std)
        self.conv_o = nn.Conv1d(channels, out_channels, 1)
        self.drop = nn.Dropout(dropout)
        for c in (self.conv_q, self.conv_k, self.conv_v):
            nn.init.xavier_uniform_(c.weight)
        self.attn: Tensor | None = None

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        b, c, t = x.shape
        h, k = self.heads, self.k
        q, key, v = (p(x).view(b, h, k, t).transpose(2, 3) for p in (self.conv_q, self.conv_k, self.conv_v))
        scores = q @ key.transpose(-2, -1) / math.sqrt(k)
        if self.window is not None:
            w = self.window
            off = torch.arange(t, device=x.device)[None, :] - torch.arange(t, device=x.device)[:, None]  # j - i
            band = (off.abs() <= w).to(x.dtype)
            idx = (off + w).clamp(0, 2 * w).expand(b, h, t, t)
            rel = q @ self.emb_rel_k[0].t()  # (B, h, T, 2w+1): q_i . E_k[r]
            scores = scores + rel.gather(-1, idx) * band / math.sqrt(k)
        if mask is not None:
            scores = scores.masked_fill(mask == 0, -1e4)
        p = self.drop(torch.softmax(scores, dim=-1))
        self.attn = p
        out = p @ v
        if self.window is not None:
            bands = torch.zeros(b, h, t, 2 * self.window + 1, dtype=p.dtype, device=p.device)
            bands = bands.scatter_add(-1, idx, p * band)  # p_ij gathered by offset
            out = out + bands @ self.emb_rel_v[0]
        return self.conv_o(out.transpose(2, 3).reshape(b, c, t))


class _FFN(nn.Module):
    def __init__(self, channels: int, filter_channels: int, kernel_size: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv_1 = nn.Conv1d(channels, filter_channels, kernel_size, padding=kernel_size // 2)
        self.conv_2 = nn.Conv1d(filter_channels, channels, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = self.drop(torch.relu(self.conv_1(x * mask)))
        return self.conv_2(x * mask) * mask


class RelPosEncoder(nn.Module):
    """Stack of relative-position transformer layers on ``(B, H, T)`` with ``mask (B, 1, T)``."""

    def __init__(self, hidden: int, filter_channels: int, heads: int, n_layers: int, kernel_size: int = 1,
                 dropout: float = 0.0, window: int | None = 4, pre_ln: bool = False) -> None:
        super().__init__()
        self.n_layers, self.pre_ln = n_layers, pre_ln
        self.drop = nn.Dropout(dropout)
        self.attn_layers = nn.ModuleList(WindowedRelPosAttention(hidden, hidden, heads, window, dropout)
                                         for _ in range(n_layers))
        self.norm_layers_1 = nn.ModuleList(ChannelLayerNorm(hidden, eps=1e-4) for _ in range(n_layers))
        self.ffn_layers = nn.ModuleList(_FFN(hidden, filter_channels, kernel_size, dropout) for _ in range(n_layers))
        self.norm_layers_2 = nn.ModuleList(ChannelLayerNorm(hidden, eps=1e-4) for _ in range(n_layers))
        if pre_ln:
            self.last_ln = ChannelLayerNorm(hidden, eps=1e-4)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        attn_mask = mask[:, :, None, :] * mask[:, :, :, None]  # (B, 1, T, T)
        for i in range(self.n_layers):
            x = x * mask
            y = self.attn_layers[i](self.norm_layers_1[i](x) if self.pre_ln else x, attn_mask)
            x = x + self.drop(y)
            if not self.pre_ln:
                x = self.norm_layers_1[i](x)
            y = self.ffn_layers[i](self.norm_layers_2[i](x) if self.pre_ln else x, mask)
            x = x + self.drop(y)
            if not self.pre_ln:
                x = self.norm_layers_2[i](x)
        if self.pre_ln:
            x = self.last_ln(x)
        return x * mask


class ConvReluNorm(nn.Module):
    """``n_layers`` x [conv k -> channel LayerNorm -> ReLU -> dropout], zero-initialised 1x1 projection, residual."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int, kernel_size: int, n_layers: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.conv_layers = nn.ModuleList(
            nn.Conv1d(in_channels if i == 0 else hidden, hidden, kernel_size, padding=kernel_size // 2)
            for i in range(n_layers))
        self.norm_layers = nn.ModuleList(ChannelLayerNorm(hidden, eps=1e-4) for _ in range(n_layers))
        self.relu_drop = nn.Sequential(nn.ReLU(), nn.Dropout(dropout))
        self.proj = nn.Conv1d(hidden, out_channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        y = x
        for conv, norm in zip(self.conv_layers, self.norm_layers):
            y = self.relu_drop(norm(conv(y * mask)))
        return (x + self.proj(y)) * mask


class RelTransformerEncoder(nn.Module):
    """[embedding * sqrt(H)] -> [conv pre-net] -> :class:`RelPosEncoder`: ``(B, T) ids or (B, T, H) -> (B, T, H)``.

    ``vocab_size = 0``: the input is already a feature sequence (PortaSpeech's word-level encoder)."""

    def __init__(self, vocab_size: int, hidden: int, filter_channels: int, heads: int, n_layers: int,
                 kernel_size: int, dropout: float = 0.0, window: int | None = 4, prenet: bool = True,
                 pre_ln: bool = True) -> None:
        super().__init__()
        self.vocab_size, self.hidden = vocab_size, hidden
        if vocab_size > 0:
            self.emb = nn.Embedding(vocab_size, hidden)
            nn.init.normal_(self.emb.weight, 0.0, hidden ** -0.5)
        self.pre = ConvReluNorm(hidden, hidden, hidden, 5, 3) if prenet else None
        self.encoder = RelPosEncoder(hidden, filter_channels, heads, n_layers, kernel_size, dropout, window, pre_ln)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        if self.vocab_size > 0:
            x = self.emb(x) * math.sqrt(self.hidden)
        x = x.transpose(1, 2)
        m = mask[:, None].to(x.dtype)
        if self.pre is not None:
            x = self.pre(x, m)
        return self.encoder(x, m).transpose(1, 2)
