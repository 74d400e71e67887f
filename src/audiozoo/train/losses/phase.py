"""Amplitude, phase and STFT-spectrum losses of APNet (Ai & Ling, IEEE/ACM TASLP 2023, arXiv:2305.07952).

Official code: YangAi520/APNet, ``models.py`` (``amplitude_loss``, ``phase_loss``, ``STFT_consistency_loss``)
and ``train.py`` (the weighted sum); re-implemented here, not copied. All spectra are ``(B, F, L)`` with
``F = n_fft // 2 + 1`` bins and ``L`` frames; phases are in radians.

Generator loss, as coded in ``train.py`` (the GAN and feature-matching terms come from
:mod:`audiozoo.train.losses` and HiFi-GAN's MPD + MSD)::

    L_G = 45 L_A + 100 L_P + 20 L_S + (L_GAN + L_FM + 45 L_Mel)
    L_A = MSE(log|S|, log|S^|)                          amplitude loss
    L_P = L_IP + L_GD + L_PTD                           anti-wrapping phase losses
    L_S = L_C + 2.25 (L_R + L_I)                        STFT spectrum losses
    L_Mel = L1(mel(y), mel(y^))                         time-domain term (mel of the generated waveform)

Where the official code differs from the paper's text:

- Anti-wrapping function. The paper (following Ai & Ling, ICASSP 2023) defines
  ``f_AW(x) = |x - 2 pi round(x / 2 pi)|``, the distance to the nearest multiple of 2 pi (in [0, pi]), and
  the phase losses as means of ``f_AW`` of the differences. The official ``phase_loss`` instead uses
  ``mean(-cos(x))`` (in [-1, 1], minimum -1 at ``x = 2 pi k``), also 2 pi-periodic and even but smooth
  at ``x = pi``. :func:`phase_losses` takes ``kind="cos"`` (the code's, default, used to train the
  released models) or ``kind="aw"`` (the paper's). The two are not numerically comparable: the code's
  loss is -1 at perfect phase, the paper's 0.
- Group delay and phase time difference. The paper defines them as differences between adjacent bins /
  frames. The code builds them with a matrix ``M = triu(1, k=1) - triu(1, k=2) - I``, i.e.
  ``D[j] = phi[j - 1] - phi[j]`` for ``j >= 1`` and ``D[0] = -phi[0]``: the sign is flipped (irrelevant
  for an even loss) and the first bin/frame keeps ``-phi[0]`` instead of being dropped, so ``L_GD`` and
  ``L_PTD`` each also contain the instantaneous-phase error of bin 0 / frame 0. We reproduce that with a
  zero-padded difference (same values, no ``F x F`` / ``L x L`` matrix).
- STFT consistency ``L_C``: mean over bins and frames of the squared complex distance between the
  predicted spectrum ``S^`` and the STFT of its own iSTFT, ``STFT(iSTFT(S^))``.
- ``L_R``, ``L_I``: L1 (``F.l1_loss``) between the predicted and the natural real / imaginary parts.
- Targets (official ``dataset.amp_pha_specturm``): centred ``torch.stft`` with reflect padding,
  ``log(|X| + 1e-5)`` (an additive floor, where the mel uses a clamp), phase ``atan2(imag, real)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ...dsp.stft import get_window, stft
from ...errors import AudioError, ConfigError

__all__ = [
    "APNET_WEIGHTS", "APNetLossWeights", "amplitude_loss", "amplitude_phase_spectrum", "anti_wrapping",
    "apnet_reconstruction_losses", "group_delay", "mel_l1_loss", "phase_losses", "phase_time_difference",
    "real_imag_losses", "stft_consistency_loss",
]

PHASE_LOSS_KINDS = ("cos", "aw")


def anti_wrapping(x: Tensor) -> Tensor:
    """Paper's anti-wrapping function ``f_AW(x) = |x - 2 pi round(x / 2 pi)|``: 2 pi-periodic, in [0, pi]."""
    return torch.abs(x - 2 * math.pi * torch.round(x / (2 * math.pi)))


def _check_pair(a: Tensor, b: Tensor, what: str) -> None:
    if a.shape != b.shape:
        raise AudioError(f"{what}: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")


