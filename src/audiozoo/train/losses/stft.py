"""STFT-magnitude losses of waveforms: single and multi-resolution (Parallel WaveGAN) and RAVE's multi-scale
spectral distance.

* :func:`stft_loss` / :func:`multi_resolution_stft_loss`: Parallel WaveGAN's auxiliary loss (Yamamoto et al.
  2020, arXiv:1910.11480, Sec. 2.3, eqs. 4-6): per ``(n_fft, hop, win)`` resolution, spectral convergence
  ``||S| - |S^||_F / ||S||_F`` and the mean absolute difference of log magnitudes, each averaged over the
  resolutions (PWG adds the two; its three resolutions at 24 kHz are :data:`PWG_RESOLUTIONS`). HiFi-GAN users
  know it as the "MR-STFT loss" of MelGAN/PWG/HiFi-GAN comparisons.
* :func:`spectral_distance`: RAVE's ``AudioDistanceV1`` (Caillon & Esling 2021, arXiv:2111.05011, Sec. 3.1;
  acids-ircam/RAVE ``rave/core.py``): per scale ``n`` a relative squared error of magnitudes plus the L1 of
  ``log(|X| + eps)``, summed over scales.

Waveforms are ``(B, T)``; losses are scalar tensors (float32).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ...dsp.stft import get_window, stft
from ...errors import ConfigError, DataError

__all__ = ["PWG_RESOLUTIONS", "RAVE_V1_SCALES", "check_resolutions", "log_stft_magnitude_loss",
           "multi_resolution_stft_loss", "spectral_convergence", "spectral_distance", "stft_loss", "stft_magnitude"]

# (n_fft, hop, win) of Parallel WaveGAN (Yamamoto et al. 2020, Sec. 2.3)
PWG_RESOLUTIONS: tuple[tuple[int, int, int], ...] = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))
# STFT sizes of RAVE v1's multi-scale distance (rave/configs/v1.gin)
RAVE_V1_SCALES: tuple[int, ...] = (2048, 1024, 512, 256, 128)


def check_resolutions(resolutions: Sequence[Sequence[int]]) -> tuple[tuple[int, int, int], ...]:
    """Validated ``(n_fft, hop, win)`` triples (``win <= n_fft``, all positive) as ints; raises ConfigError."""
    out = []
    for r in resolutions:
        if len(r) != 3 or not all(int(v) > 0 for v in r) or int(r[2]) > int(r[0]):
            raise ConfigError(f"each STFT resolution is (n_fft, hop, win) with win <= n_fft, got {r}")
        out.append((int(r[0]), int(r[1]), int(r[2])))
    return tuple(out)


def stft_magnitude(wav: Tensor, n_fft: int, hop_length: int, win_length: int, floor: float = 1e-7) -> Tensor:
    """``sqrt(max(|X|^2, floor))`` of a centred, reflect-padded Hann STFT: ``(B, T) -> (B, n_fft // 2 + 1, L)``.

    The floor (PWG's ``stft``) keeps the square root's gradient and the log finite at silent bins.
    """
    window = get_window("hann", int(win_length), device=wav.device)
    s = stft(wav.float(), int(n_fft), int(hop_length), int(win_length), window, center=True, pad_mode="reflect")
    return torch.sqrt(torch.clamp(s.real.square() + s.imag.square(), min=floor))


def spectral_convergence(mag_hat: Tensor, mag: Tensor) -> Tensor:
    """``||mag - mag_hat||_F / ||mag||_F`` over the whole batch (PWG eq. 5)."""
    return torch.linalg.norm(mag - mag_hat) / torch.linalg.norm(mag).clamp(min=1e-7)


def log_stft_magnitude_loss(mag_hat: Tensor, mag: Tensor) -> Tensor:
    """Mean ``|log mag - log mag_hat|`` (PWG eq. 6; magnitudes already floored)."""
    return F.l1_loss(torch.log(mag_hat), torch.log(mag))


def _check_pair(fake: Tensor, real: Tensor, what: str) -> None:
    if fake.shape != real.shape or fake.ndim != 2:
        raise DataError(f"{what} needs two (B, T) waveforms of one shape, got {tuple(fake.shape)} and "
                        f"{tuple(real.shape)}")


def stft_loss(fake: Tensor, real: Tensor, n_fft: int, hop_length: int, win_length: int) -> tuple[Tensor, Tensor]:
    """One resolution of PWG's STFT loss of waveforms ``(B, T)``: ``(spectral convergence, log-magnitude L1)``."""
    _check_pair(fake, real, "stft_loss")
    m_hat = stft_magnitude(fake, n_fft, hop_length, win_length)
    m = stft_magnitude(real, n_fft, hop_length, win_length)
    return spectral_convergence(m_hat, m), log_stft_magnitude_loss(m_hat, m)


def multi_resolution_stft_loss(fake: Tensor, real: Tensor,
                               resolutions: Sequence[Sequence[int]] = PWG_RESOLUTIONS) -> tuple[Tensor, Tensor]:
    """Parallel WaveGAN's multi-resolution STFT loss of waveforms ``(B, T)``.

    Returns ``(spectral convergence, log-magnitude L1)``, each averaged over the resolutions (PWG adds them).
    """
    _check_pair(fake, real, "multi_resolution_stft_loss")
    if not resolutions:
        raise ConfigError("multi_resolution_stft_loss needs at least one (n_fft, hop, win) resolution")
    sc = lm = fake.new_zeros((), dtype=torch.float32)
    for n_fft, hop, win in resolutions:
        a, b = stft_loss(fake, real, n_fft, hop, win)
        sc, lm = sc + a, lm + b
    n = len(resolutions)
    return sc / n, lm / n


def spectral_distance(x: Tensor, y: Tensor, scales: Sequence[int] = RAVE_V1_SCALES,
                      log_epsilon: float = 1e-7) -> Tensor:
    """RAVE's multi-scale spectral distance (official ``AudioDistanceV1``) between target ``x`` and estimate ``y``.

    ``x``, ``y``: ``(B, T)`` or ``(B, C, T)`` (channels, e.g. PQMF bands, are folded into the batch). Per scale
    ``n`` (Hann window ``n``, hop ``n / 4``, centred, reflect padding): relative squared error of magnitudes
    ``mean((|X| - |Y|)^2) / mean(|X|^2)`` + ``mean|log(|X| + eps) - log(|Y| + eps)|``; summed over scales.
    Scales with ``n / 2 >= T`` are skipped (reflect padding needs more samples).
    """
    if x.shape != y.shape:
        raise DataError(f"spectral_distance needs two signals of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    x, y = x.float().reshape(-1, x.shape[-1]), y.float().reshape(-1, y.shape[-1])
    total = x.new_zeros(())
    used = 0
    for n in scales:
        n = int(n)
        if n // 2 >= x.shape[-1]:
            continue
        w = get_window("hann", n, device=x.device)
        mx = stft(x, n, n // 4, n, w, center=True, pad_mode="reflect").abs()
        my = stft(y, n, n // 4, n, w, center=True, pad_mode="reflect").abs()
        lin = (mx - my).square().mean() / mx.square().mean().clamp_min(1e-12)
        log = (torch.log(mx + log_epsilon) - torch.log(my + log_epsilon)).abs().mean()
        total = total + lin + log
        used += 1
    if not used:
        raise DataError(f"spectral_distance: signals of {x.shape[-1]} samples are too short for scales {tuple(scales)}")
    return total
