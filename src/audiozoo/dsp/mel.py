"""Mel scale, mel filterbanks, (log-)mel spectrograms, decibels and MFCC, in pure torch.

Conventions are librosa's (``librosa.filters.mel``, ``feature.melspectrogram``, ``power_to_db``,
``feature.mfcc``), which the tests check against:

* two mel scales: Slaney's (Auditory Toolbox; linear below 1 kHz, logarithmic above; librosa's default)
  and HTK's ``2595 log10(1 + f / 700)`` (``htk=True``);
* triangular filters between mel-spaced edge frequencies, evaluated at the FFT bin centres
  ``k * sr / n_fft``; ``norm="slaney"`` divides each triangle by its width in Hz (area ~constant);
* ``power_to_db`` floors at ``amin`` and, with ``top_db``, at ``max - top_db``. librosa takes the max of
  the whole array; here it is per item (over the last two dims), which is identical for one item and
  keeps batched results equal to per-item ones;
* MFCC = orthonormal DCT-II over mel bins of ``power_to_db(mel power)``, optional sinusoidal lifter.

Features are ``(..., n_mels, n_frames)``. Filterbank and DCT matrices are built in float64 and cast.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
from torch import nn

from audiozoo.errors import AudioError, ConfigError

from .features import CMVN_MODES, FeatureExtractor, floor_db, trim_quiet_frames, utterance_cmvn
from .stft import ConstantBuffers, Spectrogram, stft_lengths

__all__ = [
    "DecibelMelFrontend",
    "LogMelSpectrogram",
    "MFCC",
    "MelSpectrogram",
    "amplitude_to_db",
    "db_to_power",
    "dct_matrix",
    "hz_to_mel",
    "log_mel",
    "mel_filterbank",
    "mel_frequencies",
    "mel_spectrogram",
    "mel_to_hz",
    "mfcc",
    "power_to_db",
    "VocoderMel",
]

# Slaney's scale (Auditory Toolbox, as in librosa): 3 mels per 200 Hz up to 1 kHz, then log-spaced
# with 27 steps per factor 6.4.
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(freq: float | torch.Tensor, htk: bool = False) -> float | torch.Tensor:
    """Hz -> mel (Slaney scale, or HTK's with ``htk=True``); a float stays a float."""
    f = torch.as_tensor(freq, dtype=torch.float64) if not isinstance(freq, torch.Tensor) else freq
    if htk:
        mel = 2595.0 * torch.log10(1.0 + f / 700.0)
    else:
        # clamp inside the log only to keep the unused branch finite (and its gradient NaN-free)
        log_part = _MIN_LOG_MEL + torch.log(f.clamp(min=_MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
        mel = torch.where(f >= _MIN_LOG_HZ, log_part, f / _F_SP)
    return mel if isinstance(freq, torch.Tensor) else float(mel)


def mel_to_hz(mel: float | torch.Tensor, htk: bool = False) -> float | torch.Tensor:
    """Mel -> Hz, the inverse of :func:`hz_to_mel`; a float stays a float."""
    m = torch.as_tensor(mel, dtype=torch.float64) if not isinstance(mel, torch.Tensor) else mel
    if htk:
        f = 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    else:
        log_part = _MIN_LOG_HZ * torch.exp(_LOGSTEP * (m.clamp(min=_MIN_LOG_MEL) - _MIN_LOG_MEL))
        f = torch.where(m >= _MIN_LOG_MEL, log_part, _F_SP * m)
    return f if isinstance(mel, torch.Tensor) else float(f)


def mel_frequencies(n: int, f_min: float = 0.0, f_max: float = 11025.0, htk: bool = False) -> torch.Tensor:
    """``n`` frequencies (Hz, float64, shape (n,)) equally spaced on the mel scale from f_min to f_max."""
    mels = torch.linspace(hz_to_mel(float(f_min), htk), hz_to_mel(float(f_max), htk), n, dtype=torch.float64)
    return mel_to_hz(mels, htk)


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int = 128,
    f_min: float = 0.0,
    f_max: float | None = None,
    htk: bool = False,
    norm: str | None = "slaney",
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Triangular mel filterbank of shape ``(n_mels, n_fft // 2 + 1)``, as ``librosa.filters.mel``.

    Args:
        sample_rate: Hz. n_fft: FFT size. n_mels: number of bands.
        f_min, f_max: band edges in Hz (``f_max`` defaults to ``sample_rate / 2``).
        htk: HTK mel scale instead of Slaney's.
        norm: ``"slaney"`` (divide each triangle by half its Hz width: constant energy per band) or
            ``None`` (peak 1).

    Apply it as ``fb @ spec`` to a spectrogram ``(..., n_fft // 2 + 1, L)``. Warns (like librosa) when
    some bands fall between FFT bins and are empty.
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float)) or sample_rate <= 0:
        raise ConfigError(f"sample_rate must be positive, got {sample_rate!r}")
    if isinstance(n_fft, bool) or not isinstance(n_fft, int) or n_fft < 1:
        raise ConfigError(f"n_fft must be a positive integer, got {n_fft!r}")
    if isinstance(n_mels, bool) or not isinstance(n_mels, int) or n_mels < 1:
        raise ConfigError(f"n_mels must be a positive integer, got {n_mels!r}")
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max:
        raise ConfigError(f"need 0 <= f_min < f_max, got f_min={f_min}, f_max={f_max}")
    if norm not in ("slaney", None):
        raise ConfigError(f"norm must be 'slaney' or None, got {norm!r}")

    fft_freqs = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * (sample_rate / n_fft)
    edges = mel_frequencies(n_mels + 2, f_min, f_max, htk)  # (n_mels + 2,) band edges/centres in Hz
    widths = edges.diff()
    ramps = edges[:, None] - fft_freqs[None, :]  # (n_mels + 2, F)
    lower = -ramps[:-2] / widths[:-1, None]  # rising slope of band i, from edge i to edge i+1
    upper = ramps[2:] / widths[1:, None]  # falling slope, from edge i+1 to edge i+2
    weights = torch.minimum(lower, upper).clamp(min=0.0)
    if norm == "slaney":
        weights = weights * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    if not bool(((edges[:-2] == 0) | (weights.amax(dim=1) > 0)).all()):
        warnings.warn(
            f"mel_filterbank: empty mel bands (n_mels={n_mels} is too many for n_fft={n_fft} at "
            f"{sample_rate} Hz between {f_min} and {f_max} Hz); those channels will always be 0",
            stacklevel=2,
        )
    return weights.to(device=device, dtype=dtype)


def _per_item_max(s: torch.Tensor) -> torch.Tensor:
    """Max over the last two dims (F, L), kept for broadcasting; over everything for 1-D input."""
    return s.amax(dim=(-2, -1), keepdim=True) if s.ndim >= 2 else s.amax()


def power_to_db(
    s: torch.Tensor,
    ref: float | str | Callable[[torch.Tensor], torch.Tensor] = 1.0,
    amin: float = 1e-10,
    top_db: float | None = 80.0,
) -> torch.Tensor:
    """``10 log10(max(s, amin) / max(ref, amin))``, floored at ``max - top_db``: librosa.power_to_db.

    Args:
        s: non-negative power spectrogram ``(..., F, L)``.
        ref: reference power: a number, ``"max"`` (each item's maximum), or a callable on ``s``.
        amin: floor on ``s`` and ``ref`` (avoids log(0)).
        top_db: dynamic range kept below each item's peak (over its last two dims); ``None``: no floor.

    Returns:
        decibels, same shape as ``s``.
    """
    if s.is_complex():
        raise AudioError("power_to_db expects a real power spectrogram; use stft(..., power=2)")
    if not amin > 0:
        raise ConfigError(f"amin must be > 0, got {amin!r}")
    if top_db is not None and top_db < 0:
        raise ConfigError(f"top_db must be >= 0 or None, got {top_db!r}")
    if isinstance(ref, str):
        if ref != "max":
            raise ConfigError(f"ref must be a number, 'max' or a callable, got {ref!r}")
        ref_value = _per_item_max(s)
    else:
        ref_value = ref(s) if callable(ref) else torch.as_tensor(abs(ref), dtype=s.dtype, device=s.device)
    db = 10.0 * torch.log10(s.clamp(min=amin)) - 10.0 * torch.log10(ref_value.clamp(min=amin))
    if top_db is not None:
        db = torch.maximum(db, _per_item_max(db) - top_db)
    return db


def amplitude_to_db(
    s: torch.Tensor,
    ref: float | str | Callable[[torch.Tensor], torch.Tensor] = 1.0,
    amin: float = 1e-5,
    top_db: float | None = 80.0,
) -> torch.Tensor:
    """``20 log10(|s|)`` with the same floors as :func:`power_to_db` (librosa.amplitude_to_db).

    ``s`` ``(..., F, L)`` may be complex (its magnitude is used); ``amin`` is an amplitude floor.
    """
    mag = s.abs()
    if isinstance(ref, str):
        ref_power: float | Callable = "max" if ref == "max" else ref
    elif callable(ref):
        ref_power = lambda p: ref(p.sqrt()).square()  # noqa: E731 - ref is defined on magnitudes
    else:
        ref_power = abs(ref) ** 2
    return power_to_db(mag.square(), ref=ref_power, amin=amin**2, top_db=top_db)


def db_to_power(db: torch.Tensor, ref: float = 1.0) -> torch.Tensor:
    """Inverse of :func:`power_to_db` (without its floors): ``ref * 10 ** (db / 10)``."""
    return ref * torch.pow(10.0, db / 10.0)


_LOG_UNITS = {"ln": math.log(10.0) / 10.0, "log10": 0.1, "db": 1.0}  # output units per dB


def log_mel(mel: torch.Tensor, amin: float = 1e-5, top_db: float | None = None, log: str = "ln") -> torch.Tensor:
    """Log compression of a mel spectrogram ``(..., n_mels, L)`` as neural models use it.

    ``log="ln"``: ``ln(max(mel, amin))`` (HiFi-GAN / VITS "dynamic range compression" with amin=1e-5);
    ``"log10"``: ``log10(max(mel, amin))`` (Whisper uses amin=1e-10, top_db=80, then (x + 4) / 4);
    ``"db"``: ``10 log10(max(mel, amin))``. ``top_db`` (always in decibels, whatever the unit) floors
    each item at its maximum minus ``top_db`` dB. Same shape as ``mel``.
    """
    if log not in _LOG_UNITS:
        raise ConfigError(f"log must be one of {tuple(_LOG_UNITS)}, got {log!r}")
    if not amin > 0:
        raise ConfigError(f"amin must be > 0, got {amin!r}")
    clamped = mel.clamp(min=amin)
    out = {"ln": torch.log, "log10": torch.log10, "db": lambda t: 10.0 * torch.log10(t)}[log](clamped)
    if top_db is not None:
        out = torch.maximum(out, _per_item_max(out) - top_db * _LOG_UNITS[log])
    return out


def dct_matrix(
    n_out: int, n_in: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """Orthonormal DCT-II matrix ``(n_out, n_in)`` (scipy ``dct(type=2, norm="ortho")``, first n_out rows).

    ``D[k, n] = sqrt(2 / N) cos(pi k (2n + 1) / 2N)``, row 0 scaled by ``1 / sqrt(2)``. Apply as
    ``D @ x`` to ``x`` of shape ``(..., n_in, L)``.
    """
    if not 1 <= n_out <= n_in:
        raise ConfigError(f"need 1 <= n_out <= n_in for a DCT, got n_out={n_out}, n_in={n_in}")
    n = torch.arange(n_in, dtype=torch.float64)
    k = torch.arange(n_out, dtype=torch.float64)[:, None]
    d = torch.cos(math.pi / n_in * (n + 0.5) * k) * math.sqrt(2.0 / n_in)
    d[0] /= math.sqrt(2.0)
    return d.to(device=device, dtype=dtype)


def _lifter_weights(n_mfcc: int, lifter: float) -> torch.Tensor:
    # librosa / HTK sinusoidal liftering: 1 + (L / 2) sin(pi (k + 1) / L), k = 0..n_mfcc-1
    k = torch.arange(1, n_mfcc + 1, dtype=torch.float64)
    return 1.0 + (lifter / 2.0) * torch.sin(math.pi * k / lifter)


class MelSpectrogram(Spectrogram):
    """Waveform ``(..., T)`` -> mel spectrogram ``(..., n_mels, n_frames)``: ``fb @ |STFT| ** power``.

    Defaults are librosa.feature.melspectrogram's (n_fft=2048, hop=win//4, 128 Slaney-normalised Slaney
    mels, power 2, zero-padded centred frames). Window and filterbank are non-persistent buffers
    (see :class:`ConstantBuffers`): use ``.double()`` for float64 parity with librosa; float64 input
    to a float32 module computes in float64 with float32-rounded constants.
    """

    def __init__(
        self,
        sample_rate: int = 22050,
        n_fft: int = 2048,
        hop_length: int | None = None,
        win_length: int | None = None,
        n_mels: int = 128,
        f_min: float = 0.0,
        f_max: float | None = None,
        window: str | torch.Tensor = "hann",
        center: bool = True,
        pad_mode: str = "constant",
        power: float = 2.0,
        normalized: bool = False,
        htk: bool = False,
        norm: str | None = "slaney",
    ) -> None:
        if power is None or not power > 0:
            raise ConfigError(f"power must be > 0 for a mel spectrogram, got {power!r}")
        super().__init__(n_fft, hop_length, win_length, window, center, pad_mode, power, normalized)
        self.sample_rate, self.n_mels = sample_rate, n_mels
        self.register_constant(
            "fb", mel_filterbank(sample_rate, self.n_fft, n_mels, f_min, f_max, htk, norm, dtype=torch.float64)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = super().forward(x)
        return torch.matmul(self.fb.to(spec.dtype), spec)

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, hop_length={self.hop_length}, "
            f"win_length={self.win_length}, n_mels={self.n_mels}, power={self.power}"
        )


def mel_spectrogram(x: torch.Tensor, sample_rate: int, **kwargs) -> torch.Tensor:
    """Functional :class:`MelSpectrogram` (same keyword arguments): ``(..., T)`` -> ``(..., n_mels, L)``.

    Builds the filterbank on every call; keep a module around in loops.
    """
    module = MelSpectrogram(sample_rate, **kwargs)
    return module.to(x.device, x.dtype if x.is_floating_point() else None)(x)


class LogMelSpectrogram(nn.Module):
    """:class:`MelSpectrogram` followed by :func:`log_mel`: ``(..., T)`` -> ``(..., n_mels, L)``.

    Extra arguments: ``amin`` (1e-5), ``top_db`` (None), ``log`` ("ln" | "log10" | "db").
    """

    def __init__(
        self,
        sample_rate: int = 22050,
        amin: float = 1e-5,
        top_db: float | None = None,
        log: str = "ln",
        **mel_kwargs,
    ) -> None:
        super().__init__()
        if log not in _LOG_UNITS:
            raise ConfigError(f"log must be one of {tuple(_LOG_UNITS)}, got {log!r}")
        self.mel = MelSpectrogram(sample_rate, **mel_kwargs)
        self.amin, self.top_db, self.log = amin, top_db, log

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return log_mel(self.mel(x), self.amin, self.top_db, self.log)


class DecibelMelFrontend(FeatureExtractor):
    """The PANNs-style (torchlibrosa) front-end: waveform ``(B, T)`` -> ``(log-mel dB (B, n_mels, L), frames (B,))``.

    Hann window of ``n_fft``, centred frames with reflect padding (``L = T // hop + 1``), power mel with
    Slaney filters, ``power_to_db(ref=1.0, amin, top_db=None)`` as torchlibrosa's ``LogmelFilterBank`` in
    PANNs and the models built on it (CoNeTTE's ConvNeXt). Defaults are PANNs CNN14's (32 kHz, 64 mels
    over 50-14,000 Hz, n_fft 1024, hop 320). Reflect padding needs ``T > n_fft / 2``.

    Options that are not in PANNs (all off by default), applied in this order over each item's valid frames:
    ``trim_db``: leading / trailing frames more than ``trim_db`` below the loudest frame are dropped
    (:func:`~audiozoo.dsp.features.trim_quiet_frames`, frame lengths shrink); ``floor_db``: values below the
    item's peak minus ``floor_db`` are raised to it (:func:`~audiozoo.dsp.features.floor_db`); ``cmvn``:
    per-utterance mean (``"mean"``) or mean and variance (``"mean_var"``) normalisation of each mel bin
    (:func:`~audiozoo.dsp.features.utterance_cmvn`), which removes a speaker's microphone response and level.
    """

    def __init__(self, sample_rate: int = 32000, n_fft: int = 1024, hop_length: int = 320, n_mels: int = 64,
                 f_min: float = 50.0, f_max: float = 14000.0, amin: float = 1e-10, cmvn: str = "none",
                 floor_db: float | None = None, trim_db: float | None = None) -> None:
        super().__init__()
        if cmvn not in CMVN_MODES:
            raise ConfigError(f"DecibelMelFrontend cmvn must be one of {CMVN_MODES}, got {cmvn!r}")
        for name, v in (("floor_db", floor_db), ("trim_db", trim_db)):
            if v is not None and not v > 0:
                raise ConfigError(f"DecibelMelFrontend {name} must be None or > 0, got {v!r}")
        self.cmvn, self.floor_db, self.trim_db = cmvn, floor_db, trim_db
        self.sample_rate, self.n_fft, self.hop_length, self.n_mels = sample_rate, n_fft, hop_length, n_mels
        self.f_min, self.f_max, self.amin = f_min, f_max, amin
        self.n_features = n_mels
        self.min_samples = n_fft // 2 + 1
        self.min_samples_reason = f"reflect padding by n_fft/2={n_fft // 2} needs more samples than that"
        self.mel = MelSpectrogram(
            sample_rate, n_fft=n_fft, hop_length=hop_length, win_length=n_fft, n_mels=n_mels, f_min=f_min,
            f_max=f_max, window="hann", center=True, pad_mode="reflect", power=2.0, norm="slaney",
        )

    def num_frames(self, n_samples: int | torch.Tensor) -> int | torch.Tensor:
        return stft_lengths(n_samples, self.n_fft, self.hop_length, center=True)

    def compute(self, wav: torch.Tensor) -> torch.Tensor:
        return power_to_db(self.mel(wav), ref=1.0, amin=self.amin, top_db=None)

    def finish(self, features: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.trim_db is not None:
            features, frames = trim_quiet_frames(features, frames, self.trim_db)
        if self.floor_db is not None:
            features = floor_db(features, frames, self.floor_db)
        if self.cmvn != "none":
            features = utterance_cmvn(features, frames, variance=self.cmvn == "mean_var")
        return features, frames


class VocoderMel(FeatureExtractor):
    """Waveform ``(B, T)`` -> log-mel ``(B, n_mels, L)`` and frame lengths, as vocoders are trained on.

    The official HiFi-GAN ``meldataset.mel_spectrogram`` (Kong et al. 2020) as a parameter-free extractor:
    reflect padding of ``(n_fft - hop) / 2`` on both sides then uncentred frames (``L = T // hop``),
    magnitude ``sqrt(|X|^2 + 1e-9)``, Slaney mel (librosa ``filters.mel``), ``ln(max(., 1e-5))``. With
    ``center=True`` it is APNet's front-end (``L = T // hop + 1``), and with ``center=True``/``log="log10"``/
    ``amin=1e-10`` SpeechT5's feature extractor.

    Args:
        center: ``False`` (HiFi-GAN): reflect-pad ``(n_fft - hop) // 2`` on both sides, uncentred frames;
            ``True``: centred frames.
        pad_mode: padding of the frame centres / edges (``"reflect"`` in every reference).
        mag_eps: magnitude is ``sqrt(|X|^2 + mag_eps)`` (HiFi-GAN 1e-9; it also keeps the gradient finite).
        log: ``"ln"`` (HiFi-GAN, APNet) or ``"log10"`` (SpeechT5) of ``max(mel, amin)``.

    ``fb`` is the ``(n_mels, n_fft // 2 + 1)`` filterbank (Griffin-Lim inverts through it).
    """

    def __init__(self, sample_rate: int = 22050, n_fft: int = 1024, hop_length: int = 256,
                 win_length: int = 1024, n_mels: int = 80, f_min: float = 0.0, f_max: float | None = 8000.0,
                 center: bool = False, pad_mode: str = "reflect", mag_eps: float = 1e-9, log: str = "ln",
                 amin: float = 1e-5) -> None:
        super().__init__()
        if log not in ("ln", "log10"):
            raise ConfigError(f"VocoderMel log must be 'ln' or 'log10', got {log!r}")
        if not amin > 0 or mag_eps < 0:
            raise ConfigError(f"need amin > 0 and mag_eps >= 0, got amin={amin}, mag_eps={mag_eps}")
        self.sample_rate, self.n_fft, self.hop_length, self.win_length = sample_rate, n_fft, hop_length, win_length
        self.n_mels, self.f_min, self.f_max, self.center, self.pad_mode = n_mels, f_min, f_max, center, pad_mode
        self.mag_eps, self.log, self.amin = mag_eps, log, amin
        self.n_features = n_mels
        self.pad = 0 if center else (n_fft - hop_length) // 2
        # reflect padding needs more samples than it pads (edge padding by `pad`, or n_fft/2 when centred)
        need = max(self.pad, n_fft // 2 if center else 0)
        self.min_samples = max(need + 1, self.num_samples(1))
        self.min_samples_reason = f"reflect padding by {need} needs more samples than that"
        self.spec = Spectrogram(n_fft, hop_length, win_length, "hann", center=center, pad_mode=pad_mode, power=2.0)
        self.register_constant("fb", mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max, dtype=torch.float64))

    def num_frames(self, n_samples: int | torch.Tensor) -> int | torch.Tensor:
        return stft_lengths(n_samples + 2 * self.pad, self.n_fft, self.hop_length, self.center)

    def compute(self, wav: torch.Tensor) -> torch.Tensor:
        if self.pad:
            wav = nn.functional.pad(wav.unsqueeze(1), (self.pad, self.pad), mode=self.pad_mode).squeeze(1)
        power = self.spec(wav)
        mel = torch.matmul(self.fb.to(power.dtype), torch.sqrt(power + self.mag_eps))
        return torch.log(mel.clamp(min=self.amin)) if self.log == "ln" else torch.log10(mel.clamp(min=self.amin))


class MFCC(ConstantBuffers):
    """Waveform ``(..., T)`` -> MFCC ``(..., n_mfcc, n_frames)``, as ``librosa.feature.mfcc``.

    ``DCT-II(ortho)[:n_mfcc] @ power_to_db(mel power, ref=1, amin=1e-10, top_db)``, then the optional
    sinusoidal ``lifter``. ``mel_kwargs`` go to :class:`MelSpectrogram` (librosa defaults: 128 mels,
    n_fft 2048, power 2).
    """

    def __init__(
        self,
        sample_rate: int = 22050,
        n_mfcc: int = 20,
        lifter: float = 0.0,
        top_db: float | None = 80.0,
        **mel_kwargs,
    ) -> None:
        super().__init__()
        if lifter < 0:
            raise ConfigError(f"lifter must be >= 0, got {lifter!r}")
        self.mel = MelSpectrogram(sample_rate, **mel_kwargs)
        self.n_mfcc, self.lifter, self.top_db = n_mfcc, lifter, top_db
        self.register_constant("dct", dct_matrix(n_mfcc, self.mel.n_mels, dtype=torch.float64))
        lift = _lifter_weights(n_mfcc, lifter) if lifter > 0 else torch.ones(n_mfcc, dtype=torch.float64)
        self.register_constant("lift", lift[:, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        db = power_to_db(self.mel(x), ref=1.0, amin=1e-10, top_db=self.top_db)
        return torch.matmul(self.dct.to(db.dtype), db) * self.lift.to(db.dtype)


def mfcc(x: torch.Tensor, sample_rate: int, n_mfcc: int = 20, **kwargs) -> torch.Tensor:
    """Functional :class:`MFCC` (same keyword arguments): ``(..., T)`` -> ``(..., n_mfcc, L)``."""
    module = MFCC(sample_rate, n_mfcc, **kwargs)
    return module.to(x.device, x.dtype if x.is_floating_point() else None)(x)
