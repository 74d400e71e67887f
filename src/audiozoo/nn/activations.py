"""Activations with learned parameters.

- :class:`Snake1d`: the periodic Snake activation ``x + sin^2(alpha x) / alpha`` (Ziyin, Hartwig & Ueda 2020,
  "Neural Networks Fail to Learn Periodic Functions and How to Fix It", arXiv:2006.08195, eq. 3), one ``alpha``
  per channel, as BigVGAN, DAC and HiFi-SR use it (``1e-9`` in the denominator as DAC's ``Snake1d``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["Snake1d"]


class Snake1d(nn.Module):
    """Snake activation ``x + sin^2(alpha x) / (alpha + 1e-9)``, one learned ``alpha`` per channel (init 1).

    ``(B, C, T) -> (B, C, T)``.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + (self.alpha + 1e-9).reciprocal() * torch.sin(self.alpha * x).pow(2)