def _backward_diff(phase: Tensor, dim: int) -> Tensor:
    """Official ``phase @ (triu(1,1) - triu(1,2) - I)``: ``D[j] = phi[j-1] - phi[j]``, ``D[0] = -phi[0]``."""
    prev = torch.cat([torch.zeros_like(phase.narrow(dim, 0, 1)), phase.narrow(dim, 0, phase.shape[dim] - 1)], dim)
    return prev - phase


def group_delay(phase: Tensor) -> Tensor:
    """Negative group delay (difference along frequency) of ``phase (B, F, L)`` as the official code builds it."""
    return _backward_diff(phase, -2)


def phase_time_difference(phase: Tensor) -> Tensor:
    """Phase time difference (instantaneous angular frequency up to 1/hop) along frames of ``(B, F, L)``."""
    return _backward_diff(phase, -1)


def phase_losses(phase: Tensor, phase_hat: Tensor, kind: str = "cos") -> tuple[Tensor, Tensor, Tensor]:
    """Instantaneous-phase, group-delay and phase-time-difference losses ``(L_IP, L_GD, L_PTD)``.

    Args:
        phase, phase_hat: natural and predicted phase ``(B, F, L)`` (any 2 pi offset allowed).
        kind: ``"cos"``, the official code's ``mean(-cos(delta))`` (in [-1, 1]); or ``"aw"``, the paper's
            ``mean(f_AW(delta))`` (in [0, pi]).
    """
    _check_pair(phase, phase_hat, "phase_losses")
    if kind not in PHASE_LOSS_KINDS:
        raise ConfigError(f"phase loss kind must be one of {PHASE_LOSS_KINDS}, got {kind!r}")
    f = (lambda d: torch.mean(-torch.cos(d))) if kind == "cos" else (lambda d: torch.mean(anti_wrapping(d)))
    ip = f(phase - phase_hat)
    gd = f(group_delay(phase) - group_delay(phase_hat))
    ptd = f(phase_time_difference(phase) - phase_time_difference(phase_hat))
    return ip, gd, ptd


def amplitude_loss(log_amp: Tensor, log_amp_hat: Tensor) -> Tensor:
    """``L_A``: mean squared error between log-amplitude spectra ``(B, F, L)``."""
    _check_pair(log_amp, log_amp_hat, "amplitude_loss")
    return F.mse_loss(log_amp_hat, log_amp)


def stft_consistency_loss(real_hat: Tensor, imag_hat: Tensor, real_re: Tensor, imag_re: Tensor) -> Tensor:
    """``L_C``: mean over items of mean over bins/frames of ``|S^ - STFT(iSTFT(S^))|^2``.

    ``real_hat``/``imag_hat``: the predicted spectrum; ``real_re``/``imag_re``: the STFT of the waveform
    synthesised from it (:func:`amplitude_phase_spectrum` of the generator output). Zero iff consistent.
    """
    _check_pair(real_hat, real_re, "stft_consistency_loss")
    _check_pair(imag_hat, imag_re, "stft_consistency_loss")
    return torch.mean(torch.mean((real_hat - real_re) ** 2 + (imag_hat - imag_re) ** 2, dim=(-2, -1)))


def real_imag_losses(real: Tensor, imag: Tensor, real_hat: Tensor, imag_hat: Tensor) -> tuple[Tensor, Tensor]:
    """``(L_R, L_I)``: L1 distances between natural and predicted real / imaginary parts ``(B, F, L)``."""
    _check_pair(real, real_hat, "real_imag_losses")
    _check_pair(imag, imag_hat, "real_imag_losses")
    return F.l1_loss(real_hat, real), F.l1_loss(imag_hat, imag)


def mel_l1_loss(mel: Tensor, mel_hat: Tensor) -> Tensor:
    """``L_Mel``: L1 between the input log-mel and the log-mel of the generated waveform ``(B, n_mels, L)``."""
    _check_pair(mel, mel_hat, "mel_l1_loss")
    return F.l1_loss(mel_hat, mel)


