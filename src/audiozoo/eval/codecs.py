"""Classical speech-codec baselines: Codec2 and Opus round trips through their command-line tools.

The neural codecs of :mod:`audiozoo.models.codec` are compared against what a user would otherwise pick:

* **Codec2** (David Rowe; Debian ``codec2``: ``c2enc`` / ``c2dec``), 8 kHz narrow-band speech at 3200 / 2400 /
  1600 / 1400 / 1300 / 1200 / 700C bit/s (``700C``: the 700 bit/s mode with the newer vector-quantised spectral
  envelope). Input at any rate is resampled to 8 kHz (:func:`audiozoo.dsp.resample`), coded, decoded and resampled
  back, so the output is band-limited to 4 kHz whatever the input rate.
* **Opus** (RFC 6716; Debian ``opus-tools``: ``opusenc`` / ``opusdec``) at a target bitrate in kbit/s (6 and up is
  SILK narrow/medium band; the encoder chooses the band itself), default VBR, 20 ms frames, decoded at 48 kHz
  and resampled to the input rate.

Each round trip returns :class:`CodecRoundTrip`: the decoded audio **aligned to the input** (the codec's delay is
estimated by cross-correlation within ``max_delay_ms`` and removed, then the output is cut / zero-padded to the
input length: PESQ and STOI compare samples at the same time), the delay found, and the bitrate actually used,
measured from the encoded bytes: the whole ``c2enc`` bit file (whole bytes per frame, so 1300 bit/s writes 7 bytes
per 40 ms = 1400 bit/s), and for Opus the Opus packets only (the Ogg pages' segment lengths without the OpusHead /
OpusTags header pages; the container's ~27 + n bytes per page are not counted).

Tools absent: :func:`codec2_available` / :func:`opus_available` say so; the round trips raise
:class:`~audiozoo.errors.MissingDependencyError` naming the Debian package (``apt-get install codec2 opus-tools``).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ..dsp.io import resample
from ..errors import AudioError, ConfigError, MissingDependencyError

__all__ = ["CODEC2_MODES", "CodecRoundTrip", "align_to_reference", "codec2_available", "codec2_roundtrip",
           "estimate_delay", "ogg_opus_payload_bytes", "opus_available", "opus_roundtrip"]

#: Codec2 modes (``c2enc`` names) and their nominal bit rates.
CODEC2_MODES: dict[str, int] = {"3200": 3200, "2400": 2400, "1600": 1600, "1400": 1400, "1300": 1300, "1200": 1200,
                                "700C": 700}
CODEC2_RATE = 8000
OPUS_DECODE_RATE = 48000


@dataclass
class CodecRoundTrip:
    """``audio`` ``(T,)`` float32 at the input rate, aligned to the input and of its length; ``delay`` the codec
    delay removed (samples at the input rate; positive: the output lagged); ``bitrate`` bits per second measured
    from the encoded bytes; ``nominal_bitrate`` the mode's / requested rate; ``codec`` e.g. ``"codec2-1600"``."""

    audio: np.ndarray
    delay: int
    bitrate: float
    nominal_bitrate: float
    codec: str


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MissingDependencyError(f"'{name}' not found on PATH: install the Debian/Ubuntu package '{package}' "
                                     f"(apt-get install {package}) for this baseline")
    return path


def codec2_available() -> bool:
    """Whether ``c2enc`` and ``c2dec`` are on PATH."""
    return shutil.which("c2enc") is not None and shutil.which("c2dec") is not None


def opus_available() -> bool:
    """Whether ``opusenc`` and ``opusdec`` are on PATH."""
    return shutil.which("opusenc") is not None and shutil.which("opusdec") is not None


def _mono(wav: np.ndarray | torch.Tensor, sr: int) -> np.ndarray:
    x = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    if x.ndim == 2 and 1 in x.shape:
        x = x.reshape(-1)
    if x.ndim != 1 or x.shape[0] < 1:
        raise AudioError(f"codec round trip expects a mono waveform (T,), got shape {x.shape}")
    if not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ConfigError(f"sample rate must be a positive int, got {sr!r}")
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise AudioError("codec round trip: the waveform has NaN/Inf values")
    return x


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, -1.0, 32767 / 32768) * 32768).astype("<i2")


