"""1-D ConvNeXt-V2 blocks (Woo et al. 2023, arXiv:2301.00808) as audio generators use them.

Vocos (Siuzdak 2023) brought the ConvNeXt block to 1-D audio; PeriodWave's mel conditioner and several
flow-matching TTS systems use its V2 form, which adds global response normalisation (GRN, paper Section 3,
eqs. 1-3) after the GELU. The 2-D classification ConvNeXt (``models/classify/convnext.py``) is a different
block and is not this one.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .transformer import DropPath

__all__ = ["GRN", "ConvNeXtV2Block"]


class GRN(nn.Module):
    """Global response normalisation on ``(B, L, C)``: ``gamma * (x * N(x)) + beta + x``.

    ``G(x)`` is the L2 norm of each channel over time (eq. 1), ``N(x) = G(x) / (mean_C G(x) + 1e-6)`` (eq. 2);
    ``gamma`` and ``beta`` start at zero, so a fresh block is the identity (eq. 3).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, dim))

    def forward(self, x: Tensor) -> Tensor:
        gx = torch.linalg.vector_norm(x, dim=1, keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * nx) + self.beta + x


class ConvNeXtV2Block(nn.Module):
    """1-D ConvNeXt-V2 block ``(B, C, L) -> (B, C, L)`` (Vocos layout + GRN, as PeriodWave's ``convnext.py``):
    depthwise Conv1d k7 -> LayerNorm (eps 1e-6) -> Linear ``C -> I`` -> GELU -> GRN -> Linear ``I -> C``,
    residual with stochastic depth.

    GRN pools over the whole time axis, so padded frames of a batch change the valid ones (as in the papers).
    """

    def __init__(self, dim: int, intermediate_dim: int, drop_path: float = 0.0):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.act = nn.GELU()
        self.grn = GRN(intermediate_dim)
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.dwconv(x).transpose(1, 2)
        h = self.pwconv2(self.grn(self.act(self.pwconv1(self.norm(h)))))
        return x + self.drop_path(h.transpose(1, 2))
