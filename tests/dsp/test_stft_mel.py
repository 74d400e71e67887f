"""audiozoo.dsp.stft / .mel against librosa (the reference users trust) and their own invariants."""

from __future__ import annotations

import warnings

import librosa
import numpy as np
import pytest
import scipy.fft
import scipy.signal
import torch

from audiozoo.dsp import (
    MFCC,
    InverseSpectrogram,
    LogMelSpectrogram,
    MelSpectrogram,
    Spectrogram,
    amplitude_to_db,
    db_to_power,
    dct_matrix,
    get_window,
    hz_to_mel,
    istft,
    load_audio,
    log_mel,
    mel_filterbank,
    mel_spectrogram,
    mel_to_hz,
    mfcc,
    power_to_db,
    stft,
    stft_lengths,
)
from audiozoo.errors import AudioError, ConfigError


def _noise(n: int = 6001, seed: int = 0, dtype=np.float64) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(dtype)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


# ---------------------------------------------------------------------------------------- windows


@pytest.mark.parity
@pytest.mark.parametrize("kind", ["hann", "hamming", "blackman"])
@pytest.mark.parametrize("periodic", [True, False])
@pytest.mark.parametrize("length", [1, 7, 400, 512])
def test_windows_match_scipy(kind, periodic, length):
    ref = scipy.signal.get_window(kind, length, fftbins=periodic)
    got = get_window(kind, length, periodic=periodic, dtype=torch.float64).numpy()
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-15)  # same float64 formula: rounding only


def test_povey_window_and_cache():
    # Kaldi's povey window is the symmetric Hann (numpy's hanning) raised to 0.85
    np.testing.assert_allclose(
        get_window("povey", 400, dtype=torch.float64).numpy(), np.hanning(400) ** 0.85, rtol=0, atol=1e-15
    )
    a, b = get_window("hann", 64), get_window("hanning", 64)
    assert a is b  # cached per (kind, length, periodic, device, dtype); aliases share an entry
    assert get_window("hann", 64, dtype=torch.float64).dtype == torch.float64
    with pytest.raises(ConfigError, match="unknown window"):
        get_window("kaiserr", 64)


# ---------------------------------------------------------------------------------------- stft / istft


STFT_CASES = [
    # n_fft, hop, win_length, center, pad_mode, window
    (512, 128, None, True, "constant", "hann"),
    (400, 160, 320, True, "reflect", "hann"),
    (256, 100, None, False, "constant", "hamming"),
    (1024, 256, 1000, True, "constant", "blackman"),
    (255, 64, 200, True, "constant", "hann"),  # odd n_fft
]


@pytest.mark.parity
@pytest.mark.parametrize("n_fft, hop, win_length, center, pad_mode, window", STFT_CASES)
def test_stft_matches_librosa(n_fft, hop, win_length, center, pad_mode, window):
    x = _noise()
    ref = librosa.stft(
        x, n_fft=n_fft, hop_length=hop, win_length=win_length, window=window, center=center, pad_mode=pad_mode
    )
    got = stft(torch.from_numpy(x), n_fft, hop, win_length, window, center, pad_mode)
    assert got.dtype == torch.complex128 and got.shape == ref.shape
    # float64 on both sides, different FFT libraries: measured max rel. error 4.7e-16
    assert _rel(got.numpy(), ref) < 1e-12
    got32 = stft(torch.from_numpy(x.astype(np.float32)), n_fft, hop, win_length, window, center, pad_mode)
    assert got32.dtype == torch.complex64
    # float32 vs librosa float32: measured 1.6e-7 of the peak; allow 1e-5 for other FFT backends
    ref32 = librosa.stft(
        x.astype(np.float32),
        n_fft=n_fft,
        hop_length=hop,
        win_length=win_length,
        window=window,
        center=center,
        pad_mode=pad_mode,
    )
    assert _rel(got32.numpy(), ref32) < 1e-5
    assert got.shape[-1] == stft_lengths(x.size, n_fft, hop, center)


