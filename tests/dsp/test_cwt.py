"""dsp.cwt: FastSpeech 2's Mexican-hat pitch spectrogram (= pycwt as NATSpeech calls it) and the approximate
inverse (Suni et al.'s weighted sum) that recovers a real speaker's normalised ln F0 contour."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from audiozoo.dsp import f0_world, interpolate_unvoiced, load_audio
from audiozoo.dsp.cwt import CWT_NUM_SCALES, cwt_scales, pitch_cwt, pitch_icwt
from audiozoo.errors import AudioError, ConfigError


def _contour(n: int = 300, seed: int = 0) -> torch.Tensor:
    """A normalised ln F0-like contour: declination + accents (~0.3 s) + micro-prosody, zero mean / unit std."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n, dtype=torch.float64)
    x = -t / n + 0.6 * torch.sin(2 * math.pi * t / 27) + 0.3 * torch.sin(2 * math.pi * t / 9 + 1.0)
    x = x + 0.05 * torch.randn(n, generator=g, dtype=torch.float64).cumsum(0) / 4
    return (x - x.mean()) / x.std(unbiased=False)


def test_scales_are_natspeech_constants() -> None:
    # pycwt.cwt(dt=0.005, dj=1, s0=2 dt, J=9): 10 dyadic scales of 2 .. 1024 frames
    assert cwt_scales().tolist() == [2.0 * 2 ** j for j in range(10)] and CWT_NUM_SCALES == 10
    with pytest.raises(ConfigError):
        cwt_scales(0)


@pytest.mark.parity
@pytest.mark.parametrize("n", [3, 64, 300, 517])  # pycwt gives NaN for 1-2 frames
def test_cwt_matches_pycwt(n: int) -> None:
    pycwt = pytest.importorskip("pycwt")  # parity extra (test-only reference)
    z = _contour(n, seed=n)
    ref, sj, *_ = pycwt.cwt(z.numpy(), 0.005, 1, 0.01, 9, pycwt.MexicanHat())
    assert np.allclose(sj / 0.005, cwt_scales().numpy())
    # measured: max |diff| 7.1e-15 on 6 real ln F0 contours (float64)
    np.testing.assert_allclose(pitch_cwt(z).numpy(), np.real(ref).T, atol=1e-10, rtol=0)


def test_batched_shapes_and_dtypes() -> None:
    z = torch.stack([_contour(120, 1), _contour(120, 2)]).float()
    w = pitch_cwt(z)
    assert w.shape == (2, 120, 10) and w.dtype == torch.float32
    torch.testing.assert_close(w[1], pitch_cwt(z[1]))
    rec = pitch_icwt(w, torch.tensor([120, 80]))
    assert rec.shape == (2, 120) and (rec[1, 80:] == 0).all()
    # each row is standardised over its own valid frames
    assert abs(float(rec[1, :80].mean())) < 1e-5 and abs(float(rec[1, :80].std(unbiased=False)) - 1) < 1e-3
    assert pitch_cwt(torch.ones(1)).shape == (1, 10)  # one frame: no padding needed
    with pytest.raises(AudioError):
        pitch_cwt(torch.zeros(3, dtype=torch.long))
    with pytest.raises(AudioError):
        pitch_icwt(w, torch.tensor([121, 3]))


def test_icwt_recovers_a_synthetic_contour() -> None:
    z = _contour(400)
    rec = pitch_icwt(pitch_cwt(z))
    rmse = float((rec - z).pow(2).mean().sqrt())
    # the recomposition is approximate (no exact inverse with 10 octave-spaced scales)
    assert rmse < 0.35, rmse
    assert float(torch.corrcoef(torch.stack([rec, z]))[0, 1]) > 0.95


def test_icwt_recovers_real_speech_contours(shared_data) -> None:
    files = sorted((shared_data / "speech_sources" / "cmu_arctic").glob("cmu_arctic_us_*.wav"))[:3]
    assert files
    errs = []
    for f in files:
        wav, _ = load_audio(f, sample_rate=22050)
        f0, voiced = f0_world(torch.as_tensor(wav).reshape(-1).float(), 22050, hop_length=256, f0_min=65.0,
                              f0_max=600.0, method="dio")
        lf0 = torch.log(interpolate_unvoiced(f0, voiced).double())
        z = (lf0 - lf0.mean()) / lf0.std(unbiased=False)
        errs.append(float((pitch_icwt(pitch_cwt(z)) - z).pow(2).mean().sqrt()))
    # measured (DIO F0, 6 CMU ARCTIC utterances): RMS error 0.10-0.15 normalised units, correlation 0.989-0.995
    assert max(errs) < 0.2, errs


def test_icwt_is_differentiable() -> None:
    w = pitch_cwt(_contour(50)).float()[None].requires_grad_(True)
    (pitch_icwt(w) * torch.arange(50.0)).sum().backward()  # a standardised output: a plain sum has no gradient
    assert w.grad is not None and w.grad.abs().sum() > 0
