"""Log-spectral distance against a hand computation (numpy FFT of explicit frames), and its band selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiozoo.errors import AudioError, ConfigError
from audiozoo.eval.speech import high_band_log_spectral_distance, log_spectral_distance


def _hand_lsd(est: np.ndarray, ref: np.ndarray, n_fft: int, hop: int, sr: int, lo: float = 0.0,
              hi: float | None = None, eps: float = 1e-8) -> float:
    """Centred frames (reflect padding), periodic Hann, |rfft|^2 floored at eps, log10, RMS over the kept bins,
    mean over frames -- written out frame by frame."""
    hi = sr / 2 if hi is None else hi
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
    keep = (freqs >= lo) & (freqs <= hi)
    pads = [np.pad(x, n_fft // 2, mode="reflect") for x in (est, ref)]
    n_frames = 1 + len(est) // hop
    vals = []
    for i in range(n_frames):
        pe, pr = (np.abs(np.fft.rfft(p[i * hop:i * hop + n_fft] * win)) ** 2 for p in pads)
        d = np.log10(np.maximum(pr, eps)) - np.log10(np.maximum(pe, eps))
        vals.append(np.sqrt(np.mean(d[keep] ** 2)))
    return float(np.mean(vals))


def test_matches_hand_computation() -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(4000) * 0.1
    est = ref + 0.05 * rng.standard_normal(4000)
    got = float(log_spectral_distance(est, ref, 16000, n_fft=512))
    want = _hand_lsd(est, ref, 512, 128, 16000)
    assert got == pytest.approx(want, rel=1e-9)  # float64 both ways: only summation order differs
    got_hi = float(high_band_log_spectral_distance(est, ref, 16000, 4000.0, n_fft=512))
    assert got_hi == pytest.approx(_hand_lsd(est, ref, 512, 128, 16000, lo=4000.0), rel=1e-9)
    assert float(log_spectral_distance(ref, ref, 16000)) == 0.0


def test_sinc_band_limited_signal_is_far_in_the_high_band_only() -> None:
    # white noise low-passed at 4 kHz: the low band is identical, the high band is ~eps -> a large distance
    rng = np.random.default_rng(1)
    ref = torch.from_numpy(rng.standard_normal(16000) * 0.1)
    spec = torch.fft.rfft(ref)
    spec[torch.fft.rfftfreq(16000, 1 / 16000) > 4000] = 0
    low = torch.fft.irfft(spec, n=16000)
    lo_band = float(log_spectral_distance(low, ref, 16000, band=(0.0, 3500.0)))
    hi_band = float(high_band_log_spectral_distance(low, ref, 16000, 4500.0))
    assert lo_band < 0.3 < 3.0 < hi_band  # measured 0.0025 and 8.03


def test_batch_shape_and_errors() -> None:
    x = torch.randn(2, 3, 3000, dtype=torch.float64)
    assert log_spectral_distance(x, x * 0.5, 16000, n_fft=256).shape == (2, 3)
    with pytest.raises(AudioError):
        log_spectral_distance(torch.randn(100), torch.randn(100), 16000)
    with pytest.raises(AudioError):
        log_spectral_distance(torch.randn(3000), torch.randn(2999), 16000)
    with pytest.raises(ConfigError):
        high_band_log_spectral_distance(torch.randn(3000), torch.randn(3000), 16000, 9000.0)