@pytest.mark.parity
@pytest.mark.parametrize("n_fft, hop, win_length, center, pad_mode, window", STFT_CASES)
def test_istft_matches_librosa_and_inverts(n_fft, hop, win_length, center, pad_mode, window):
    x = _noise()
    spec = librosa.stft(
        x, n_fft=n_fft, hop_length=hop, win_length=win_length, window=window, center=center, pad_mode=pad_mode
    )
    length = x.size if center else None
    ref = librosa.istft(
        spec, n_fft=n_fft, hop_length=hop, win_length=win_length, window=window, center=center, length=length
    )
    got = istft(torch.from_numpy(spec), n_fft, hop, win_length, window, center, length=length).numpy()
    assert got.shape == ref.shape
    # float64, signal peak ~0.4: measured max abs error 3.6e-16. Non-centered edges divide by a
    # near-zero window envelope, which amplifies rounding (1.7e-12 seen at unit variance): allow 1e-10
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("n_fft, hop, win_length, center, pad_mode, window", [c for c in STFT_CASES if c[3]])
def test_istft_round_trip_float32(n_fft, hop, win_length, center, pad_mode, window):
    x = torch.from_numpy(_noise(dtype=np.float32) * 5)  # peak ~2: a loud signal
    spec = stft(x, n_fft, hop, win_length, window, center, pad_mode)
    y = istft(spec, n_fft, hop, win_length, window, center, length=x.numel())
    # float32 analysis + synthesis: measured max abs error 4.8e-7 (a few float32 ulps of the peak ~2)
    assert (y - x).abs().max() < 2e-6
    normalized = istft(
        stft(x, n_fft, hop, win_length, window, center, pad_mode, normalized=True),
        n_fft,
        hop,
        win_length,
        window,
        center,
        normalized=True,
        length=x.numel(),
    )
    assert (normalized - x).abs().max() < 2e-6  # same bound: the scaling is exact up to rounding


def test_stft_batched_equals_per_item_and_modules():
    x = torch.from_numpy(np.stack([_noise(seed=i, dtype=np.float32) for i in range(6)]).reshape(2, 3, -1))
    module = Spectrogram(n_fft=512, hop_length=128, power=None)
    batched = module(x)
    assert batched.shape == (2, 3, 257, stft_lengths(x.shape[-1], 512, 128))
    for i in range(2):
        for j in range(3):
            # same ops on a different batch layout; FFT backends may vectorise differently -> ~1 ulp
            torch.testing.assert_close(batched[i, j], stft(x[i, j], 512, 128), rtol=1e-6, atol=1e-6)
    inv = InverseSpectrogram(n_fft=512, hop_length=128)
    assert (inv(batched, length=x.shape[-1]) - x).abs().max() < 2e-6  # float32 round trip, as above
    power = Spectrogram(n_fft=512, hop_length=128, power=2.0)(x)
    torch.testing.assert_close(power, batched.abs().square(), rtol=1e-5, atol=1e-6)
    mag = Spectrogram(n_fft=512, hop_length=128, power=1.0).double()(x.double())
    assert mag.dtype == torch.float64
    torch.testing.assert_close(mag, batched.abs().double(), rtol=1e-5, atol=1e-6)  # float32 vs float64 path


def test_stft_gradients_are_finite_with_silence():
    x = torch.zeros(2, 4000, requires_grad=True)  # |X| = 0 everywhere: the worst case for abs/sqrt
    for power in (1.0, 2.0):
        stft(x, 256, 64, power=power).sum().backward()
        assert torch.isfinite(x.grad).all()
        x.grad = None


def test_stft_errors():
    x = torch.randn(1000)
    with pytest.raises(AudioError, match="too short to reflect"):
        stft(torch.randn(100), 512, 128, pad_mode="reflect")
    with pytest.raises(AudioError, match="shorter than n_fft"):
        stft(torch.randn(100), 512, 128, center=False)
    with pytest.raises(AudioError, match="real floating-point"):
        stft(torch.ones(1000, dtype=torch.int16), 256)
    with pytest.raises(AudioError, match="zero-length"):
        stft(torch.zeros(3, 0), 256)
    with pytest.raises(ConfigError, match="win_length"):
        stft(x, 256, 64, win_length=300)
    with pytest.raises(ConfigError, match="hop_length"):
        stft(x, 256, 0)
    with pytest.raises(ConfigError, match="pad_mode"):
        stft(x, 256, pad_mode="wrap")
    with pytest.raises(AudioError, match="frequency bins"):
        istft(stft(x, 256), n_fft=512)
    with pytest.raises(AudioError, match="complex"):
        istft(stft(x, 256, power=2))


# ---------------------------------------------------------------------------------------- mel


