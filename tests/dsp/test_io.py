"""audiozoo.dsp.io: loading, saving, inspecting and resampling audio, and every bad-input error."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from audiozoo.dsp import AudioFileStream, audio_info, load_audio, resample, save_audio
from audiozoo.errors import AudioError

SR = 16000


def _tone(freq: float = 440.0, sr: int = SR, seconds: float = 0.5, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.argmax(spec) * sr / x.size)


# ---------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    "name, subtype, tol",
    [
        ("a.wav", "PCM_16", 1 / 32768),  # one int16 quantisation step
        ("a.wav", "PCM_24", 1 / 2**23),  # one int24 step
        ("a.wav", "FLOAT", 0.0),  # float32 stored exactly
        ("a.flac", None, 1 / 32768),  # FLAC default is PCM_16: lossless but quantised
    ],
)
def test_save_load_round_trip(tmp_path, name, subtype, tol):
    x = _tone()
    path = save_audio(tmp_path / "sub" / "dir" / name, torch.from_numpy(x), SR, subtype=subtype)
    assert path.exists()  # parent folders were created
    y, sr = load_audio(path)
    assert sr == SR and y.dtype == torch.float32 and y.shape == (x.size,)
    assert np.abs(y.numpy() - x).max() <= tol


def test_ogg_vorbis_round_trip_keeps_the_tone(tmp_path):
    x = _tone(1000.0)
    save_audio(tmp_path / "a.ogg", x, SR)
    y, sr = load_audio(tmp_path / "a.ogg")
    assert sr == SR and y.shape == (x.size,)
    assert abs(_peak_hz(y.numpy(), sr) - 1000.0) <= SR / x.size  # lossy codec: within one FFT bin


@pytest.mark.skipif("MP3" not in sf.available_formats(), reason="this libsndfile has no MP3 support")
def test_mp3_round_trip_and_truncation(tmp_path):
    x = _tone(1000.0, seconds=1.0)
    path = save_audio(tmp_path / "a.mp3", x, SR)
    y, sr = load_audio(path)
    assert sr == SR and abs(_peak_hz(y.numpy(), sr) - 1000.0) <= 1.0  # lossy: the tone survives
    data = path.read_bytes()
    (tmp_path / "cut.mp3").write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match="truncated.*cut.mp3"):
        load_audio(tmp_path / "cut.mp3")


def test_int_pcm_is_scaled_to_unit_range(tmp_path):
    ints = np.array([-32768, -16384, 0, 16384, 32767] * 10, dtype=np.int16)
    sf.write(tmp_path / "i.wav", ints, SR, subtype="PCM_16")
    y, _ = load_audio(tmp_path / "i.wav", dtype=torch.float64)
    assert y.dtype == torch.float64
    np.testing.assert_array_equal(y.numpy(), ints / 32768.0)  # exact: power-of-two scaling


def test_stereo_channels_and_mono_mixdown(tmp_path):
    left, right = _tone(440.0), _tone(660.0, amp=0.25)
    save_audio(tmp_path / "s.wav", np.stack([left, right]), SR, subtype="FLOAT")
    both, _ = load_audio(tmp_path / "s.wav", mono=False)
    assert both.shape == (2, left.size)
    np.testing.assert_array_equal(both.numpy(), np.stack([left, right]))
    mono, _ = load_audio(tmp_path / "s.wav")
    np.testing.assert_allclose(mono.numpy(), (left + right) / 2, atol=1e-7)  # float32 rounding of the mean
    one, _ = load_audio(tmp_path / "s.wav", mono=True)
    assert one.ndim == 1
    single, _ = load_audio(torch.from_numpy(left), mono=False, array_sample_rate=SR)
    assert single.shape == (1, left.size)  # mono=False is always (C, T)


def test_offset_and_duration(tmp_path):
    x = np.linspace(-1, 1, SR, dtype=np.float32)
    save_audio(tmp_path / "r.wav", x, SR, subtype="FLOAT")
    y, _ = load_audio(tmp_path / "r.wav", offset=0.25, duration=0.5)
    np.testing.assert_array_equal(y.numpy(), x[SR // 4 : SR // 4 + SR // 2])
    z, _ = load_audio(torch.from_numpy(x), offset=0.25, duration=0.5, array_sample_rate=SR)
    np.testing.assert_array_equal(z.numpy(), y.numpy())
    tail, _ = load_audio(tmp_path / "r.wav", offset=0.9, duration=5.0)  # clipped to the end of the file
    assert tail.shape == (SR - int(0.9 * SR),)


def test_bytes_and_file_like_sources(tmp_path):
    x = _tone()
    path = save_audio(tmp_path / "a.flac", x, SR)
    ref, _ = load_audio(path)
    data = path.read_bytes()
    from_bytes, sr = load_audio(data)
    assert sr == SR
    torch.testing.assert_close(from_bytes, ref, rtol=0, atol=0)
    with open(path, "rb") as f:
        from_file, _ = load_audio(f)
    torch.testing.assert_close(from_file, ref, rtol=0, atol=0)
    from_stream, _ = load_audio(io.BytesIO(data))
    torch.testing.assert_close(from_stream, ref, rtol=0, atol=0)


@pytest.mark.parametrize(
    "dtype, scale, offset",
    [(np.int16, 32768.0, 0.0), (np.int32, 2.0**31, 0.0), (np.int8, 128.0, 0.0), (np.uint8, 128.0, 128.0)],
)
def test_array_sources_scale_int_pcm(dtype, scale, offset):
    info = np.iinfo(dtype)
    arr = np.linspace(info.min, info.max, 101).astype(dtype)
    y, sr = load_audio(arr, array_sample_rate=8000, dtype=torch.float64)
    assert sr == 8000
    np.testing.assert_allclose(y.numpy(), (arr.astype(np.float64) - offset) / scale, rtol=0, atol=0)
    assert y.min() >= -1.0 and y.max() < 1.0


def test_array_source_with_resampling_and_tensor_input():
    x = torch.from_numpy(_tone(sr=48000))
    y, sr = load_audio(x, sample_rate=SR, array_sample_rate=48000)
    assert sr == SR and y.shape == (x.numel() // 3,)
    np.testing.assert_array_equal(y.numpy(), soxr.resample(x.numpy(), 48000, SR, quality="HQ"))


def test_audio_info(tmp_path):
    x = np.zeros((2, 12345), dtype=np.float32)
    save_audio(tmp_path / "i.wav", x, 22050, subtype="PCM_24")
    info = audio_info(tmp_path / "i.wav")
    assert info["sample_rate"] == 22050 and info["num_frames"] == 12345 and info["channels"] == 2
    assert info["format"] == "WAV" and info["subtype"] == "PCM_24"
    assert info["duration"] == pytest.approx(12345 / 22050)


# ---------------------------------------------------------------------------------------- resampling


def test_resample_matches_soxr_and_keeps_type():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4410)).astype(np.float32) * 0.1
    out = resample(x, 44100, SR)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape[:2] == (2, 3)
    for i in range(2):
        for j in range(3):
            # the batched call (all rows as soxr channels) must equal one soxr call per row exactly
            np.testing.assert_array_equal(out[i, j], soxr.resample(x[i, j], 44100, SR, quality="HQ"))
    t = resample(torch.from_numpy(x).double(), 44100, SR)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float64
    # float64 vs float32 processing of the same signal: agree to float32 precision
    np.testing.assert_allclose(t.numpy(), out, atol=1e-6)
    assert resample(x, SR, SR) is x


def test_resample_keeps_a_440_hz_tone():
    x = _tone(440.0, sr=44100, seconds=1.0)
    y = resample(torch.from_numpy(x), 44100, 16000)
    assert y.shape == (16000,)
    # 1 s at 16 kHz -> 1 Hz FFT bins: the peak must stay at 440 Hz to within one bin
    assert abs(_peak_hz(y.numpy(), 16000) - 440.0) <= 1.0
    rms_ratio = y[2000:-2000].pow(2).mean().sqrt() / np.sqrt((x[5000:-5000] ** 2).mean())
    assert abs(float(rms_ratio) - 1.0) < 1e-3  # passband gain of soxr HQ is flat to << 0.01 dB


# ---------------------------------------------------------------------------------------- real files


def test_real_recordings_load(shared_data):
    wav = shared_data / "fsdd" / "0_george_0.wav"
    info = audio_info(wav)
    y, sr = load_audio(wav)
    raw, raw_sr = sf.read(wav, dtype="int16")
    assert sr == raw_sr == info["sample_rate"] == 8000 and y.shape == (info["num_frames"],)
    np.testing.assert_array_equal(y.numpy(), raw / 32768.0)
    y16, sr16 = load_audio(wav, sample_rate=SR)
    assert sr16 == SR
    np.testing.assert_array_equal(y16.numpy(), soxr.resample(raw / np.float32(32768), 8000, SR, "HQ"))
    ogg = shared_data / "librosa" / "sorohanro_-_solo-trumpet-06.ogg"
    t, tsr = load_audio(ogg, offset=1.0, duration=0.5)
    assert tsr == 22050 and t.shape == (11025,) and torch.isfinite(t).all()


# ---------------------------------------------------------------------------------------- errors


def _wav_bytes(n: int = 1000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, _tone(seconds=n / SR), SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="not found.*nope.wav"):
        load_audio(tmp_path / "nope.wav")
    with pytest.raises(AudioError, match="not found"):
        audio_info(tmp_path / "nope.wav")


def test_truncated_wav(tmp_path):
    data = _wav_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match="truncated.*cut.wav"):
        load_audio(tmp_path / "cut.wav")
    (tmp_path / "head.wav").write_bytes(data[:30])  # cut inside the header
    with pytest.raises(AudioError, match="head.wav"):
        load_audio(tmp_path / "head.wav")
    # cut inside the data chunk's own header: libsndfile opens it as a valid file of 0 frames
    (tmp_path / "head43.wav").write_bytes(data[:43])
    with pytest.raises(AudioError, match="truncated WAV.*chunk header.*head43.wav"):
        load_audio(tmp_path / "head43.wav")
    (tmp_path / "head44.wav").write_bytes(data[:44])  # header complete, every sample missing
    with pytest.raises(AudioError, match="truncated WAV.*head44.wav"):
        load_audio(tmp_path / "head44.wav")


def test_truncated_flac(tmp_path):
    buf = io.BytesIO()
    sf.write(buf, np.random.default_rng(0).uniform(-0.5, 0.5, SR).astype(np.float32), SR, format="FLAC")
    data = buf.getvalue()
    (tmp_path / "cut.flac").write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match="cut.flac"):
        load_audio(tmp_path / "cut.flac")


def test_text_file_named_wav(tmp_path):
    (tmp_path / "notes.wav").write_text("this is not audio\n" * 20)
    with pytest.raises(AudioError, match="notes.wav"):
        load_audio(tmp_path / "notes.wav")
    with pytest.raises(AudioError, match="notes.wav"):
        audio_info(tmp_path / "notes.wav")


def test_empty_file_and_bytes(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match="empty.*empty.wav"):
        load_audio(tmp_path / "empty.wav")
    with pytest.raises(AudioError, match="empty"):
        load_audio(b"")


def test_zero_frame_file(tmp_path):
    sf.write(tmp_path / "zero.wav", np.zeros(0, dtype=np.float32), SR)
    with pytest.raises(AudioError, match="zero frames.*zero.wav"):
        load_audio(tmp_path / "zero.wav")
    assert audio_info(tmp_path / "zero.wav")["num_frames"] == 0  # info reports it truthfully


def test_nan_and_inf_samples(tmp_path):
    x = _tone()
    x[10] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        load_audio(x, array_sample_rate=SR)
    sf.write(tmp_path / "nan.wav", x, SR, subtype="FLOAT")  # soundfile itself writes it
    with pytest.raises(AudioError, match="nan.wav.*non-finite"):
        load_audio(tmp_path / "nan.wav")
    with pytest.raises(AudioError, match="non-finite"):
        save_audio(tmp_path / "out.wav", x, SR)
    x[10] = np.inf
    with pytest.raises(AudioError, match="Inf"):
        load_audio(torch.from_numpy(x), array_sample_rate=SR)
    with pytest.raises(AudioError, match="non-finite"):
        resample(x, SR, 8000)


@pytest.mark.parametrize(
    "arr",
    [
        np.zeros(100, dtype=np.complex64),
        np.array([0.1, "a"], dtype=object),
        np.zeros(100, dtype=bool),
        np.array(["a", "b"]),
        np.zeros(100, dtype=np.int64),
        torch.zeros(100, dtype=torch.complex64),
        torch.zeros(100, dtype=torch.bool),
    ],
    ids=["complex", "object", "bool", "str", "int64", "torch-complex", "torch-bool"],
)
def test_wrong_dtypes(tmp_path, arr):
    with pytest.raises(AudioError, match="dtype|complex"):
        load_audio(arr, array_sample_rate=SR)
    with pytest.raises(AudioError, match="dtype|complex"):
        save_audio(tmp_path / "x.wav", arr, SR)


def test_bad_shapes(tmp_path):
    with pytest.raises(AudioError, match="zero-length"):
        load_audio(np.zeros(0, dtype=np.float32), array_sample_rate=SR)
    with pytest.raises(AudioError, match="zero-length"):
        load_audio(np.zeros((2, 0), dtype=np.float32), array_sample_rate=SR)
    with pytest.raises(AudioError, match="3 dims"):
        load_audio(np.zeros((1, 2, 100), dtype=np.float32), array_sample_rate=SR)
    with pytest.raises(AudioError, match="3 dims"):
        save_audio(tmp_path / "x.wav", torch.zeros(1, 2, 100), SR)
    with pytest.raises(AudioError, match=r"\(T, C\)"):
        load_audio(np.zeros((100, 2), dtype=np.float32), array_sample_rate=SR)
    with pytest.raises(AudioError, match="zero-length"):
        resample(np.zeros(0, dtype=np.float32), SR, 8000)


@pytest.mark.parametrize("bad", [0, -16000, 0.5, float("nan"), "16000", True])
def test_non_positive_or_invalid_sample_rates(tmp_path, bad):
    x = _tone()
    with pytest.raises(AudioError, match="sample_rate"):
        load_audio(x, array_sample_rate=bad)
    with pytest.raises(AudioError, match="sample_rate"):
        load_audio(x, sample_rate=bad, array_sample_rate=SR)
    with pytest.raises(AudioError, match="sample_rate"):
        save_audio(tmp_path / "x.wav", x, bad)
    with pytest.raises(AudioError, match="_sr"):
        resample(x, bad, SR)


def test_argument_errors(tmp_path):
    x = _tone()
    with pytest.raises(AudioError, match="array_sample_rate"):
        load_audio(x)
    path = save_audio(tmp_path / "a.wav", x, SR)
    with pytest.raises(AudioError, match="array_sample_rate"):
        load_audio(path, array_sample_rate=SR)
    with pytest.raises(AudioError, match="past the end"):
        load_audio(path, offset=10.0)
    with pytest.raises(AudioError, match="offset"):
        load_audio(path, offset=-1.0)
    with pytest.raises(AudioError, match="duration"):
        load_audio(path, duration=0.0)
    with pytest.raises(AudioError, match="dtype"):
        load_audio(path, dtype=torch.int16)
    with pytest.raises(AudioError, match="unsupported audio source"):
        load_audio(12345)
    with pytest.raises(AudioError, match="float32/float64"):
        resample(np.zeros(100, dtype=np.int16), SR, 8000)


def test_save_refuses_to_clip(tmp_path):
    loud = _tone(amp=1.5)
    with pytest.raises(AudioError, match="outside \\[-1, 1\\]"):
        save_audio(tmp_path / "loud.wav", loud, SR)
    with pytest.raises(AudioError, match="outside"):
        save_audio(tmp_path / "loud.flac", loud, SR)
    assert not (tmp_path / "loud.wav").exists()
    path = save_audio(tmp_path / "loud.wav", loud, SR, subtype="FLOAT")  # float keeps it exactly
    np.testing.assert_array_equal(load_audio(path)[0].numpy(), loud)
    with pytest.raises(AudioError, match="extension"):
        save_audio(tmp_path / "x.xyz", _tone(), SR)
    with pytest.raises(AudioError, match="subtype"):
        save_audio(tmp_path / "x.flac", _tone(), SR, subtype="FLOAT")


# ---------------------------------------------------------------------------------------------- AudioFileStream
@pytest.mark.parametrize("file_rate,rate,file_ch,ch", [(44100, 16000, 2, 1), (16000, 44100, 1, 2), (22050, 22050, 2, 2),
                                                      (48000, 44100, 2, 2), (8000, 16000, 1, 1)])
def test_file_stream_equals_whole_read(tmp_path, file_rate, rate, file_ch, ch):
    """Windows read block by block (mix, stream-resample) are bit-equal to loading and resampling it whole."""
    rng = np.random.default_rng(file_rate + rate)
    n = int(rng.integers(5000, 30000))
    path = tmp_path / "x.wav"
    sf.write(path, (0.1 * rng.standard_normal((n, file_ch))).astype(np.float32), file_rate, subtype="FLOAT")
    whole, _ = load_audio(path, mono=False)
    if whole.shape[0] != ch:
        whole = whole.mean(0, keepdim=True).expand(ch, -1)
    ref = resample(whole, file_rate, rate)
    with AudioFileStream(path, rate, ch, block=777) as s:
        assert s.shape == tuple(ref.shape) and s.file_rate == file_rate
        a, win, hop = 0, 3001, 2000
        while True:
            b = min(a + win, s.shape[1])
            assert torch.equal(s[..., a:b], ref[:, a:b]), (a, b)
            if b == s.shape[1]:
                break
            a += hop
        with pytest.raises(AudioError, match="forward only"):
            s[..., 0:10]


def test_file_stream_bad_inputs(tmp_path):
    with pytest.raises(AudioError, match="not found"):
        AudioFileStream(tmp_path / "missing.wav", 16000)
    bad = tmp_path / "bad.wav"
    sf.write(bad, np.array([[0.1], [np.nan], [0.2]], np.float32), 16000, subtype="FLOAT")
    with AudioFileStream(bad, 16000) as s, pytest.raises(AudioError, match="non-finite"):
        s[..., 0:3]
