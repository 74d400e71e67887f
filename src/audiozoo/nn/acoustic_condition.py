"""Acoustic-condition blocks: conditional LayerNorm and the convolutional acoustic encoders / predictors.

Introduced by AdaSpeech (Chen et al., ICLR 2021, arXiv:2103.00993) for adaptive TTS, reusable by any model that
conditions a Transformer on a speaker / style vector or extracts utterance- and phoneme-level acoustic vectors:

- :class:`ConditionalLayerNorm` — AdaSpeech Section 2.3, Equation 1: a LayerNorm without its own affine whose scale
  and bias come from a condition vector through two linear layers, ``gamma = E W^gamma``, ``beta = E W^beta``.
  Initialised to the plain LayerNorm (zero weights, scale bias 1, shift bias 0), so a model starts as its
  unconditioned twin. :meth:`ConditionalLayerNorm.affine` gives the per-condition ``(gamma, beta)`` vectors that a
  deployed custom voice stores instead of the linears.
- :class:`ConvConditionEncoder` — ``[conv1d k -> ReLU -> LayerNorm -> dropout] x layers`` then an optional linear
  projection and an optional masked mean over time: the utterance-level acoustic encoder (mean pooled, Section 2.2
  and Figure 2b), the phoneme-level acoustic encoder and the phoneme-level acoustic predictor (Figure 2c/2d,
  projected to a small latent).
- :func:`segment_mean` — the mean of the frames of each token (AdaSpeech Figure 2a: "the speech frames that
  belong to the same phoneme are averaged" to obtain the phoneme-level mel fed to the phoneme-level encoder).

Tensors are batch-first ``(B, N, D)``; masks ``(B, N)`` bool are True at padded positions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

__all__ = ["ConditionalLayerNorm", "ConvConditionEncoder", "segment_mean"]


class ConditionalLayerNorm(nn.Module):
    """LayerNorm over the last dim whose scale and bias are predicted from a condition: ``(x, cond) -> y``.

    ``x (B, N, dim)``, ``cond (B, cond_dim)`` (e.g. a speaker embedding) -> ``y (B, N, dim)`` with
    ``y = (x - mean) / sqrt(var + eps) * scale(cond)[:, None] + shift(cond)[:, None]``.
    Parameters: ``2 * (cond_dim * dim + dim)``.
    """

    def __init__(self, dim: int, cond_dim: int, eps: float = 1e-5):
        super().__init__()
        self.dim, self.eps = int(dim), float(eps)
        self.scale = nn.Linear(cond_dim, dim)
        self.shift = nn.Linear(cond_dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Start as a plain LayerNorm: every condition gives ``scale = 1``, ``shift = 0``."""
        for lin, b in ((self.scale, 1.0), (self.shift, 0.0)):
            nn.init.zeros_(lin.weight)
            nn.init.constant_(lin.bias, b)

    def affine(self, cond: Tensor) -> tuple[Tensor, Tensor]:
        """``cond (B, cond_dim)`` -> ``(gamma (B, dim), beta (B, dim))``, what a deployed voice stores."""
        if cond.ndim != 2 or cond.shape[-1] != self.scale.in_features:
            raise ConfigError(f"conditional LayerNorm takes a condition (B, {self.scale.in_features}), got "
                              f"{tuple(cond.shape)}")
        return self.scale(cond), self.shift(cond)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        gamma, beta = self.affine(cond)
        return F.layer_norm(x, (self.dim,), eps=self.eps) * gamma[:, None] + beta[:, None]


class ConvConditionEncoder(nn.Module):
    """``(B, N, in_dim) -> (B, N, out_dim)`` (or ``(B, out_dim)`` with ``pool=True``) acoustic encoder.

    ``layers`` x [same-padded conv1d (kernel ``kernel_size``, ``channels``) -> ReLU -> LayerNorm -> dropout], then a
    linear to ``out_dim`` (``None``: no projection, ``out_dim = channels``), then, with ``pool``, the mean over the
    valid positions. With ``mask (B, N)`` padded positions are zeroed before every convolution, so an item's output
    does not depend on the padding of its batch.
    """

    def __init__(self, in_dim: int, channels: int = 256, kernel_size: int = 3, layers: int = 2,
                 out_dim: int | None = None, dropout: float = 0.5, pool: bool = False):
        super().__init__()
        if kernel_size % 2 == 0 or layers < 1:
            raise ConfigError(f"need an odd kernel and >= 1 layer, got kernel {kernel_size}, layers {layers}")
        self.pool = bool(pool)
        self.convs = nn.ModuleList(nn.Conv1d(in_dim if i == 0 else channels, channels, kernel_size,
                                             padding=kernel_size // 2) for i in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(channels) for _ in range(layers))
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(channels, out_dim) if out_dim is not None else None

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``x (B, N, in_dim)``; ``mask (B, N)`` True at padding (all valid when None)."""
        keep = None if mask is None else (~mask)[..., None].to(x.dtype)
        h = x
        for conv, norm in zip(self.convs, self.norms):
            if keep is not None:
                h = h * keep
            h = self.dropout(norm(F.relu(conv(h.transpose(1, 2))).transpose(1, 2)))
        if self.proj is not None:
            h = self.proj(h)
        if not self.pool:
            return h if keep is None else h * keep
        if keep is None:
            return h.mean(1)
        return (h * keep).sum(1) / keep.sum(1).clamp_min(1.0)


def segment_mean(frames: Tensor, durations: Tensor) -> Tensor:
    """Mean of each token's frames: ``frames (B, L, D)``, ``durations (B, N)`` -> ``(B, N, D)``.

    Token ``n`` owns frames ``[sum(d[:n]), sum(d[:n+1]))``; frames past ``sum(d)`` are ignored; a token with no
    frame gets zeros.
    """
    if frames.ndim != 3 or durations.ndim != 2 or durations.shape[0] != frames.shape[0]:
        raise ConfigError(f"segment_mean takes frames (B, L, D) and durations (B, N); got {tuple(frames.shape)} "
                          f"and {tuple(durations.shape)}")
    d = durations.long().clamp_min(0)
    ends = d.cumsum(1)
    t = torch.arange(frames.shape[1], device=frames.device)
    # membership (B, N, L): frame t belongs to token n when start_n <= t < end_n
    member = (t[None, None] >= (ends - d)[..., None]) & (t[None, None] < ends[..., None])
    sums = torch.bmm(member.to(frames.dtype), frames)
    return sums / d.clamp_min(1)[..., None].to(frames.dtype)