@pytest.mark.parity
@pytest.mark.parametrize("htk", [False, True])
@pytest.mark.parametrize("norm", ["slaney", None])
@pytest.mark.parametrize(
    "sr, n_fft, n_mels, fmin, fmax",
    [(22050, 2048, 128, 0.0, None), (16000, 400, 80, 20.0, 7600.0), (8000, 256, 40, 0.0, 4000.0)],
)
def test_mel_filterbank_matches_librosa(htk, norm, sr, n_fft, n_mels, fmin, fmax):
    ref = librosa.filters.mel(
        sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm, dtype=np.float64
    )
    got = mel_filterbank(sr, n_fft, n_mels, fmin, fmax, htk, norm, dtype=torch.float64).numpy()
    assert got.shape == (n_mels, n_fft // 2 + 1)
    # same float64 formula, torch vs numpy log/exp: measured max rel. error 3.2e-14
    assert _rel(got, ref) < 1e-12
    ref32 = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm)
    # librosa's float32 output rounds before its Slaney scaling, we after: 1 float32 ulp (measured 3.7e-9)
    np.testing.assert_allclose(
        mel_filterbank(sr, n_fft, n_mels, fmin, fmax, htk, norm).numpy(), ref32, rtol=1e-6, atol=1e-8
    )


def test_mel_filterbank_warns_on_empty_bands_and_rejects_bad_args():
    with pytest.warns(UserWarning, match="empty mel bands"):
        mel_filterbank(8000, 64, 80)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mel_filterbank(16000, 512, 40)  # a sane config must not warn
    with pytest.raises(ConfigError, match="f_min"):
        mel_filterbank(16000, 512, 40, f_min=9000.0, f_max=8000.0)
    with pytest.raises(ConfigError, match="norm"):
        mel_filterbank(16000, 512, 40, norm="l2")


@pytest.mark.parity
@pytest.mark.parametrize("htk", [False, True])
def test_hz_mel_conversions_match_librosa(htk):
    hz = np.array([0.0, 50.0, 440.0, 999.9, 1000.0, 1000.1, 4000.0, 11025.0])
    mels = hz_to_mel(torch.from_numpy(hz), htk=htk)
    np.testing.assert_allclose(mels.numpy(), librosa.hz_to_mel(hz, htk=htk), rtol=1e-14)  # float64 rounding
    np.testing.assert_allclose(mel_to_hz(mels, htk=htk).numpy(), hz, rtol=1e-12, atol=1e-9)  # inverse
    assert isinstance(hz_to_mel(440.0, htk=htk), float)
    assert hz_to_mel(440.0, htk=htk) == pytest.approx(float(librosa.hz_to_mel(440.0, htk=htk)), rel=1e-14)


@pytest.mark.parity
def test_mel_spectrogram_and_log_mel_on_real_music(shared_data):
    wav, sr = load_audio(shared_data / "librosa" / "sorohanro_-_solo-trumpet-06.ogg", duration=2.0, dtype=torch.float64)
    y = wav.numpy()
    ref = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=1024, hop_length=256, n_mels=96, fmax=8000.0)
    module = MelSpectrogram(sr, n_fft=1024, hop_length=256, n_mels=96, f_max=8000.0).double()
    got = module(wav).numpy()
    assert got.dtype == np.float64 and got.shape == ref.shape
    # librosa applies a float32 mel basis even to float64 input; ours is exact float64 after
    # .double(): measured max rel. error 5.4e-8 (float32 rounding of librosa's basis)
    assert _rel(got, ref) < 1e-6
    ref_db = librosa.power_to_db(ref, ref=np.max, top_db=80.0)
    got_db = power_to_db(torch.from_numpy(got), ref="max", top_db=80.0).numpy()
    # dB of values that agree to 1e-6 relative: |10 log10(1 + 1e-6)| ~ 4e-6 dB; measured 5.8e-7 dB
    np.testing.assert_allclose(got_db, ref_db, rtol=0, atol=1e-5)
    # float32 module on float32 input stays close to the float64 reference: measured 2.2e-7
    got32 = MelSpectrogram(sr, n_fft=1024, hop_length=256, n_mels=96, f_max=8000.0)(wav.float())
    assert got32.dtype == torch.float32 and _rel(got32.numpy(), ref) < 1e-5


