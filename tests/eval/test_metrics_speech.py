"""Speech metrics: MCD (+ DTW) hand cases, MR-STFT distance, F0 RMSE / V-UV, PESQ and STOI on real speech."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from audiozoo.errors import AudioError, ConfigError
from audiozoo.eval import (
    MCD_CONSTANT,
    dtw_path,
    f0_rmse,
    mel_cepstral_distortion,
    multi_resolution_stft_distance,
    pesq,
    stoi,
    vuv_error_rate,
)

K = 10 * math.sqrt(2) / math.log(10)  # the MCD constant, written out independently of the module


# ------------------------------------------------------------------------------------------------ MCD
def test_mcd_constant():
    assert MCD_CONSTANT == pytest.approx(K, rel=1e-15)
    assert MCD_CONSTANT == pytest.approx(6.1418, abs=1e-4)  # the value quoted in the literature


def test_mcd_zero_for_identical_and_hand_value():
    rng = np.random.default_rng(0)
    mc = rng.standard_normal((25, 40))  # (D, L)
    assert float(mel_cepstral_distortion(mc, mc)) == 0.0
    assert float(mel_cepstral_distortion(mc, mc, dtw=True)) == 0.0
    # Hand case, 3 coefficients x 2 frames: frame 0 differs by (c1, c2) = (3, 4) -> distance 5, frame 1
    # by nothing; c0 differs by 7 in both frames but is excluded. Mean distance 2.5 -> MCD = 2.5 K.
    ref = np.zeros((3, 2))
    est = np.array([[7.0, 7.0], [3.0, 0.0], [4.0, 0.0]])
    assert float(mel_cepstral_distortion(est, ref)) == pytest.approx(2.5 * K, rel=1e-12)  # float64 exact-ish
    # Including c0: frames differ by sqrt(49 + 25) and 7.
    assert float(mel_cepstral_distortion(est, ref, exclude_c0=False)) == pytest.approx(
        K * (math.sqrt(74) + 7) / 2, rel=1e-12
    )
    # Batched input gives one value per item.
    out = mel_cepstral_distortion(np.stack([est, ref]), np.stack([ref, ref]))
    assert out.shape == (2,) and float(out[0]) == pytest.approx(2.5 * K, rel=1e-12) and float(out[1]) == 0.0


def test_mcd_dtw_aligns_time_stretched_copy():
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((13, 30))
    stretched = np.repeat(ref, 2, axis=1)  # every frame twice: DTW maps each pair to its source frame
    assert float(mel_cepstral_distortion(stretched, ref, dtw=True)) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(AudioError, match="dtw=True"):
        mel_cepstral_distortion(stretched, ref)
    noisy = stretched + 0.1 * rng.standard_normal(stretched.shape)
    plain_on_copy = float(mel_cepstral_distortion(noisy, stretched))
    # DTW may only lower the cost of the trivial alignment it could have chosen
    assert 0 < float(mel_cepstral_distortion(noisy, ref, dtw=True)) <= plain_on_copy + 1e-9


@pytest.mark.parity
def test_dtw_matches_librosa():
    import librosa

    rng = np.random.default_rng(2)
    cost = np.abs(rng.standard_normal((60, 45)))
    path, total = dtw_path(cost)
    acc, _ = librosa.sequence.dtw(C=cost)  # default steps (1,1), (0,1), (1,0) with unit weights
    assert total == pytest.approx(acc[-1, -1], rel=1e-12)  # same recurrence in float64
    assert cost[path[:, 0], path[:, 1]].sum() == pytest.approx(total, rel=1e-12)
    assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (59, 44)
    assert np.all(np.diff(path, axis=0) >= 0) and np.all(np.diff(path, axis=0).sum(1) >= 1)


# -------------------------------------------------------------------------------------------- MR-STFT
def test_mrstft_zero_for_identical_and_monotone_in_noise(speechlike):
    x = torch.from_numpy(speechlike)[None]  # (1, T)
    same = multi_resolution_stft_distance(x, x)
    for value in same.values():
        assert float(value) == 0.0
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(x.shape, generator=g)
    totals = [float(multi_resolution_stft_distance(x + a * noise, x)["total"]) for a in (1e-3, 1e-2, 1e-1)]
    assert totals[0] < totals[1] < totals[2]
    scs = [float(multi_resolution_stft_distance(x + a * noise, x)["spectral_convergence"]) for a in (1e-3, 1e-1)]
    assert scs[0] < scs[1]


def test_mrstft_batched_differentiable_and_errors():
    g = torch.Generator().manual_seed(1)
    ref = torch.randn(2, 3, 4000, generator=g)
    est = (ref + 0.1 * torch.randn(2, 3, 4000, generator=g)).requires_grad_(True)
    out = multi_resolution_stft_distance(est, ref)
    assert out["total"].shape == (2, 3)
    torch.testing.assert_close(out["total"], out["spectral_convergence"] + out["log_magnitude"])
    out["total"].sum().backward()
    assert torch.isfinite(est.grad).all() and est.grad.abs().sum() > 0
    with pytest.raises(AudioError, match="samples"):
        multi_resolution_stft_distance(torch.randn(500), torch.randn(500))
    with pytest.raises(ConfigError, match="window"):
        multi_resolution_stft_distance(ref, ref, window="nope")


# ------------------------------------------------------------------------------------------------- F0
def test_f0_rmse_and_vuv_hand_cases():
    ref = np.array([0, 100, 110, 120, 0, 0, 130.0])
    est = np.array([0, 105, 0, 120, 90, 0, np.nan])  # NaN = unvoiced (pyin convention)
    # Voiced in both: frames 1 (105 vs 100) and 3 (120 vs 120).
    assert float(f0_rmse(est, ref)) == pytest.approx(math.sqrt(25 / 2), rel=1e-12)
    cents = 1200 * math.log2(105 / 100)
    assert float(f0_rmse(est, ref, unit="cents")) == pytest.approx(math.sqrt(cents**2 / 2), rel=1e-12)
    # V/UV disagree at frames 2, 4 and 6 of 7.
    assert float(vuv_error_rate(est, ref)) == pytest.approx(3 / 7, rel=1e-12)
    # Batched, and an item with no common voiced frame is NaN.
    out = f0_rmse(np.stack([est, np.zeros(7)]), np.stack([ref, ref]))
    assert out.shape == (2,) and math.isnan(float(out[1]))
    with pytest.raises(AudioError, match="different shapes"):
        f0_rmse(est[:5], ref)
    with pytest.raises(ConfigError, match="unit"):
        f0_rmse(est, ref, unit="semitones")


# ------------------------------------------------------------------------------------------ PESQ/STOI
def _speech(shared_data) -> tuple[np.ndarray, int]:
    import soundfile as sf

    path = shared_data / "speech_sources" / "cmu_arctic" / "cmu_arctic_us_aew_a0001.wav"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    wav, sr = sf.read(path, dtype="float64")
    assert sr == 16000
    return wav, sr


def _add_noise(wav: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(wav.shape)
    return wav + noise * np.sqrt(np.mean(wav**2) / np.mean(noise**2) / 10 ** (snr_db / 10))


@pytest.mark.shared_data
def test_pesq_on_real_speech(shared_data):
    wav, sr = _speech(shared_data)
    clean = float(pesq(wav, wav, sr))
    assert clean == pytest.approx(4.64, abs=0.01)  # P.862.2 ceiling is 4.644 for identical signals
    noisy20, noisy5 = float(pesq(_add_noise(wav, 20, 0), wav, sr)), float(pesq(_add_noise(wav, 5, 0), wav, sr))
    assert 1.0 <= noisy5 < noisy20 < clean - 0.5
    # Batched input, and a non-native rate is resampled to 16 kHz: 48 kHz copies score like the original
    # (soxr HQ resampling of both sides moved the score by 0.047 here; 0.1 bounds that with margin).
    import soxr

    batch = np.stack([_add_noise(wav, 20, 0), wav])
    out = pesq(batch, np.stack([wav, wav]), sr)
    assert out.shape == (2,) and float(out[0]) == pytest.approx(noisy20, abs=1e-6)
    up_ref, up_est = soxr.resample(wav, sr, 48000), soxr.resample(_add_noise(wav, 20, 0), sr, 48000)
    assert float(pesq(up_est, up_ref, 48000)) == pytest.approx(noisy20, abs=0.1)
    nb = float(pesq(wav, wav, sr, mode="nb"))
    assert nb == pytest.approx(4.55, abs=0.02)  # P.862 narrow-band ceiling ~4.55
    with pytest.raises(AudioError):
        pesq(np.zeros(16000), np.zeros(16000), sr)


@pytest.mark.shared_data
def test_stoi_on_real_speech(shared_data):
    wav, sr = _speech(shared_data)
    assert float(stoi(wav, wav, sr)) == pytest.approx(1.0, abs=1e-6)  # identical envelopes: correlation 1
    assert float(stoi(wav, wav, sr, extended=True)) == pytest.approx(1.0, abs=1e-6)
    s0, s20 = float(stoi(_add_noise(wav, 0, 1), wav, sr)), float(stoi(_add_noise(wav, 20, 1), wav, sr))
    assert 0.3 < s0 < s20 < 1.0
    e0 = float(stoi(_add_noise(wav, 0, 1), wav, sr, extended=True))
    assert e0 < float(stoi(_add_noise(wav, 20, 1), wav, sr, extended=True))
    with pytest.raises(AudioError, match="too little"):
        stoi(wav[:3000], wav[:3000], sr)
