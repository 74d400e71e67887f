"""Codec2 / Opus baselines (audiozoo.eval.codecs): delay estimation and alignment (no tools needed), and round trips
through the Debian tools on a synthetic voiced signal (skipped when c2enc / opusenc are not installed)."""

from __future__ import annotations

import numpy as np
import pytest

from audiozoo.errors import AudioError, ConfigError, MissingDependencyError
from audiozoo.eval import codecs

SR = 16000


def _voiced(seconds: float = 1.2, sr: int = SR, seed: int = 0) -> np.ndarray:
    """A vowel-like test signal: a 120-180 Hz glottal pulse train through two formant resonances, with pauses."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 150 + 30 * np.sin(2 * np.pi * 1.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    src = sum(np.sin(k * phase) / k for k in range(1, 25))
    spec = np.fft.rfft(src)
    f = np.fft.rfftfreq(len(src), 1 / sr)
    env = 1 / (1 + ((f - 700) / 120) ** 2) + 0.6 / (1 + ((f - 1200) / 150) ** 2)
    x = np.fft.irfft(spec * env, len(src))
    gate = (np.sin(2 * np.pi * 2 * t) > -0.3).astype(float)  # syllable-like on/off
    x = x * np.convolve(gate, np.hanning(400) / 200, mode="same") + 1e-3 * rng.standard_normal(len(t))
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


@pytest.mark.parametrize("delay", [0, 37, 250, -20])
def test_delay_estimate_and_alignment(delay: int):
    x = _voiced(0.8)
    y = np.roll(x, delay) * 0.7
    assert codecs.estimate_delay(y, x, 400, hop=16) == delay
    aligned, d = codecs.align_to_reference(np.concatenate([np.zeros(5, np.float32), x])[: len(x) + 3], x, 400)
    assert d == 5 and aligned.shape == x.shape and _corr(aligned[:-10], x[:-10]) > 0.999


def test_delay_of_a_phase_free_copy_uses_the_spectrogram():
    """A parametric coder keeps the magnitude spectrum, not the phase: the waveform peak is meaningless, the
    spectrogram stage still finds the delay (to its 1 ms hop)."""
    x = _voiced(1.0)
    rng = np.random.default_rng(1)
    # random-phase copy per 32 ms block (magnitude kept), then delayed by 160 samples
    blocks = []
    for i in range(0, len(x), 512):
        b = np.fft.rfft(x[i:i + 512] * 1.0)
        blocks.append(np.fft.irfft(np.abs(b) * np.exp(1j * rng.uniform(0, 2 * np.pi, b.shape)), len(x[i:i + 512])))
    y = np.roll(np.concatenate(blocks).astype(np.float32), 160)
    # within 4 ms (STOI's frames are 25.6 ms; the block-wise random phase blurs timing by up to 32 ms)
    assert abs(codecs.estimate_delay(y, x, 800, hop=16) - 160) <= 64


def test_ogg_payload_counts_packets_without_headers():
    def page(segs: list[int]) -> bytes:
        body = b"".join(b"x" * s for s in segs)
        return b"OggS" + bytes(22) + bytes([len(segs)]) + bytes(segs) + body
    stream = page([19]) + page([255, 40]) + page([30, 31]) + page([12])
    assert codecs.ogg_opus_payload_bytes(stream) == 30 + 31 + 12
    with pytest.raises(AudioError, match="Ogg"):
        codecs.ogg_opus_payload_bytes(b"RIFF" + bytes(40))


def test_bad_arguments_and_missing_tools(monkeypatch):
    x = _voiced(0.3)
    with pytest.raises(ConfigError, match="mode"):
        codecs.codec2_roundtrip(x, SR, "999")
    with pytest.raises(ConfigError, match="kbit"):
        codecs.opus_roundtrip(x, SR, 2.0)
    with pytest.raises(AudioError, match="mono"):
        codecs.codec2_roundtrip(np.zeros((2, 100), np.float32), SR)
    monkeypatch.setattr(codecs.shutil, "which", lambda name: None)
    assert not codecs.codec2_available() and not codecs.opus_available()
    with pytest.raises(MissingDependencyError, match="apt-get install codec2"):
        codecs.codec2_roundtrip(x, SR, "3200")
    with pytest.raises(MissingDependencyError, match="opus-tools"):
        codecs.opus_roundtrip(x, SR, 6)


@pytest.mark.parametrize("mode,nominal,bytes_per_frame,frame_s", [("3200", 3200, 8, 0.02), ("1300", 1300, 7, 0.04),
                                                                  ("700C", 700, 4, 0.04)])
def test_codec2_roundtrip(mode: str, nominal: int, bytes_per_frame: int, frame_s: float):
    if not codecs.codec2_available():
        pytest.skip("Codec2 tools (c2enc/c2dec) not installed: apt-get install codec2")
    x = _voiced(1.2)
    r = codecs.codec2_roundtrip(x, SR, mode)
    assert r.audio.shape == x.shape and r.audio.dtype == np.float32 and r.codec == f"codec2-{mode}"
    assert r.nominal_bitrate == nominal
    # bits from the file: whole bytes per frame (1300 bit/s = 52 bits -> 7 bytes per 40 ms)
    assert r.bitrate == pytest.approx(bytes_per_frame * 8 / frame_s, rel=0.05)
    assert 0 < r.delay < 800  # Codec2 lags its input (a few hundred samples at 16 kHz)
    # the spectral envelope survives: log-spectra of input and output correlate
    sx, sy = (np.log(np.abs(np.fft.rfft(v[2000:-2000])) + 1e-3) for v in (x, r.audio))
    band = slice(0, len(sx) * 3500 // 8000)  # Codec2 is 8 kHz: compare below 3.5 kHz
    assert _corr(sx[band] - sx[band].mean(), sy[band] - sy[band].mean()) > 0.5


def test_opus_roundtrip():
    if not codecs.opus_available():
        pytest.skip("Opus tools (opusenc/opusdec) not installed: apt-get install opus-tools")
    x = _voiced(1.2)
    r = codecs.opus_roundtrip(x, SR, 12)
    assert r.audio.shape == x.shape and r.codec == "opus-12k"
    assert abs(r.delay) <= 16  # opusdec removes the pre-skip itself
    assert 4000 < r.bitrate < 20000
    assert _corr(r.audio, x) > 0.8  # a waveform coder at 12 kbit/s keeps the waveform