@pytest.mark.parity
def test_mel_spectrogram_power1_htk_matches_librosa():
    x = _noise(8000)
    ref = librosa.feature.melspectrogram(
        y=x,
        sr=16000,
        n_fft=512,
        hop_length=160,
        win_length=400,
        n_mels=40,
        power=1.0,
        htk=True,
        norm=None,
        pad_mode="reflect",
    )
    got = mel_spectrogram(
        torch.from_numpy(x),
        16000,
        n_fft=512,
        hop_length=160,
        win_length=400,
        n_mels=40,
        power=1.0,
        htk=True,
        norm=None,
        pad_mode="reflect",
    ).numpy()
    assert _rel(got, ref) < 1e-6  # librosa's float32 mel basis, as above (measured 1.0e-8)


@pytest.mark.parity
def test_power_and_amplitude_to_db_match_librosa():
    spec = np.abs(librosa.stft(_noise(), n_fft=512)) ** 2
    spec[:, :3] = 0.0  # exercise the amin floor
    for kwargs in ({}, {"ref": 2.0, "amin": 1e-6, "top_db": 40.0}, {"top_db": None}):
        ref = librosa.power_to_db(spec, **kwargs)
        got = power_to_db(torch.from_numpy(spec), **kwargs).numpy()
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)  # float64, same formula: measured 8.9e-16
    mag = np.sqrt(spec)
    ref = librosa.amplitude_to_db(mag, ref=np.max)
    np.testing.assert_allclose(amplitude_to_db(torch.from_numpy(mag), ref="max").numpy(), ref, atol=1e-10)
    ref = librosa.amplitude_to_db(mag, ref=0.5, top_db=None)
    np.testing.assert_allclose(amplitude_to_db(torch.from_numpy(mag), ref=0.5, top_db=None).numpy(), ref, atol=1e-10)
    db = power_to_db(torch.from_numpy(spec) + 1e-3, top_db=None)
    torch.testing.assert_close(db_to_power(db), torch.from_numpy(spec) + 1e-3)  # exact inverse w/o floors


def test_db_top_db_is_per_item_in_a_batch():
    quiet, loud = torch.rand(40, 30) * 1e-4, torch.rand(40, 30)
    batch = power_to_db(torch.stack([quiet, loud]), top_db=20.0)
    torch.testing.assert_close(batch[0], power_to_db(quiet, top_db=20.0))
    torch.testing.assert_close(batch[1], power_to_db(loud, top_db=20.0))
    assert (batch[0].amax() - batch[0].amin()) <= 20.0 + 1e-4


def test_log_mel_units():
    mel = torch.rand(2, 20, 30).square() * 10
    db = power_to_db(mel, amin=1e-5, top_db=60.0)
    torch.testing.assert_close(log_mel(mel, top_db=60.0, log="db"), db)
    torch.testing.assert_close(log_mel(mel, top_db=60.0, log="log10"), db / 10)
    torch.testing.assert_close(log_mel(mel, top_db=60.0, log="ln"), db * np.log(10) / 10)
    torch.testing.assert_close(log_mel(mel), torch.log(mel.clamp(min=1e-5)))
    with pytest.raises(ConfigError, match="log must be"):
        log_mel(mel, log="log2")
    module = LogMelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=40, log="log10", amin=1e-10)
    x = torch.randn(2, 4000)
    torch.testing.assert_close(module(x), torch.log10(module.mel(x).clamp(min=1e-10)))


# ---------------------------------------------------------------------------------------- mfcc


@pytest.mark.parity
def test_dct_matrix_matches_scipy():
    x = np.random.default_rng(0).standard_normal((40, 7))
    ref = scipy.fft.dct(x, type=2, norm="ortho", axis=0)[:13]
    np.testing.assert_allclose(
        (dct_matrix(13, 40, dtype=torch.float64) @ torch.from_numpy(x)).numpy(), ref, rtol=0, atol=1e-12
    )  # float64 matrix product vs FFT algorithm
    full = dct_matrix(16, 16, dtype=torch.float64)
    torch.testing.assert_close(full @ full.T, torch.eye(16, dtype=torch.float64))  # orthonormal


