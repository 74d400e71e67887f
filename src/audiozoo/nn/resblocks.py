"""HiFi-GAN residual blocks and multi-receptive-field fusion (Kong, Kim & Bae, NeurIPS 2020, arXiv:2010.05646).

Faithful to the official ``jik876/hifi-gan`` ``models.py``: ``LRELU_SLOPE = 0.1``, stride-1 convs with
``get_padding(k, d) = d * (k - 1) // 2`` (length-preserving for HiFi-GAN's odd kernels), weight norm on every
conv, parameter names ``convs1.{i}``/``convs2.{i}`` (ResBlock1) and ``convs.{i}`` (ResBlock2), so official
checkpoints load after :func:`audiozoo.nn.weight_norm.convert_legacy_weight_norm_keys`.

Initialisation: the official ``init_weights`` (``weight.data.normal_(0, 0.01)``) runs *after* ``weight_norm``
and writes into the derived ``weight`` tensor, which the weight-norm hook recomputes from ``g``/``v`` before
every forward, so it has no effect: the trained models started from PyTorch's default conv init with
``g = ||v||``. We reproduce that effective behaviour (default init, then weight norm).

The optional ``x_mask`` ``(B, 1, T)`` follows VITS (Kim et al. 2021, ``modules.ResBlock1/2``), which reuses
these blocks on padded batches; without it the forward is exactly HiFi-GAN's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from ..errors import ConfigError
from .conv import get_padding
from .weight_norm import remove_weight_norm

__all__ = ["LRELU_SLOPE", "MRF", "ResBlock1", "ResBlock2"]

LRELU_SLOPE = 0.1


def _wn_conv(channels: int, kernel_size: int, dilation: int) -> nn.Conv1d:
    return weight_norm(nn.Conv1d(channels, channels, kernel_size, 1, dilation=dilation,
                                 padding=get_padding(kernel_size, dilation)))


def _masked(x: Tensor, mask: Tensor | None) -> Tensor:
    return x if mask is None else x * mask


class ResBlock1(nn.Module):
    """HiFi-GAN "V1/V2" resblock ``(B, C, T) -> (B, C, T)``.

    For each dilation ``d``: ``x = x + conv2(lrelu(conv1_d(lrelu(x))))`` where ``conv1_d`` is dilated by ``d``
    and ``conv2`` has dilation 1. Parameters: ``6 * (C * C * k + 2 * C)`` (weights, biases and the weight-norm
    gains ``g``).
    """

    def __init__(self, channels: int, kernel_size: int = 3, dilation: Sequence[int] = (1, 3, 5),
                 lrelu_slope: float = LRELU_SLOPE):
        super().__init__()
        self.lrelu_slope = lrelu_slope
        self.convs1 = nn.ModuleList(_wn_conv(channels, kernel_size, d) for d in dilation)
        self.convs2 = nn.ModuleList(_wn_conv(channels, kernel_size, 1) for _ in dilation)

    def forward(self, x: Tensor, x_mask: Tensor | None = None) -> Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            xt = c1(_masked(F.leaky_relu(x, self.lrelu_slope), x_mask))
            xt = c2(_masked(F.leaky_relu(xt, self.lrelu_slope), x_mask))
            x = xt + x
        return _masked(x, x_mask)

    def remove_weight_norm(self) -> None:
        remove_weight_norm(self)


class ResBlock2(nn.Module):
    """HiFi-GAN "V3" resblock ``(B, C, T) -> (B, C, T)``: for each dilation ``x = x + conv_d(lrelu(x))``.

    Parameters: ``len(dilation) * (C * C * k + 2 * C)``.
    """

    def __init__(self, channels: int, kernel_size: int = 3, dilation: Sequence[int] = (1, 3),
                 lrelu_slope: float = LRELU_SLOPE):
        super().__init__()
        self.lrelu_slope = lrelu_slope
        self.convs = nn.ModuleList(_wn_conv(channels, kernel_size, d) for d in dilation)

    def forward(self, x: Tensor, x_mask: Tensor | None = None) -> Tensor:
        for c in self.convs:
            x = c(_masked(F.leaky_relu(x, self.lrelu_slope), x_mask)) + x
        return _masked(x, x_mask)

    def remove_weight_norm(self) -> None:
        remove_weight_norm(self)


class MRF(nn.Module):
    """Multi-receptive-field fusion: the average of ``len(kernel_sizes)`` resblocks ``(B, C, T) -> (B, C, T)``.

    HiFi-GAN V1: ``kernel_sizes=(3, 7, 11)``, ``dilations=((1, 3, 5),) * 3``, ``resblock="1"``; V3:
    ``kernel_sizes=(3, 5, 7)``, ``dilations=((1, 2), (2, 6), (3, 12))``, ``resblock="2"``. The official
    generator keeps all stages' resblocks in one flat list (``resblocks.{stage * n + j}``); here they are
    ``resblocks.{j}`` of one MRF per stage (a converter maps one index to the other).
    """

    def __init__(self, channels: int, kernel_sizes: Sequence[int] = (3, 7, 11),
                 dilations: Sequence[Sequence[int]] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
                 resblock: str = "1", lrelu_slope: float = LRELU_SLOPE):
        super().__init__()
        if len(kernel_sizes) != len(dilations) or not kernel_sizes:
            raise ConfigError(f"MRF needs one dilation list per kernel size, got {len(kernel_sizes)} kernel "
                              f"sizes and {len(dilations)} dilation lists")
        if resblock not in ("1", "2"):
            raise ConfigError(f"resblock must be '1' or '2' (HiFi-GAN's h.resblock), got {resblock!r}")
        block = ResBlock1 if resblock == "1" else ResBlock2
        self.resblocks = nn.ModuleList(
            block(channels, k, d, lrelu_slope) for k, d in zip(kernel_sizes, dilations)
        )

    def forward(self, x: Tensor, x_mask: Tensor | None = None) -> Tensor:
        # Sum in order then divide, as the official generator does (bit-identical outputs).
        xs = self.resblocks[0](x, x_mask)
        for block in self.resblocks[1:]:
            xs = xs + block(x, x_mask)
        return xs / len(self.resblocks)

    def remove_weight_norm(self) -> None:
        remove_weight_norm(self)
