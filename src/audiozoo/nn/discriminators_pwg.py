"""Parallel WaveGAN's discriminator (Yamamoto et al., "Parallel WaveGAN", ICASSP 2020, arXiv:1910.11480, Sec. 4.1),
also FastSpeech 2s's (Ren et al. 2021, Sec. 2.4 and Appendix A: "the same as Parallel WaveGAN").

Ten non-causal 1-D convolutions of kernel 3 on the waveform: 1 -> 64 channels, then 64 -> 64 with dilations
1, 2, ..., 8 ("linearly increasing ... except for the first and last layers"), each followed by a leaky ReLU of
slope 0.2, and a last 64 -> 1 conv giving one logit per sample; weight normalisation on every conv (kan-bayashi's
reference ``ParallelWaveGANDiscriminator``, the paper's authors'). Canonical size: 99,265 weights and biases
(99,842 parameters with the 577 weight-norm gains).

Output format: as one HiFi-GAN sub-discriminator (:mod:`audiozoo.nn.discriminators`): ``(logits (B, T),
fmaps)``, the feature maps being every leaky-ReLU activation then the logits' map; the GAN tasks accept it as is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from ..errors import ConfigError

__all__ = ["ParallelWaveGANDiscriminator"]


class ParallelWaveGANDiscriminator(nn.Module):
    """``(B, T) | (B, 1, T) -> (logits (B, T), fmaps)`` (see the module docstring).

    Args:
        layers: convolutions in all (10).
        channels: hidden channels (64).
        kernel_size: odd kernel (3).
        dilation_factor: 1: dilations ``1, 1, 2, ..., layers - 2`` (Parallel WaveGAN); ``f > 1``: ``1, f, f^2...``.
        lrelu_slope: 0.2.
        use_weight_norm: weight-normalise every conv (True).
    """

    def __init__(self, layers: int = 10, channels: int = 64, kernel_size: int = 3, dilation_factor: int = 1,
                 lrelu_slope: float = 0.2, use_weight_norm: bool = True):
        super().__init__()
        if layers < 2 or kernel_size % 2 == 0 or dilation_factor < 1:
            raise ConfigError(f"ParallelWaveGANDiscriminator needs layers >= 2, an odd kernel and dilation_factor "
                              f">= 1, got {layers}, {kernel_size}, {dilation_factor}")
        norm = weight_norm if use_weight_norm else (lambda m: m)
        self.dilations = tuple(1 if i == 0 else (i if dilation_factor == 1 else dilation_factor ** i)
                               for i in range(layers - 1))
        self.convs = nn.ModuleList(
            norm(nn.Conv1d(1 if i == 0 else channels, channels, kernel_size, padding=(kernel_size - 1) // 2 * d,
                           dilation=d))
            for i, d in enumerate(self.dilations))
        self.conv_post = norm(nn.Conv1d(channels, 1, kernel_size, padding=(kernel_size - 1) // 2))
        self.lrelu_slope = float(lrelu_slope)

    def forward(self, y: Tensor) -> tuple[Tensor, list[Tensor]]:
        x = y[:, None] if y.ndim == 2 else y
        if x.ndim != 3 or x.shape[1] != 1:
            raise ConfigError(f"ParallelWaveGANDiscriminator takes (B, T) or (B, 1, T), got {tuple(y.shape)}")
        fmaps = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), self.lrelu_slope)
            fmaps.append(x)
        x = self.conv_post(x)
        fmaps.append(x)
        return torch.flatten(x, 1), fmaps
