"""Multi-band multi-scale STFT discriminator (MBD), as used by HiFi-SR and BigVGAN-v2.

Architecture of DAC's ``DiscriminatorB`` (Kumar et al., "High-Fidelity Audio Compression with Improved RVQGAN",
NeurIPS 2023, arXiv:2306.06546; descriptinc/descript-audio-codec), in the form HiFi-SR's official code uses it
(ClearerVoice-Studio ``mossformer2_sr/generator.py`` ``DiscriminatorB`` / ``MultiBandDiscriminator``, after
vocos / BigVGAN): for each FFT size (HiFi-SR ``mbd_fft_sizes`` [2048, 1024, 512]) the waveform has its DC removed
and is peak-normalised to 0.8, then a centred complex STFT (hop = n_fft / 4, Hann) as 2 channels (real, imag)
``(B, 2, frames, bins)`` is cut into 5 frequency bands (fractions 0-0.1-0.25-0.5-0.75-1 of the bins); each band
has its own stack of weight-normed Conv2d (2->32 (3,9); 3 x 32->32 (3,9) stride (1,2); 32->32 (3,3)), leaky ReLU
0.1, and the bands' outputs are concatenated along frequency into one (3,3) output conv.

Output format: as :mod:`audiozoo.nn.discriminators` (``(logits, fmaps)``, one entry per FFT size); the feature
maps are every band conv's activation except each band's first, then the output map (the official order).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from ..dsp.stft import stft
from ..errors import AudioError, ConfigError
from .discriminators import run_discriminators

__all__ = ["DiscriminatorB", "MultiBandDiscriminator"]

BANDS: tuple[tuple[float, float], ...] = ((0.0, 0.1), (0.1, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))


def _band_stack(channels: int) -> nn.ModuleList:
    conv = lambda cin, k, s, p: weight_norm(nn.Conv2d(cin, channels, k, s, padding=p))  # noqa: E731
    return nn.ModuleList([conv(2, (3, 9), (1, 1), (1, 4)), conv(channels, (3, 9), (1, 2), (1, 4)),
                          conv(channels, (3, 9), (1, 2), (1, 4)), conv(channels, (3, 9), (1, 2), (1, 4)),
                          conv(channels, (3, 3), (1, 1), (1, 1))])


class DiscriminatorB(nn.Module):
    """One MBD sub-discriminator on the STFT of size ``window_length``: ``(B, T) -> (logits (B, N), fmaps)``."""

    def __init__(self, window_length: int, channels: int = 32, hop_factor: float = 0.25,
                 bands: Sequence[tuple[float, float]] = BANDS, lrelu_slope: float = 0.1):
        super().__init__()
        if window_length < 16:
            raise ConfigError(f"DiscriminatorB window_length must be >= 16, got {window_length}")
        self.window_length, self.hop_length = int(window_length), int(window_length * hop_factor)
        n_bins = self.window_length // 2 + 1
        self.bands = [(int(lo * n_bins), int(hi * n_bins)) for lo, hi in bands]
        self.lrelu_slope = lrelu_slope
        self.band_convs = nn.ModuleList(_band_stack(channels) for _ in self.bands)
        self.conv_post = weight_norm(nn.Conv2d(channels, 1, (3, 3), (1, 1), padding=(1, 1)))

    def spectrogram(self, x: Tensor) -> list[Tensor]:
        """``(B, T)`` -> one ``(B, 2, frames, bins_k)`` tensor per band."""
        x = x - x.mean(dim=-1, keepdim=True)
        x = 0.8 * x / (x.abs().amax(dim=-1, keepdim=True) + 1e-9)
        # torchaudio.transforms.Spectrogram defaults (the official): centred, reflect padding, periodic Hann
        spec = stft(x.float(), self.window_length, self.hop_length, self.window_length, "hann", center=True,
                    pad_mode="reflect")
        s = torch.view_as_real(spec).permute(0, 3, 2, 1)  # (B, F, T, 2) -> (B, 2, T, F)
        return [s[..., lo:hi] for lo, hi in self.bands]

    def forward(self, y: Tensor) -> tuple[Tensor, list[Tensor]]:
        if y.ndim == 3 and y.shape[1] == 1:
            y = y.squeeze(1)
        if y.ndim != 2:
            raise AudioError(f"DiscriminatorB takes a mono waveform (B, T) or (B, 1, T), got {tuple(y.shape)}")
        if y.shape[-1] <= self.window_length // 2:
            raise AudioError(f"DiscriminatorB(n_fft={self.window_length}) needs more than {self.window_length // 2} "
                             f"samples, got {y.shape[-1]}")
        fmap, outs = [], []
        for band, stack in zip(self.spectrogram(y), self.band_convs):
            for i, conv in enumerate(stack):
                band = F.leaky_relu(conv(band), self.lrelu_slope)
                if i > 0:
                    fmap.append(band)
            outs.append(band)
        x = self.conv_post(torch.cat(outs, dim=-1))
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class MultiBandDiscriminator(nn.Module):
    """MBD: one :class:`DiscriminatorB` per FFT size (HiFi-SR: 2048, 1024, 512).

    ``forward(y (B, T) | (B, 1, T)) -> (logits: list of (B, N_k), fmaps: list of lists)``.
    """

    def __init__(self, fft_sizes: Sequence[int] = (2048, 1024, 512), channels: int = 32):
        super().__init__()
        if not fft_sizes:
            raise ConfigError("MultiBandDiscriminator needs at least one FFT size")
        self.fft_sizes = tuple(int(n) for n in fft_sizes)
        self.discriminators = nn.ModuleList(DiscriminatorB(n, channels) for n in self.fft_sizes)

    def forward(self, y: Tensor) -> tuple[list[Tensor], list[list[Tensor]]]:
        return run_discriminators(self.discriminators, y)