def _xcorr(a: np.ndarray, b: np.ndarray, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Lags ``[-max_lag, max_lag]`` and ``sum_t a[t + lag] b[t]`` (FFT; along the last axis, summed over rows)."""
    n = a.shape[-1] + b.shape[-1]
    size = 1 << (n - 1).bit_length()
    xc = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    if xc.ndim > 1:
        xc = xc.sum(0)
    max_lag = min(max_lag, size // 2 - 1)
    lags = np.arange(-max_lag, max_lag + 1)
    return lags, np.concatenate([xc[size - max_lag:], xc[: max_lag + 1]])


def _log_spec(x: np.ndarray, hop: int) -> np.ndarray:
    n_fft = 16 * hop
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(x, (n_fft // 2, n_fft // 2)), n_fft)[::hop]
    mag = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=-1)).T  # (F, N)
    spec = np.log(mag + 1e-4)
    return spec - spec.mean(1, keepdims=True)


def estimate_delay(output: np.ndarray, reference: np.ndarray, max_lag: int, hop: int | None = None) -> int:
    """Lag ``d`` in ``[-max_lag, max_lag]`` (samples) by which ``output`` lags ``reference``.

    Two stages, because parametric coders (Codec2) do not keep the waveform's phase, so a waveform
    cross-correlation peak can land anywhere within a pitch period: (1) the lag that best correlates the
    mean-removed log-magnitude spectrograms (hop ``hop`` samples, default ~1 ms), (2) refined within one hop by
    the waveform cross-correlation, kept only where that peak is a real match (normalised correlation > 0.5;
    waveform coders and neural codecs).
    """
    hop = max(1, int(hop or 16))
    a, b = _log_spec(output, hop), _log_spec(reference, hop)
    lags, vals = _xcorr(a, b, max(1, max_lag // hop))
    coarse = int(lags[int(np.argmax(vals))]) * hop
    lo, hi = coarse - hop, coarse + hop
    flags, fvals = _xcorr(output, reference, max(abs(lo), abs(hi)))
    keep = (flags >= lo) & (flags <= hi)
    fine = int(flags[keep][int(np.argmax(fvals[keep]))])
    y = output[fine:] if fine >= 0 else np.concatenate([np.zeros(-fine), output])
    m = min(len(y), len(reference))
    den = float(np.linalg.norm(y[:m]) * np.linalg.norm(reference[:m])) + 1e-12
    return fine if float(np.dot(y[:m], reference[:m])) / den > 0.5 else coarse


def align_to_reference(output: np.ndarray, reference: np.ndarray, max_lag: int,
                       hop: int | None = None) -> tuple[np.ndarray, int]:
    """``output`` shifted by its cross-correlation delay and cut / zero-padded to ``len(reference)``."""
    d = estimate_delay(output, reference, max_lag, hop)
    y = output[d:] if d >= 0 else np.concatenate([np.zeros(-d, output.dtype), output])
    n = len(reference)
    y = y[:n] if len(y) >= n else np.concatenate([y, np.zeros(n - len(y), y.dtype)])
    return y.astype(np.float32), d


def codec2_roundtrip(wav: np.ndarray | torch.Tensor, sr: int, mode: str | int = "3200", *,
                     max_delay_ms: float = 100.0) -> CodecRoundTrip:
    """Code ``wav (T,)`` at ``sr`` with Codec2 ``mode`` (one of :data:`CODEC2_MODES`; ints accepted) and decode.

    The audio goes through 8 kHz (resampled in and out); the output is aligned to ``wav`` (see the module
    docstring). Raises :class:`MissingDependencyError` without ``c2enc``/``c2dec``.
    """
    mode = str(mode).upper()
    if mode not in CODEC2_MODES:
        raise ConfigError(f"Codec2 mode must be one of {list(CODEC2_MODES)}, got {mode!r}")
    enc, dec = _tool("c2enc", "codec2"), _tool("c2dec", "codec2")
    x = _mono(wav, sr)
    x8 = np.asarray(resample(x, int(sr), CODEC2_RATE), dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="audiozoo_codec2_") as tmp:
        raw_in, bits, raw_out = Path(tmp) / "in.raw", Path(tmp) / "out.bit", Path(tmp) / "out.raw"
        _to_int16(x8).tofile(raw_in)
        # ".bit" (not ".c2"): newer c2enc write a header into .c2 files, which would count as payload
        for cmd in ([enc, mode, str(raw_in), str(bits)], [dec, mode, str(bits), str(raw_out)]):
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                raise AudioError(f"{Path(cmd[0]).name} failed ({res.returncode}): {res.stderr.strip()[-300:]}")
        nbytes = bits.stat().st_size
        y8 = np.fromfile(raw_out, dtype="<i2").astype(np.float32) / 32768.0
    if y8.size == 0:
        raise AudioError(f"Codec2 {mode}: the decoder returned no audio (input {len(x8)} samples at 8 kHz)")
    y = np.asarray(resample(y8, CODEC2_RATE, int(sr)), dtype=np.float32)
    y, d = align_to_reference(y, x, int(max_delay_ms * sr / 1000), max(1, int(sr) // 1000))
    return CodecRoundTrip(y, d, nbytes * 8 * CODEC2_RATE / len(x8), float(CODEC2_MODES[mode]), f"codec2-{mode}")


def ogg_opus_payload_bytes(data: bytes) -> int:
    """Bytes of Opus packets in an Ogg Opus stream: the segment lengths of every page after the two header pages
    (RFC 7845 puts OpusHead and OpusTags each on its own page(s); pages are counted until two packets ended)."""
    pos, total, packets_done = 0, 0, 0
    while pos + 27 <= len(data):
        if data[pos:pos + 4] != b"OggS":
            raise AudioError(f"not an Ogg stream at byte {pos}")
        nseg = data[pos + 26]
        lacing = data[pos + 27: pos + 27 + nseg]
        size = sum(lacing)
        if packets_done < 2:
            packets_done += sum(1 for v in lacing if v < 255)
        else:
            total += size
        pos += 27 + nseg + size
    return total


def opus_roundtrip(wav: np.ndarray | torch.Tensor, sr: int, kbps: float = 6.0, *, framesize_ms: float = 20.0,
                   complexity: int = 10, max_delay_ms: float = 100.0) -> CodecRoundTrip:
    """Code ``wav (T,)`` at ``sr`` with Opus at ``kbps`` (``opusenc --bitrate``, VBR) and decode at 48 kHz.

    Output aligned to ``wav`` and at its rate; ``bitrate`` counts the Opus packets only (see the module
    docstring). Raises :class:`MissingDependencyError` without ``opusenc``/``opusdec``.
    """
    if not 6.0 <= float(kbps) <= 256.0:
        raise ConfigError(f"Opus bitrate must be in [6, 256] kbit/s, got {kbps}")
    enc, dec = _tool("opusenc", "opus-tools"), _tool("opusdec", "opus-tools")
    x = _mono(wav, sr)
    # opusenc reads 8/12/16/24/48 kHz directly; other rates go through 48 kHz here (opusenc's own resampler is
    # not what we want to measure)
    rate = int(sr) if int(sr) in (8000, 12000, 16000, 24000, 48000) else OPUS_DECODE_RATE
    xin = x if rate == sr else np.asarray(resample(x, int(sr), rate), dtype=np.float32)
    with tempfile.TemporaryDirectory(prefix="audiozoo_opus_") as tmp:
        src, ogg, out = Path(tmp) / "in.wav", Path(tmp) / "out.opus", Path(tmp) / "out.wav"
        sf.write(src, _to_int16(xin), rate, subtype="PCM_16")
        cmds = ([enc, "--quiet", "--bitrate", f"{float(kbps):g}", "--framesize", f"{framesize_ms:g}", "--comp",
                 str(int(complexity)), str(src), str(ogg)],
                [dec, "--quiet", "--rate", str(OPUS_DECODE_RATE), str(ogg), str(out)])
        for cmd in cmds:
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                raise AudioError(f"{Path(cmd[0]).name} failed ({res.returncode}): {res.stderr.strip()[-300:]}")
        payload = ogg_opus_payload_bytes(ogg.read_bytes())
        y48, _ = sf.read(out, dtype="float32", always_2d=True)
    y = np.asarray(resample(y48[:, 0], OPUS_DECODE_RATE, int(sr)), dtype=np.float32)
    y, d = align_to_reference(y, x, int(max_delay_ms * sr / 1000), max(1, int(sr) // 1000))
    return CodecRoundTrip(y, d, payload * 8 * sr / len(x), float(kbps) * 1000, f"opus-{float(kbps):g}k")
