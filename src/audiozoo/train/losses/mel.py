"""Mel-spectrogram losses: HiFi-GAN's log-mel L1 and DAC's multi-scale mel L1.

* :func:`mel_l1`: L1 between the log-mels of a generated and a real waveform, computed by a given front end
  (HiFi-GAN, Kong et al. 2020, Sec. 2.3: the model's own mel; weight 45 in ``jik876/hifi-gan`` ``train.py``).
* :func:`multi_scale_mel_loss`: DAC's ``MelSpectrogramLoss`` (Kumar et al. 2023, arXiv:2306.06546) / BigVGAN-v2's
  multi-scale mel loss, summed over seven window sizes (HiFi-SR weighs it 7).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ...dsp.mel import mel_filterbank
from ...dsp.stft import stft
from ...errors import ConfigError

__all__ = ["DAC_MEL_BINS", "DAC_MEL_WINDOWS", "mel_l1", "multi_scale_mel_loss"]

# DAC (Kumar et al. 2023) MelSpectrogramLoss / BigVGAN-v2 MultiScaleMelSpectrogramLoss: window (= n_fft) and
# mel bands per scale, hop = window / 4.
DAC_MEL_WINDOWS: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048)
DAC_MEL_BINS: tuple[int, ...] = (5, 10, 20, 40, 80, 160, 320)

_FB_CACHE: dict[tuple, Tensor] = {}


def _filterbank(sr: int, n_fft: int, n_mels: int, device: torch.device) -> Tensor:
    key = (sr, n_fft, n_mels, str(device))
    if key not in _FB_CACHE:
        _FB_CACHE[key] = mel_filterbank(sr, n_fft, n_mels, 0.0, None).to(device)
    return _FB_CACHE[key]


def mel_l1(fake: Tensor, real: Tensor, mel_fn: Callable[[Tensor], Tensor]) -> Tensor:
    """Mean ``|mel_fn(fake) - mel_fn(real)|`` over the frames both have (``mel_fn``: ``(B, T) -> (B, n_mels, L)``,
    e.g. a vocoder's log-mel front end)."""
    a, b = mel_fn(fake), mel_fn(real)
    n = min(a.shape[-1], b.shape[-1])
    return F.l1_loss(a[..., :n], b[..., :n])


def multi_scale_mel_loss(fake: Tensor, real: Tensor, sample_rate: int, windows: Sequence[int] = DAC_MEL_WINDOWS,
                         n_mels: Sequence[int] = DAC_MEL_BINS) -> Tensor:
    """Sum over scales of the L1 between ``log10(max(mel, 1e-5))`` of two waveforms ``(B, T)``.

    Per scale: centred Hann STFT (n_fft = window, hop = window / 4, reflect padding), magnitude
    ``sqrt(|X|^2 + 1e-9)`` (finite gradient at 0), Slaney mel 0 - sr/2. Summed (not averaged) as DAC and
    BigVGAN-v2 do, so the weight (HiFi-SR 7) applies to the sum.
    """
    if fake.shape != real.shape or fake.ndim != 2:
        raise ConfigError(f"multi_scale_mel_loss needs two (B, T) waveforms of one shape, got {tuple(fake.shape)} "
                          f"and {tuple(real.shape)}")
    if len(windows) != len(n_mels) or not windows:
        raise ConfigError(f"need one mel size per window, got windows {tuple(windows)} and n_mels {tuple(n_mels)}")
    total = fake.new_zeros((), dtype=torch.float32)
    both = torch.cat([fake.float(), real.float()], dim=0)
    for win, nm in zip(windows, n_mels):
        spec = stft(both, int(win), int(win) // 4, int(win), "hann", center=True, pad_mode="reflect")
        mag = torch.sqrt(spec.real.square() + spec.imag.square() + 1e-9)
        mel = torch.log10(torch.clamp(_filterbank(sample_rate, int(win), int(nm), both.device) @ mag, min=1e-5))
        m_fake, m_real = mel.chunk(2, dim=0)
        total = total + F.l1_loss(m_fake, m_real)
    return total
