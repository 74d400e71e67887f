"""Blocks of the FastSpeech family (FastSpeech, FastSpeech 2/2s, AdaSpeech, DelightfulTTS-style adaptors).

- :class:`FFTBlock` — the feed-forward Transformer block of FastSpeech (Ren et al. 2019, arXiv:1905.09263,
  Section 3.1 and Figure 1b): multi-head self-attention, then a two-layer 1-D convolution instead of the
  position-wise MLP, each sub-layer followed by a residual connection and (post-)LayerNorm, padded
  positions zeroed after each sub-layer (ming024/FastSpeech2 ``transformer/Layers.py``).
- :class:`FFTStack` — sinusoidal positions (Vaswani et al. 2017) added to the input, then ``N`` blocks.
- :class:`VariancePredictor` — FastSpeech 2's duration / pitch / energy predictor (Ren et al. 2021,
  arXiv:2006.04558, Section 2.3 and Figure 1c): ``[conv1d k -> ReLU -> LayerNorm -> dropout] x 2 -> linear``.
- :class:`PostNet` — Tacotron 2's five-layer convolutional post-net (Shen et al. 2018, arXiv:1712.05884,
  Section 2.2): 512 channels, kernel 5, BatchNorm, tanh on all but the last layer; a residual added to the
  decoder's mel by the caller.
- :func:`bucketize_embed` — the quantised-value embedding of FastSpeech 2 (Section 2.3: "quantize ... into
  256 possible values ... converted into an embedding vector").

Tensors are batch-first ``(B, N, D)`` for sequences (tokens or frames); ``mask`` is ``(B, N)`` bool, True at
padded positions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .attention import MultiHeadAttention
from .embeddings import sinusoidal_positions

__all__ = ["FFTBlock", "FFTStack", "PostNet", "VariancePredictor", "bucketize", "bucketize_embed", "padding_mask"]


def padding_mask(lengths: Tensor, max_len: int) -> Tensor:
    """``(B,)`` lengths -> ``(B, max_len)`` bool, True at padded positions."""
    return torch.arange(max_len, device=lengths.device)[None] >= lengths[:, None]


class ConvFeedForward(nn.Module):
    """FastSpeech's position-wise feed-forward: ``conv1d(k1) -> ReLU -> conv1d(k2) -> dropout``, ``(B, N, D)``."""

    def __init__(self, dim: int, hidden: int, kernel_sizes: Sequence[int] = (9, 1), dropout: float = 0.1):
        super().__init__()
        k1, k2 = (int(k) for k in kernel_sizes)
        if k1 % 2 == 0 or k2 % 2 == 0:
            raise ConfigError(f"FFT conv kernel sizes must be odd (same padding), got {tuple(kernel_sizes)}")
        self.w_1 = nn.Conv1d(dim, hidden, k1, padding=k1 // 2)
        self.w_2 = nn.Conv1d(hidden, dim, k2, padding=k2 // 2)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``x (B, N, D)``; ``mask (B, N)`` (True at padding) zeroes the hidden layer's padded positions, which a
        second convolution wider than 1 would otherwise read into the last valid ones."""
        h = F.relu(self.w_1(x.transpose(1, 2)))
        if mask is not None and self.w_2.kernel_size[0] > 1:
            h = h.masked_fill(mask[:, None], 0.0)
        return self.dropout(self.w_2(h).transpose(1, 2))


class FFTBlock(nn.Module):
    """One feed-forward Transformer block ``(B, N, D) -> (B, N, D)`` (post-LN, as FastSpeech's code).

    ``x = LN(x + Dropout(SelfAttn(x)))``; padded positions zeroed; ``x = LN(x + ConvFFN(x))``; zeroed again.

    Args:
        norm: a LayerNorm factory ``(dim) -> module`` (AdaSpeech swaps in conditional LayerNorm, whose forward
            also takes a condition; pass it as ``cond``).
    """

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, kernel_sizes: Sequence[int] = (9, 1),
                 dropout: float = 0.1, norm: type[nn.Module] | None = None):
        super().__init__()
        make_norm = norm or nn.LayerNorm
        self.attn = MultiHeadAttention(dim, num_heads, qkv_bias=True, attn_drop=0.0, proj_drop=dropout)
        self.norm1 = make_norm(dim)
        self.ffn = ConvFeedForward(dim, ffn_dim, kernel_sizes, dropout)
        self.norm2 = make_norm(dim)

    def _norm(self, norm: nn.Module, x: Tensor, cond: Tensor | None) -> Tensor:
        return norm(x) if cond is None else norm(x, cond)

    def forward(self, x: Tensor, mask: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        """``x (B, N, D)``, ``mask (B, N)`` True at padding, ``cond`` for a conditional norm."""
        x = self._norm(self.norm1, x + self.attn(x, mask), cond)
        if mask is not None:
            x = x.masked_fill(mask[..., None], 0.0)
        x = self._norm(self.norm2, x + self.ffn(x, mask), cond)
        if mask is not None:
            x = x.masked_fill(mask[..., None], 0.0)
        return x


class FFTStack(nn.Module):
    """Sinusoidal positions + ``depth`` :class:`FFTBlock`: ``(B, N, D) -> (B, N, D)``.

    The position table of FastSpeech's code is a fixed sinusoid (``max_positions`` rows, extended on the fly for
    longer inputs, as ming024 does at inference); it is a non-persistent buffer, not a parameter.
    """

    def __init__(self, dim: int, depth: int, num_heads: int, ffn_dim: int, kernel_sizes: Sequence[int] = (9, 1),
                 dropout: float = 0.1, max_positions: int = 1000, norm: type[nn.Module] | None = None):
        super().__init__()
        self.dim = dim
        self.register_buffer("positions", sinusoidal_positions(max_positions + 1, dim), persistent=False)
        self.blocks = nn.ModuleList(FFTBlock(dim, num_heads, ffn_dim, kernel_sizes, dropout, norm)
                                    for _ in range(depth))

    def forward(self, x: Tensor, mask: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        n = x.shape[1]
        pe = self.positions[:n] if n <= self.positions.shape[0] else sinusoidal_positions(n, self.dim, device=x.device)
        x = x + pe.to(x.dtype)[None]
        for blk in self.blocks:
            x = blk(x, mask, cond)
        return x


class VariancePredictor(nn.Module):
    """FastSpeech 2's variance predictor ``(B, N, D) -> (B, N)``; zero at padded positions.

    ``layers`` x [conv1d k -> ReLU -> LayerNorm -> dropout] -> linear (2 layers in FastSpeech 2; the conformer
    FastSpeech 2 of ESPnet / transformers predicts pitch with 5 layers of kernel 5). Layer ``i`` is
    ``conv{i}`` / ``norm{i}`` (``i`` from 1), so 2-layer checkpoints keep their keys.

    ``mask_hidden=True`` also zeroes the padded positions of every hidden layer's output, which the next
    convolution would otherwise read into the last valid ones (FastSpeech uses it; FastSpeech 2 keeps the
    reference behaviour, that of ming024 and transformers, which its shipped weights were trained with).
    """

    def __init__(self, dim: int, filter_size: int = 256, kernel_size: int = 3, dropout: float = 0.5,
                 mask_hidden: bool = False, layers: int = 2):
        super().__init__()
        self.mask_hidden, self.layers = mask_hidden, int(layers)
        if kernel_size % 2 == 0:
            raise ConfigError(f"variance predictor kernel size must be odd, got {kernel_size}")
        if self.layers < 1:
            raise ConfigError(f"a variance predictor needs at least one layer, got {layers}")
        for i in range(1, self.layers + 1):
            setattr(self, f"conv{i}", nn.Conv1d(dim if i == 1 else filter_size, filter_size, kernel_size,
                                                padding=kernel_size // 2))
            setattr(self, f"norm{i}", nn.LayerNorm(filter_size))
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(filter_size, 1)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        for i in range(1, self.layers + 1):
            conv, norm = getattr(self, f"conv{i}"), getattr(self, f"norm{i}")
            x = self.dropout(norm(F.relu(conv(x.transpose(1, 2))).transpose(1, 2)))
            if self.mask_hidden and mask is not None and i < self.layers:
                x = x.masked_fill(mask[..., None], 0.0)
        out = self.linear(x).squeeze(-1)
        return out if mask is None else out.masked_fill(mask, 0.0)


def bucketize(values: Tensor, bins: Tensor) -> Tensor:
    """``torch.bucketize(values, bins)`` (``right=False``), also inside a traced graph: ONNX has no
    ``searchsorted``/``bucketize``, so a traced call counts the boundaries below each value (same result)."""
    if torch.jit.is_tracing():
        return (values[..., None] > bins).sum(-1)
    return torch.bucketize(values.contiguous(), bins)


def bucketize_embed(values: Tensor, bins: Tensor, embedding: nn.Embedding, straight_through: bool = False
                    ) -> Tensor:
    """Embedding of the bucket of each value: ``values (B, N)`` -> ``(B, N, D)``.

    ``bins`` are the ``n_bins - 1`` sorted boundaries (``torch.bucketize``: bucket ``i`` holds
    ``bins[i-1] < v <= bins[i]``), as FastSpeech 2's code. ``straight_through``: the forward value is unchanged
    but the gradient of the output with respect to ``values`` is that of linear interpolation between the two
    neighbouring bucket embeddings (a straight-through estimator), so a loss on the output reaches whatever
    predicted ``values``.
    """
    idx = bucketize(values.detach(), bins)
    out = embedding(idx)
    if not straight_through or not values.requires_grad:
        return out
    # d out / d v ~ (E[i+1] - E[i]) / bucket width; forward value unchanged (the added term is zero)
    width = (bins[1:] - bins[:-1]).mean().clamp_min(1e-6)
    hi = embedding(idx.clamp(max=embedding.num_embeddings - 1).add(1).clamp(max=embedding.num_embeddings - 1))
    slope = (hi - out).detach() / width
    return out + slope * (values - values.detach())[..., None]


class PostNet(nn.Module):
    """Tacotron 2 post-net ``mel (B, n_mels, L) -> residual (B, n_mels, L)``.

    ``layers`` conv1d of ``channels`` (first from ``n_mels``, last back to ``n_mels``), each followed by
    BatchNorm; tanh after all but the last; dropout 0.5 after every layer (Tacotron 2 / ming024).
    ``bias=False``: convolutions without bias (espnet's Tacotron 2 / Transformer TTS post-net; BatchNorm follows).
    ``forward(mel, mask)``: with ``mask (B, L)`` (True at padded frames) padded frames are zeroed before every
    convolution, so an item's output does not depend on the padding of its batch.
    """

    def __init__(self, n_mels: int = 80, channels: int = 512, kernel_size: int = 5, layers: int = 5,
                 dropout: float = 0.5, bias: bool = True):
        super().__init__()
        if layers < 2:
            raise ConfigError(f"a post-net needs at least 2 layers, got {layers}")
        dims = [n_mels] + [channels] * (layers - 1) + [n_mels]
        self.convs = nn.ModuleList(
            nn.Sequential(nn.Conv1d(a, b, kernel_size, padding=kernel_size // 2, bias=bias), nn.BatchNorm1d(b))
            for a, b in zip(dims[:-1], dims[1:]))
        self.dropout = dropout

    def forward(self, mel: Tensor, mask: Tensor | None = None) -> Tensor:
        x = mel
        for i, conv in enumerate(self.convs):
            if mask is not None:
                x = x.masked_fill(mask[:, None], 0.0)
            x = conv(x)
            if i < len(self.convs) - 1:
                x = torch.tanh(x)
            x = F.dropout(x, self.dropout, self.training)
        return x