def amplitude_phase_spectrum(wav: Tensor, n_fft: int, hop_length: int, win_length: int,
                             pad_mode: str = "reflect") -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Official ``amp_pha_specturm``: ``(log(|X| + 1e-5), atan2(imag, real), real, imag)``, each ``(B, F, L)``.

    ``wav (B, T)``; centred frames (``L = T // hop + 1``), Hann window of ``win_length`` padded to ``n_fft``,
    reflect padding as ``torch.stft``'s default.
    """
    if wav.ndim != 2:
        raise AudioError(f"amplitude_phase_spectrum expects a waveform (B, T), got shape {tuple(wav.shape)}")
    window = get_window("hann", win_length, device=wav.device, dtype=wav.dtype)
    spec = stft(wav, n_fft, hop_length, win_length, window, center=True, pad_mode=pad_mode)
    real, imag = spec.real, spec.imag
    # sqrt of the sum of squares (not .abs()) as the official code; + 1e-5 inside the log, not a clamp
    log_amp = torch.log(torch.sqrt(real.square() + imag.square()) + 1e-5)
    return log_amp, torch.atan2(imag, real), real, imag


@dataclass(frozen=True)
class APNetLossWeights:
    """Weights of the official ``train.py`` (see the module docstring)."""

    amplitude: float = 45.0  # lambda_A
    phase: float = 100.0  # lambda_P
    stft: float = 20.0  # lambda_S
    real_imag: float = 2.25  # inside L_S: L_C + 2.25 (L_R + L_I)
    mel: float = 45.0  # inside L_W: L_GAN + L_FM + 45 L_Mel


APNET_WEIGHTS = APNetLossWeights()


def apnet_reconstruction_losses(
    log_amp_hat: Tensor, phase_hat: Tensor, real_hat: Tensor, imag_hat: Tensor, wav_hat: Tensor,
    wav: Tensor, mel: Tensor, mel_fn: Callable[[Tensor], Tensor], n_fft: int, hop_length: int, win_length: int,
    phase_kind: str = "cos", weights: APNetLossWeights = APNET_WEIGHTS,
) -> dict[str, Tensor]:
    """Every non-adversarial APNet generator loss term and their weighted sum ``"total"``.

    Args:
        log_amp_hat, phase_hat, real_hat, imag_hat: generator spectra ``(B, F, L)``
            (:class:`audiozoo.models.vocoder.apnet.APNetOutput`).
        wav_hat: generated waveform ``(B, (L - 1) * hop)``; wav: natural waveform of the same length.
        mel: input log-mel ``(B, n_mels, L)``; mel_fn: waveform ``(B, T)`` -> log-mel (the model's front-end).
        phase_kind: ``"cos"`` (official code) or ``"aw"`` (paper), see :func:`phase_losses`.

    Returns a dict with ``A, IP, GD, PTD, P, C, R, I, S, Mel`` and ``total = wA A + wP P + wS S + wMel Mel``
    (add the adversarial and feature-matching terms to ``total`` for the full ``L_G``). Batches are assumed
    unpadded (the official training uses fixed-length segments).
    """
    _check_pair(wav, wav_hat, "apnet_reconstruction_losses (wav vs wav_hat)")
    log_amp, phase, real, imag = amplitude_phase_spectrum(wav, n_fft, hop_length, win_length)
    _, _, real_re, imag_re = amplitude_phase_spectrum(wav_hat, n_fft, hop_length, win_length)
    out: dict[str, Tensor] = {"A": amplitude_loss(log_amp, log_amp_hat)}
    out["IP"], out["GD"], out["PTD"] = phase_losses(phase, phase_hat, phase_kind)
    out["P"] = out["IP"] + out["GD"] + out["PTD"]
    out["C"] = stft_consistency_loss(real_hat, imag_hat, real_re, imag_re)
    out["R"], out["I"] = real_imag_losses(real, imag, real_hat, imag_hat)
    out["S"] = out["C"] + weights.real_imag * (out["R"] + out["I"])
    out["Mel"] = mel_l1_loss(mel, mel_fn(wav_hat))
    out["total"] = (weights.amplitude * out["A"] + weights.phase * out["P"] + weights.stft * out["S"]
                    + weights.mel * out["Mel"])
    return out
