"""Normalising flows on ``(B, C, T)`` sequences: Glow-TTS's Glow (ActNorm, invertible 1x1 conv over channel groups,
affine coupling with a :class:`~audiozoo.nn.wavenet.WN`) with PortaSpeech's grouped parameter sharing, and the
volume-preserving residual-coupling flow of PortaSpeech's enhanced VAE prior.

* :class:`Glow`: Kim et al., Glow-TTS (arXiv:2005.11129) Section 3.3 decoder: squeeze ``n_sqz`` frames into the
  channels, ``n_blocks`` x [:class:`ActNorm`, :class:`InvConvNear`, :class:`AffineCoupling`], unsqueeze.
  ``share_wn_layers = k > 0``: the WaveNet of the couplings (``in_layers`` / ``res_skip_layers``) is shared by
  groups of ``k`` consecutive blocks (PortaSpeech, Ren et al. 2021, arXiv:2109.15166, Section 3.3 "grouped
  parameter sharing"); each coupling keeps its own ``start`` / ``end`` / condition projection.
* :class:`ResidualCouplingFlow`: ``n_steps`` x [additive coupling (:class:`AdditiveCoupling`), channel flip], the
  "VP-Flow" prior of PortaSpeech's fVAE (Section 3.1): log-determinant 0.

All flows: ``forward(x, mask (B, 1, T), cond=None, reverse=False)``; the Glow pieces return ``(y, logdet (B,))``.
Parameter names follow NATSpeech's ``glow_modules`` / ``res_flow`` so its checkpoints load after
:func:`audiozoo.nn.weight_norm.convert_legacy_weight_norm_keys`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from .wavenet import WN

__all__ = ["ActNorm", "AdditiveCoupling", "AffineCoupling", "Glow", "InvConvNear", "ResidualCouplingFlow",
           "squeeze", "unsqueeze"]


def squeeze(x: Tensor, mask: Tensor | None = None, n_sqz: int = 2) -> tuple[Tensor, Tensor]:
    """``(B, C, T) -> (B, C n_sqz, T // n_sqz)``: frames ``n_sqz t + k`` go to channels ``k C + c``; the mask keeps
    the last frame of each group."""
    b, c, t = x.shape
    t = t // n_sqz * n_sqz
    y = x[:, :, :t].reshape(b, c, t // n_sqz, n_sqz).permute(0, 3, 1, 2).reshape(b, c * n_sqz, t // n_sqz)
    m = mask[:, :, n_sqz - 1::n_sqz] if mask is not None else x.new_ones(b, 1, t // n_sqz)
    return y * m, m


def unsqueeze(x: Tensor, mask: Tensor | None = None, n_sqz: int = 2) -> tuple[Tensor, Tensor]:
    """Inverse of :func:`squeeze`."""
    b, c, t = x.shape
    y = x.reshape(b, n_sqz, c // n_sqz, t).permute(0, 2, 3, 1).reshape(b, c // n_sqz, t * n_sqz)
    m = mask[..., None].repeat(1, 1, 1, n_sqz).reshape(b, 1, t * n_sqz) if mask is not None else \
        x.new_ones(b, 1, t * n_sqz)
    return y * m, m


class ActNorm(nn.Module):
    """Per-channel affine ``y = bias + exp(logs) x`` (Glow, Kingma & Dhariwal 2018); logdet ``sum(logs) * T_valid``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.logs = nn.Parameter(torch.zeros(1, channels, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1))

    def forward(self, x: Tensor, mask: Tensor, cond: Tensor | None = None, reverse: bool = False
                ) -> tuple[Tensor, Tensor]:
        n = mask.sum((1, 2))
        if reverse:
            return (x - self.bias) * torch.exp(-self.logs) * mask, -self.logs.sum() * n
        return (self.bias + torch.exp(self.logs) * x) * mask, self.logs.sum() * n


class InvConvNear(nn.Module):
    """Glow-TTS's invertible 1x1 convolution over groups of ``n_split`` channels (LU-parametrised ``W = P L U``).

    The channels are viewed as ``(n_sqz, C / n_split, n_split / n_sqz)`` and one ``n_split x n_split`` matrix mixes
    the ``n_split`` channels taken ``n_split / n_sqz`` from each squeezed half; logdet ``sum(log|s|) C / n_split
    T_valid``. ``p`` and ``sign_s`` are buffers fixed at initialisation (a random rotation)."""

    def __init__(self, channels: int, n_split: int = 4, n_sqz: int = 2) -> None:
        super().__init__()
        if n_split % 2 or channels % n_split:
            raise ValueError(f"InvConvNear needs an even n_split dividing the channels, got {n_split}, {channels}")
        self.channels, self.n_split, self.n_sqz = channels, n_split, n_sqz
        # initialisation on the CPU (also under a meta device context): a random rotation with det +1, then LU
        w = torch.linalg.qr(torch.randn(n_split, n_split, device="cpu"))[0]
        if torch.det(w) < 0:
            w[:, 0] = -w[:, 0]
        p, lo, up = torch.linalg.lu(w)
        s = torch.diagonal(up)
        self.register_buffer("p", p)
        self.register_buffer("sign_s", torch.sign(s))
        self.l = nn.Parameter(lo)  # noqa: E741  (the reference's name)
        self.log_s = nn.Parameter(torch.log(s.abs()))
        self.u = nn.Parameter(torch.triu(up, 1))
        self.register_buffer("l_mask", torch.tril(torch.ones(n_split, n_split, device="cpu"), -1))
        self.register_buffer("eye", torch.eye(n_split, device="cpu"))

    def weight(self) -> Tensor:
        lo = self.l * self.l_mask + self.eye
        up = self.u * self.l_mask.t() + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.p @ (lo @ up)

    def forward(self, x: Tensor, mask: Tensor, cond: Tensor | None = None, reverse: bool = False
                ) -> tuple[Tensor, Tensor]:
        b, c, t = x.shape
        k = self.n_split
        y = x.reshape(b, self.n_sqz, c // k, k // self.n_sqz, t).permute(0, 1, 3, 2, 4).reshape(b, k, c // k, t)
        w = self.weight()
        logdet = self.log_s.sum() * (c / k) * mask.sum((1, 2))
        if reverse:
            full = w.dtype in (torch.float32, torch.float64)  # half precision: invert in float32
            w, logdet = torch.inverse(w if full else w.float()).to(w.dtype), -logdet
        z = F.conv2d(y, w[:, :, None, None])
        z = z.reshape(b, self.n_sqz, k // self.n_sqz, c // k, t).permute(0, 1, 3, 2, 4).reshape(b, c, t)
        return z * mask, logdet


class AffineCoupling(nn.Module):
    """Glow-TTS affine coupling: ``(m, log s) = end(WN(start(x_a), cond))``, ``x_b <- m + exp(log s) x_b``.

    ``end`` is zero-initialised (identity at the start of training). ``wn``: share the ``in_layers`` /
    ``res_skip_layers`` of another :class:`WN` (grouped sharing); this coupling's ``cond_layer`` stays its own."""

    def __init__(self, channels: int, hidden: int, kernel_size: int, dilation_rate: int, n_layers: int,
                 cond_channels: int = 0, dropout: float = 0.0, sigmoid_scale: bool = False,
                 wn: WN | None = None) -> None:
        super().__init__()
        self.half, self.sigmoid_scale = channels // 2, sigmoid_scale
        self.start = weight_norm(nn.Conv1d(channels // 2, hidden, 1))
        self.end = nn.Conv1d(hidden, channels, 1)
        nn.init.zeros_(self.end.weight)
        nn.init.zeros_(self.end.bias)
        self.wn = WN(hidden, kernel_size, dilation_rate, n_layers, cond_channels, dropout)
        if wn is not None:
            self.wn.in_layers = wn.in_layers
            self.wn.res_skip_layers = wn.res_skip_layers

    def forward(self, x: Tensor, mask: Tensor, cond: Tensor | None = None, reverse: bool = False
                ) -> tuple[Tensor, Tensor]:
        x0, x1 = x[:, :self.half], x[:, self.half:]
        out = self.end(self.wn(self.start(x0) * mask, mask, cond))
        m, logs = out[:, :self.half], out[:, self.half:]
        if self.sigmoid_scale:
            logs = torch.log(1e-6 + torch.sigmoid(logs + 2))
        if reverse:
            z1, logdet = (x1 - m) * torch.exp(-logs) * mask, -(logs * mask).sum((1, 2))
        else:
            z1, logdet = (m + torch.exp(logs) * x1) * mask, (logs * mask).sum((1, 2))
        return torch.cat([x0, z1], 1), logdet


class Glow(nn.Module):
    """Glow-TTS decoder / PortaSpeech post-net: ``forward(x (B, C, T), mask (B, 1, T), cond (B, G, T) | None,
    reverse=False) -> (y (B, C, T'), logdet (B,))`` with ``T' = T // n_sqz * n_sqz``.

    ``cond_channels`` is the width of the condition before squeezing (the couplings see ``G n_sqz`` channels)."""

    def __init__(self, channels: int, hidden: int, kernel_size: int, dilation_rate: int, n_blocks: int,
                 n_layers: int, dropout: float = 0.0, n_split: int = 4, n_sqz: int = 2, sigmoid_scale: bool = False,
                 cond_channels: int = 0, share_wn_layers: int = 0) -> None:
        super().__init__()
        self.n_sqz = n_sqz
        c, g = channels * n_sqz, cond_channels * n_sqz
        self.flows = nn.ModuleList()
        shared = None
        for b in range(n_blocks):
            self.flows.append(ActNorm(c))
            self.flows.append(InvConvNear(c, n_split, n_sqz))
            if share_wn_layers > 0 and b % share_wn_layers == 0:
                shared = WN(hidden, kernel_size, dilation_rate, n_layers, g, dropout)
            self.flows.append(AffineCoupling(c, hidden, kernel_size, dilation_rate, n_layers, g, dropout,
                                             sigmoid_scale, wn=shared if share_wn_layers > 0 else None))

    def forward(self, x: Tensor, mask: Tensor | None = None, cond: Tensor | None = None, reverse: bool = False
                ) -> tuple[Tensor, Tensor]:
        if mask is None:
            mask = x.new_ones(x.shape[0], 1, x.shape[-1])
        if self.n_sqz > 1:
            x, m = squeeze(x, mask, self.n_sqz)
            if cond is not None:
                cond, _ = squeeze(cond, mask, self.n_sqz)
            mask = m
        logdet = x.new_zeros(x.shape[0])
        for f in (reversed(self.flows) if reverse else self.flows):
            x, ld = f(x, mask, cond, reverse=reverse)
            logdet = logdet + ld
        if self.n_sqz > 1:
            x, mask = unsqueeze(x, mask, self.n_sqz)
        return x, logdet


class AdditiveCoupling(nn.Module):
    """Volume-preserving coupling: ``x_b <- x_b + post(WN(pre(x_a), cond))`` (logdet 0)."""

    def __init__(self, channels: int, hidden: int, kernel_size: int, n_layers: int, cond_channels: int = 0,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.half = channels // 2
        self.pre = nn.Conv1d(self.half, hidden, 1)
        self.enc = WN(hidden, kernel_size, 1, n_layers, cond_channels, dropout)
        self.post = nn.Conv1d(hidden, self.half, 1)

    def forward(self, x: Tensor, mask: Tensor | float, cond: Tensor | None = None, reverse: bool = False) -> Tensor:
        x0, x1 = x[:, :self.half], x[:, self.half:]
        m = self.post(self.enc(self.pre(x0) * mask, mask if isinstance(mask, Tensor) else None, cond))
        x1 = x1 - m if reverse else x1 + m
        return torch.cat([x0, x1], 1) * mask


class _Flip(nn.Module):
    def forward(self, x: Tensor, mask: Tensor | float, cond: Tensor | None = None, reverse: bool = False) -> Tensor:
        return torch.flip(x, [1])


class ResidualCouplingFlow(nn.Module):
    """``n_steps`` x [:class:`AdditiveCoupling` (``n_layers`` WN layers), channel flip]: ``forward(x (B, C, T), mask,
    cond, reverse) -> (B, C, T)`` (NATSpeech ``ResFlow``; indices ``flows.2i`` are the couplings)."""

    def __init__(self, channels: int, hidden: int, kernel_size: int, n_layers: int, n_steps: int = 4,
                 cond_channels: int = 0) -> None:
        super().__init__()
        self.flows = nn.ModuleList()
        for _ in range(n_steps):
            self.flows.append(AdditiveCoupling(channels, hidden, kernel_size, n_layers, cond_channels))
            self.flows.append(_Flip())

    def forward(self, x: Tensor, mask: Tensor | float, cond: Tensor | None = None, reverse: bool = False) -> Tensor:
        for f in (reversed(self.flows) if reverse else self.flows):
            x = f(x, mask, cond, reverse=reverse)
        return x
