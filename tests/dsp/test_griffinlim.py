"""Griffin-Lim (audiozoo.dsp.griffinlim) against librosa.griffinlim, and the mel pseudo-inverse."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiozoo.dsp.griffinlim import griffin_lim, mel_to_linear
from audiozoo.dsp.mel import mel_filterbank
from audiozoo.dsp.stft import stft
from audiozoo.errors import AudioError


def _chirp(sr: int = 16000, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    rng = np.random.default_rng(0)
    return (0.5 * np.sin(2 * np.pi * (200 * t + 800 * t**2)) + 0.05 * rng.standard_normal(t.size)).astype(np.float64)


@pytest.mark.parity
@pytest.mark.parametrize("momentum", [0.99, 0.0])
def test_griffin_lim_matches_librosa(momentum: float) -> None:
    import librosa
    x = _chirp()
    n_fft, hop, win = 512, 128, 400
    S = np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop, win_length=win, center=True))
    # zero-phase init (init=None) so both start from the same point; float64 so the comparison measures the
    # algorithm, not float32 rounding amplified by 32 iterations
    ref = librosa.griffinlim(S, n_iter=32, hop_length=hop, win_length=win, n_fft=n_fft, momentum=momentum,
                             init=None, length=x.size)
    ours = griffin_lim(torch.from_numpy(S), n_iter=32, n_fft=n_fft, hop_length=hop, win_length=win,
                       momentum=momentum, init=None, length=x.size).numpy()
    # measured max abs error ~1e-12 (float64); 1e-8 leaves room for FFT-library differences
    assert np.max(np.abs(ours - ref)) < 1e-8 * max(1.0, np.max(np.abs(ref)))


def test_griffin_lim_improves_consistency() -> None:
    """More iterations give a spectrogram closer to the target magnitude (the point of the algorithm)."""
    x = torch.from_numpy(_chirp()).float()
    S = stft(x, 512, 128, 512, center=True).abs()
    gen = torch.Generator().manual_seed(0)

    def err(n: int) -> float:
        y = griffin_lim(S, n_iter=n, hop_length=128, length=x.numel(), generator=torch.Generator().manual_seed(0))
        return float((stft(y, 512, 128, 512, center=True).abs() - S).norm() / S.norm())

    e0, e32 = err(0), err(32)
    assert e32 < 0.5 * e0  # random phase: ~0.6-0.8 spectral error; 32 iterations with momentum: < 0.2
    assert griffin_lim(S.unsqueeze(0).repeat(2, 1, 1), n_iter=2, hop_length=128, generator=gen).shape[0] == 2


def test_mel_to_linear_is_a_least_squares_inverse() -> None:
    fb = mel_filterbank(16000, 512, 40, dtype=torch.float64)
    spec = torch.rand(257, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    lin = mel_to_linear(fb @ spec, fb)
    assert lin.shape == spec.shape and bool((lin >= 0).all())
    # re-applying the filterbank gives back the mel up to the clipping of negative values: relative 5 %
    assert float((fb @ lin - fb @ spec).norm() / (fb @ spec).norm()) < 0.05


def test_griffin_lim_errors() -> None:
    with pytest.raises(AudioError):
        griffin_lim(-torch.ones(257, 4))
    with pytest.raises(AudioError):
        griffin_lim(torch.ones(100, 4), n_fft=512)
    with pytest.raises(AudioError):
        mel_to_linear(torch.ones(30, 4), torch.ones(40, 257))


def test_phase_initialisation_is_used() -> None:
    """Starting from the true phase, 0 iterations reconstruct the signal and 8 keep it (a consistent STFT is a
    fixed point); a random start is far off. A wrongly shaped phase is refused."""
    x = torch.from_numpy(_chirp())
    n_fft, hop, win = 512, 128, 512
    window = torch.hann_window(win, dtype=torch.float64)
    S = stft(x[None], n_fft, hop, win, window, center=True)
    for n_iter in (0, 8):
        y = griffin_lim(S.abs(), n_iter, n_fft, hop, win, length=x.numel(), init=torch.angle(S))[0]
        assert (y - x).abs().max() < 1e-9  # float64 round trip (measured ~1e-15)
    g = torch.Generator().manual_seed(0)
    z = griffin_lim(S.abs(), 0, n_fft, hop, win, length=x.numel(), generator=g)[0]
    assert (z - x).abs().max() > 0.1
    with pytest.raises(AudioError, match="initial phase"):
        griffin_lim(S.abs(), 1, n_fft, hop, win, init=torch.zeros(3))
