"""Condition-shifted residual U-Net blocks over spectrograms (ResUNet of Kong et al.) and FiLM layers.

- :class:`FiLM`: Feature-wise Linear Modulation (Perez et al. 2018, arXiv:1709.07871) from one condition
  vector: one ``Linear(cond_dim, sum(sizes))`` whose output is split into a shift ``beta`` per modulated layer
  (``(B, n, 1, 1)``, broadcast over a ``(B, n, T, F)`` map) and, with ``scale=True``, a multiplier ``gamma``.
  Several per-layer ``Linear(cond_dim, n)`` layers are the same map with their rows stacked. USS
  (arXiv:2305.07447, Section 3.3) uses shifts only.
- :class:`ResConvBlock2d`: pre-activation residual block ``x + conv(act(bn(conv(act(bn(x) + b1))) ) + b2))``
  with a 1x1 shortcut when the channel count changes (ResUNet of "Decoupling magnitude and phase estimation
  with deep ResUNet for music source separation", Kong et al. 2021, arXiv:2109.05418), ``b1``/``b2`` optional
  FiLM shifts added after each BatchNorm.
- :class:`ResUNetEncoderBlock`: a residual block, then average pooling by ``stride`` (returns the pooled map and
  the skip).
- :class:`ResUNetDecoderBlock`: ``ConvTranspose2d(act(bn(x) + b))`` up by ``stride``, concatenated with the
  skip, then a residual block.

Maps are ``(B, C, T, F)`` (time, then frequency).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

__all__ = ["FiLM", "ResConvBlock2d", "ResUNetDecoderBlock", "ResUNetEncoderBlock"]


class FiLM(nn.Module):
    """Condition ``(B, cond_dim)`` -> a list of per-layer shifts ``beta_i (B, sizes[i], 1, 1)`` (or, with
    ``scale=True``, of ``(gamma_i, beta_i)`` pairs, ``gamma = 1 + Linear``)."""

    def __init__(self, cond_dim: int, sizes: Sequence[int], scale: bool = False):
        super().__init__()
        if cond_dim < 1 or not sizes or min(sizes) < 1:
            raise ConfigError(f"FiLM needs cond_dim >= 1 and positive sizes, got {cond_dim}, {list(sizes)}")
        self.sizes, self.scale = [int(s) for s in sizes], bool(scale)
        self.proj = nn.Linear(cond_dim, sum(self.sizes) * (2 if scale else 1))

    def forward(self, condition: Tensor) -> list:
        if condition.ndim != 2 or condition.shape[1] != self.proj.in_features:
            raise ConfigError(f"FiLM expects a condition (B, {self.proj.in_features}), got {tuple(condition.shape)}")
        out = self.proj(condition)[:, :, None, None]
        if not self.scale:
            return list(out.split(self.sizes, dim=1))
        gamma, beta = out.chunk(2, dim=1)
        return [(1 + g, b) for g, b in zip(gamma.split(self.sizes, 1), beta.split(self.sizes, 1))]


def _act(x: Tensor, slope: float) -> Tensor:
    return F.leaky_relu(x, negative_slope=slope)


class ResConvBlock2d(nn.Module):
    """Pre-activation residual block (BN -> +shift -> LeakyReLU -> conv) x 2; ``(B, cin, T, F) -> (B, cout, T,
    F)``. ``film_sizes`` gives the shifts it takes: ``(cin, cout)``."""

    def __init__(self, cin: int, cout: int, kernel_size: tuple[int, int] = (3, 3), momentum: float = 0.1,
                 slope: float = 0.01):
        super().__init__()
        pad = (kernel_size[0] // 2, kernel_size[1] // 2)
        self.bn1 = nn.BatchNorm2d(cin, momentum=momentum)
        self.bn2 = nn.BatchNorm2d(cout, momentum=momentum)
        self.conv1 = nn.Conv2d(cin, cout, kernel_size, padding=pad, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, kernel_size, padding=pad, bias=False)
        self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None
        self.slope = slope
        self.film_sizes = (cin, cout)

    def forward(self, x: Tensor, beta1: Tensor | float = 0.0, beta2: Tensor | float = 0.0) -> Tensor:
        h = self.conv1(_act(self.bn1(x) + beta1, self.slope))
        h = self.conv2(_act(self.bn2(h) + beta2, self.slope))
        return (self.shortcut(x) if self.shortcut is not None else x) + h


class ResUNetEncoderBlock(nn.Module):
    """Residual block then ``avg_pool2d(stride)``: ``(B, cin, T, F) -> (pooled (B, cout, T/st, F/sf), skip (B,
    cout, T, F))``; shifts as :class:`ResConvBlock2d`."""

    def __init__(self, cin: int, cout: int, stride: tuple[int, int], kernel_size: tuple[int, int] = (3, 3),
                 momentum: float = 0.1, slope: float = 0.01):
        super().__init__()
        self.block = ResConvBlock2d(cin, cout, kernel_size, momentum, slope)
        self.stride = tuple(stride)
        self.film_sizes = self.block.film_sizes

    def forward(self, x: Tensor, beta1: Tensor | float = 0.0, beta2: Tensor | float = 0.0) -> tuple[Tensor, Tensor]:
        skip = self.block(x, beta1, beta2)
        pooled = F.avg_pool2d(skip, self.stride) if self.stride != (1, 1) else skip
        return pooled, skip


class ResUNetDecoderBlock(nn.Module):
    """``ConvTranspose2d(LeakyReLU(bn(x) + b0), stride)`` -> concat skip -> residual block: ``(B, cin, T, F),
    skip (B, cout, T*st, F*sf) -> (B, cout, T*st, F*sf)``. ``film_sizes``: ``(cin, 2 cout, cout)``."""

    def __init__(self, cin: int, cout: int, stride: tuple[int, int], kernel_size: tuple[int, int] = (3, 3),
                 momentum: float = 0.1, slope: float = 0.01):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, momentum=momentum)
        self.up = nn.ConvTranspose2d(cin, cout, tuple(stride), stride=tuple(stride), bias=False)
        self.block = ResConvBlock2d(2 * cout, cout, kernel_size, momentum, slope)
        self.slope = slope
        self.film_sizes = (cin, *self.block.film_sizes)

    def forward(self, x: Tensor, skip: Tensor, beta0: Tensor | float = 0.0, beta1: Tensor | float = 0.0,
                beta2: Tensor | float = 0.0) -> Tensor:
        x = self.up(_act(self.bn1(x) + beta0, self.slope))
        return self.block(torch.cat([x, skip], dim=1), beta1, beta2)