@pytest.mark.parity
@pytest.mark.parametrize("n_mfcc, lifter, n_mels", [(20, 0, 128), (13, 22, 40)])
def test_mfcc_matches_librosa(n_mfcc, lifter, n_mels, speechlike):
    y = speechlike.astype(np.float64)
    ref = librosa.feature.mfcc(y=y, sr=16000, n_mfcc=n_mfcc, lifter=lifter, n_mels=n_mels, n_fft=512, hop_length=160)
    module = MFCC(16000, n_mfcc, lifter=lifter, n_mels=n_mels, n_fft=512, hop_length=160).double()
    got = module(torch.from_numpy(y)).numpy()
    assert got.shape == ref.shape and got.dtype == np.float64
    # librosa's float32 mel basis (~6e-8 rel.) -> ~3e-7 dB per band, summed by the DCT (x12 by the
    # lifter): measured max abs 4.7e-7 (20 coeffs) / 2.5e-6 (lifter 22) on coefficients up to ~800
    np.testing.assert_allclose(got, ref, rtol=0, atol=5e-5)
    got32 = mfcc(
        torch.from_numpy(speechlike), 16000, n_mfcc, lifter=lifter, n_mels=n_mels, n_fft=512, hop_length=160
    ).numpy()
    # float32 end to end: dB of low-energy bins carry float32 STFT noise; measured max abs 5.3e-4 on
    # coefficients up to ~800 (7e-7 relative; librosa in float32 is off by as much)
    assert np.abs(got32 - ref).max() < 1e-5 * np.abs(ref).max()


def test_mel_and_mfcc_batched_equal_per_item(speechlike):
    x = torch.from_numpy(np.stack([speechlike, speechlike[::-1].copy(), 0.1 * speechlike]))
    mel = MelSpectrogram(16000, n_fft=512, hop_length=160, n_mels=64)
    mf = MFCC(16000, 13, n_fft=512, hop_length=160, n_mels=64)
    mel_b, mf_b = mel(x), mf(x)
    for i in range(3):
        # batched vs single FFT calls: identical maths, possibly different vectorisation -> ~1 ulp
        torch.testing.assert_close(mel_b[i], mel(x[i]), rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(mf_b[i], mf(x[i]), rtol=1e-5, atol=1e-4)


def test_modules_float64_gradients_and_export():
    x = torch.randn(2, 8000, dtype=torch.float64, requires_grad=True)
    out = MFCC(16000, 13, n_fft=400, hop_length=160, n_mels=40).double()(x)
    assert out.dtype == torch.float64
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    module = MelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=40)
    assert not list(module.parameters()) and not module.state_dict()  # no weights, nothing to save
    xf = torch.randn(2, 8000)
    exported = torch.export.export(module, (xf,))
    torch.testing.assert_close(exported.module()(xf), module(xf), rtol=0, atol=0)


def test_double_modules_use_exact_float64_constants():
    module = MFCC(16000, 13, n_fft=400, hop_length=160, n_mels=40, lifter=22)
    assert module.mel.window.dtype == torch.float32 and module.dct.dtype == torch.float32
    module.double()
    torch.testing.assert_close(module.mel.window, get_window("hann", 400, dtype=torch.float64), rtol=0, atol=0)
    torch.testing.assert_close(module.mel.fb, mel_filterbank(16000, 400, 40, dtype=torch.float64), rtol=0, atol=0)
    torch.testing.assert_close(module.dct, dct_matrix(13, 40, dtype=torch.float64), rtol=0, atol=0)
    module.float()
    assert module.mel.fb.dtype == torch.float32


def test_modules_accept_a_window_tensor():
    win = get_window("hamming", 400, periodic=False)  # e.g. a Kaldi-style symmetric window
    x = torch.randn(2, 4000)
    module = Spectrogram(512, 160, window=win)
    torch.testing.assert_close(module(x), stft(x, 512, 160, window=win, power=2.0), rtol=0, atol=0)
    mel = MelSpectrogram(16000, 512, 160, window=win, n_mels=40)
    torch.testing.assert_close(mel(x), mel.fb @ module(x), rtol=1e-6, atol=1e-6)  # same maths, float32


def test_dsp_modules_build_under_meta_device_context():
    """Constants are computed on the CPU even inside torch.device('meta') (parameter counting on meta)."""
    from audiozoo.dsp import CQT2010, MFCC, MelSpectrogram

    with torch.device("meta"):
        mel = MelSpectrogram(sample_rate=16000, n_fft=512, n_mels=40)
        mfcc = MFCC(sample_rate=16000, n_mfcc=13, n_fft=512, n_mels=40)
        cqt = CQT2010(sr=22050, hop_length=256, fmin=27.5, n_bins=36, bins_per_octave=12)
    x = torch.randn(1, 4000)
    assert mel(x).shape[1] == 40 and torch.isfinite(mfcc(x)).all()
    assert cqt(torch.randn(1, 22050)).shape[1] == 36
