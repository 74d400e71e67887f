"""Parallel WaveGAN's non-causal WaveNet: gated dilated residual convolutions in dilation cycles, with skips.

WaveNet (van den Oord et al. 2016, arXiv:1609.03499, Sec. 2.3-2.4) without causality, in the layout of Parallel
WaveGAN's generator (Yamamoto et al. 2020, arXiv:1910.11480; kan-bayashi's reference ``ResidualBlock`` /
``ParallelWaveGANGenerator``), which FastSpeech 2s's waveform decoder follows (Ren et al. 2021, arXiv:2006.04558,
Sec. 2.4: "non-causal convolutions and gated activation"):

- :class:`GatedResidualBlock`: dilated conv ``C_res -> C_gate`` (kernel ``k``, "same" padding), plus a 1x1
  projection (no bias) of a local condition ``c`` when given, split in halves ``a, b``, ``z = tanh(a) *
  sigmoid(b)``; separate 1x1 convs give the skip ``(C_skip)`` and the residual update, ``(x + out(z)) * sqrt(0.5)``
  (the last block has no residual conv: nothing reads its update, so the reference's would get no gradient);
- :class:`NonCausalWaveNet`: ``layers`` blocks in ``stacks`` cycles of dilations ``1, 2, ..., 2^(layers / stacks -
  1)``; skips summed and scaled by ``sqrt(1 / layers)``, then ReLU -> 1x1 -> ReLU -> 1x1 to the output channels.

(:class:`audiozoo.nn.wavenet.WN` is WaveGlow / Glow-TTS's variant: one exponential dilation run, fused res/skip
1x1, masks, weight norm built in; its parameter names follow those checkpoints, so the two stay separate.)

Shapes are channels first ``(B, C, T)``; every conv keeps ``T``. Weight normalisation (Parallel WaveGAN applies it to
every conv) is the caller's choice (:func:`audiozoo.nn.weight_norm.apply_weight_norm`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import ConfigError

__all__ = ["GatedResidualBlock", "NonCausalWaveNet"]


class GatedResidualBlock(nn.Module):
    """One non-causal gated residual block: ``(x (B, C_res, T), c (B, C_aux, T) | None) -> (x', skip (B, C_skip, T))``.

    Args:
        residual_channels, gate_channels, skip_channels: widths (Parallel WaveGAN: 64, 128, 64).
        kernel_size: odd kernel of the dilated conv (3).
        dilation: its dilation.
        aux_channels: channels of the local condition ``c`` (0: none).
        dropout: on the block input before the dilated conv (Parallel WaveGAN: 0).
        residual: whether the block updates the residual stream (False for a stack's last block, whose update
            nothing reads: it returns ``x`` unchanged and has no residual 1x1 conv).
    """

    def __init__(self, residual_channels: int = 64, gate_channels: int = 128, skip_channels: int = 64,
                 kernel_size: int = 3, dilation: int = 1, aux_channels: int = 0, dropout: float = 0.0,
                 residual: bool = True):
        super().__init__()
        if kernel_size % 2 == 0 or gate_channels % 2 or dilation < 1:
            raise ConfigError(f"GatedResidualBlock needs an odd kernel, even gate channels and dilation >= 1, got "
                              f"{kernel_size}, {gate_channels}, {dilation}")
        self.dropout = nn.Dropout(dropout)
        self.conv = nn.Conv1d(residual_channels, gate_channels, kernel_size, padding=(kernel_size - 1) // 2 * dilation,
                              dilation=dilation)
        self.aux = nn.Conv1d(aux_channels, gate_channels, 1, bias=False) if aux_channels > 0 else None
        self.out = nn.Conv1d(gate_channels // 2, residual_channels, 1) if residual else None
        self.skip = nn.Conv1d(gate_channels // 2, skip_channels, 1)

    def forward(self, x: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = self.conv(self.dropout(x))
        if self.aux is not None:
            if c is None:
                raise ConfigError("this GatedResidualBlock is conditioned: pass c (B, C_aux, T)")
            h = h + self.aux(c)
        a, b = h.chunk(2, dim=1)
        z = torch.tanh(a) * torch.sigmoid(b)  # WaveNet's gated activation unit (Sec. 2.3)
        if self.out is None:
            return x, self.skip(z)
        return (x + self.out(z)) * math.sqrt(0.5), self.skip(z)


class NonCausalWaveNet(nn.Module):
    """Stack of :class:`GatedResidualBlock`: ``(x (B, C_res, T), c (B, C_aux, T) | None) -> (B, out_channels, T)``.

    ``x`` enters the residual stream directly (its channels are ``residual_channels``); ``c`` conditions every
    block when ``aux_channels > 0``. Receptive field: ``1 + (k - 1) * sum(dilations)`` samples.
    """

    def __init__(self, residual_channels: int = 64, gate_channels: int = 128, skip_channels: int = 64,
                 out_channels: int = 1, layers: int = 30, stacks: int = 3, kernel_size: int = 3,
                 aux_channels: int = 0, dropout: float = 0.0):
        super().__init__()
        if layers < 1 or stacks < 1 or layers % stacks:
            raise ConfigError(f"NonCausalWaveNet needs layers divisible by stacks, got {layers}, {stacks}")
        per = layers // stacks
        self.dilations = tuple(2 ** (i % per) for i in range(layers))
        self.kernel_size = kernel_size
        self.blocks = nn.ModuleList(
            GatedResidualBlock(residual_channels, gate_channels, skip_channels, kernel_size, d, aux_channels, dropout,
                               residual=i < layers - 1)
            for i, d in enumerate(self.dilations))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv1d(skip_channels, skip_channels, 1), nn.ReLU(),
                                  nn.Conv1d(skip_channels, out_channels, 1))

    @property
    def receptive_field(self) -> int:
        """Samples that one output sample sees."""
        return 1 + (self.kernel_size - 1) * sum(self.dilations)

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        skips = torch.zeros((), dtype=x.dtype, device=x.device)
        for block in self.blocks:
            x, s = block(x, c)
            skips = skips + s
        return self.head(skips * math.sqrt(1.0 / len(self.blocks)))
