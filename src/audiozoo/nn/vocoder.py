"""Blocks shared by HiFi-GAN-family vocoders (HiFi-GAN, iSTFTNet, ...): the upsampling trunk.

:class:`HiFiGANTrunk` is the body of the official ``jik876/hifi-gan`` ``Generator`` (Kong et al. 2020,
arXiv:2010.05646): ``conv_pre`` (k7) -> for each stage ``leaky_relu(0.1) -> ConvTranspose1d(k_i, stride u_i,
padding (k_i - u_i) // 2) -> MRF`` with the channel count halved at every stage, all convs weight-normed.
Models subclass it and add their own output head (HiFi-GAN: ``conv_post`` + tanh; iSTFTNet: a spectral head
and an inverse STFT), so parameter names stay the official top-level ``conv_pre`` / ``ups.{i}`` /
``conv_post``; the per-stage resblocks are ``mrfs.{i}.resblocks.{j}`` (official: flat ``resblocks.{i*n+j}``,
mapped by :func:`official_to_trunk_keys`).

The mel front-end the generators are trained on, :class:`audiozoo.dsp.VocoderMel`, is a feature extractor
and lives in :mod:`audiozoo.dsp.mel`; the name stays importable from here for existing imports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from ..errors import ConfigError
from .resblocks import LRELU_SLOPE, MRF
from .weight_norm import remove_weight_norm

__all__ = ["HiFiGANTrunk", "official_to_trunk_keys", "trunk_to_official_keys"]


class HiFiGANTrunk(nn.Module):
    """HiFi-GAN's upsampling body ``(B, n_mels, L) -> (B, C_last, L * prod(upsample_rates))``.

    ``C_last = initial_channel // 2 ** len(upsample_rates)``. Each ``(kernel - rate)`` must be even so that a
    stage multiplies the length exactly by its rate (true of every official config). A rate of 1 (iSTFTNet's
    "C1" stage) keeps the length and only refines features.
    """

    def __init__(self, n_mels: int, initial_channel: int, upsample_rates: Sequence[int],
                 upsample_kernel_sizes: Sequence[int], resblock: str, resblock_kernel_sizes: Sequence[int],
                 resblock_dilation_sizes: Sequence[Sequence[int]], lrelu_slope: float = LRELU_SLOPE):
        super().__init__()
        if len(upsample_rates) != len(upsample_kernel_sizes) or not upsample_rates:
            raise ConfigError(f"need one kernel size per upsampling rate, got rates {tuple(upsample_rates)} "
                              f"and kernels {tuple(upsample_kernel_sizes)}")
        for u, k in zip(upsample_rates, upsample_kernel_sizes):
            if u < 1 or k < u or (k - u) % 2:
                raise ConfigError(f"upsampling stage (rate {u}, kernel {k}): need kernel >= rate >= 1 and an even "
                                  "kernel - rate, else the output is not exactly rate x longer")
        if initial_channel % 2 ** len(upsample_rates):
            raise ConfigError(f"initial channels {initial_channel} cannot be halved {len(upsample_rates)} times")
        self.lrelu_slope = lrelu_slope
        self.upsample_factor = 1
        for u in upsample_rates:
            self.upsample_factor *= int(u)
        self.conv_pre = weight_norm(nn.Conv1d(n_mels, initial_channel, 7, 1, padding=3))
        self.ups = nn.ModuleList()
        self.mrfs = nn.ModuleList()
        ch = initial_channel
        for u, k in zip(upsample_rates, upsample_kernel_sizes):
            self.ups.append(weight_norm(nn.ConvTranspose1d(ch, ch // 2, k, u, padding=(k - u) // 2)))
            ch //= 2
            self.mrfs.append(MRF(ch, resblock_kernel_sizes, resblock_dilation_sizes, resblock, lrelu_slope))
        self.out_channels = ch

    def trunk(self, mel: Tensor) -> Tensor:
        """``(B, n_mels, L)`` -> ``(B, C_last, L * upsample_factor)`` (before the final activation)."""
        x = self.conv_pre(mel)
        for up, mrf in zip(self.ups, self.mrfs):
            x = mrf(up(F.leaky_relu(x, self.lrelu_slope)))
        return x

    def remove_weight_norm(self) -> None:
        """Fold every weight norm into plain weights (inference/export; outputs unchanged)."""
        remove_weight_norm(self)


_FLAT_RESBLOCK = re.compile(r"^resblocks\.(\d+)\.")
_MRF_RESBLOCK = re.compile(r"^mrfs\.(\d+)\.resblocks\.(\d+)\.")


def official_to_trunk_keys(state: Mapping[str, Tensor], num_kernels: int) -> dict[str, Tensor]:
    """Rename the official flat ``resblocks.{i * num_kernels + j}.`` to ``mrfs.{i}.resblocks.{j}.``."""
    out = {}
    for k, v in state.items():
        m = _FLAT_RESBLOCK.match(k)
        if m:
            idx = int(m.group(1))
            k = f"mrfs.{idx // num_kernels}.resblocks.{idx % num_kernels}." + k[m.end():]
        out[k] = v
    return out


def trunk_to_official_keys(state: Mapping[str, Tensor], num_kernels: int) -> dict[str, Tensor]:
    """The inverse of :func:`official_to_trunk_keys` (to export weights to the official layout)."""
    out = {}
    for k, v in state.items():
        m = _MRF_RESBLOCK.match(k)
        if m:
            k = f"resblocks.{int(m.group(1)) * num_kernels + int(m.group(2))}." + k[m.end():]
        out[k] = v
    return out
