"""Kaldi-compatible log mel filterbank ("fbank"), the front-end of AST, SSAST, PaSST-style and BEATs.

Implements Kaldi's ``compute-fbank-feats`` (as ``torchaudio.compliance.kaldi.fbank`` and
``kaldi-native-fbank`` do) in batched torch:

frames (25 ms / 10 ms, ``snip_edges``) -> dither -> remove DC per frame -> raw log energy -> pre-emphasis
(Kaldi's: ``x[0] -= c * x[0]``) -> window (povey / hanning / hamming / rectangular / blackman) -> zero pad
to a power of two -> |FFT|^2 -> triangular filters equally spaced on Kaldi's mel scale
``1127 ln(1 + f / 700)`` (no area normalisation) -> ``log(max(x, FLT_EPSILON))``.

Input scale: audiozoo passes float waveforms in [-1, 1] as the AST code does. Kaldi tools and
kaldi-native-fbank examples often pass int16-scaled samples; that shifts every log energy by
``2 ln 32768 = 20.79``.

Output layout: ``(..., num_mel_bins, num_frames)`` — audiozoo's ``(B, F, L)`` convention. Kaldi,
torchaudio and kaldi-native-fbank return ``(num_frames, num_mel_bins)``; transpose with ``.mT``.

Kaldi refuses configurations where a mel bin covers no FFT bin (e.g. 128 bins at 16 kHz with a 512-point
FFT); torchaudio and the AST code do not check, and neither does this module (AST uses 128 bins).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import Tensor

from ..errors import AudioError
from .features import FeatureExtractor

FLT_EPSILON = 1.1920928955078125e-07
WINDOWS = ("povey", "hanning", "hamming", "rectangular", "blackman")


def kaldi_mel_scale(freq: Tensor | float) -> Tensor | float:
    """Kaldi's mel scale ``1127 ln(1 + f / 700)`` (natural log)."""
    if isinstance(freq, Tensor):
        return 1127.0 * torch.log1p(freq / 700.0)
    return 1127.0 * math.log1p(freq / 700.0)


def kaldi_window(kind: str, length: int, blackman_coeff: float = 0.42, dtype=torch.float64) -> Tensor:
    """Kaldi's analysis windows (all symmetric, i.e. ``N - 1`` in the denominator)."""
    if kind not in WINDOWS:
        raise AudioError(f"unknown Kaldi window {kind!r}; expected one of {WINDOWS}")
    n = torch.arange(length, dtype=torch.float64)
    a = 2 * math.pi / (length - 1) if length > 1 else 0.0
    if kind == "hanning":
        w = 0.5 - 0.5 * torch.cos(a * n)
    elif kind == "povey":  # Kaldi's default: a Hann window raised to 0.85
        w = (0.5 - 0.5 * torch.cos(a * n)).pow(0.85)
    elif kind == "hamming":
        w = 0.54 - 0.46 * torch.cos(a * n)
    elif kind == "blackman":
        w = blackman_coeff - 0.5 * torch.cos(a * n) + (0.5 - blackman_coeff) * torch.cos(2 * a * n)
    else:
        w = torch.ones(length, dtype=torch.float64)
    return w.to(dtype)


@lru_cache(maxsize=32)
def _mel_banks_cached(num_bins: int, padded: int, sample_rate: float, low_freq: float, high_freq: float) -> Tensor:
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq = nyquist + high_freq
    if not (0.0 <= low_freq < nyquist and 0.0 < high_freq <= nyquist and low_freq < high_freq):
        raise AudioError(
            f"bad mel range: low_freq={low_freq}, high_freq={high_freq} for sample rate {sample_rate}"
        )
    n_fft_bins = padded // 2
    mel_low, mel_high = kaldi_mel_scale(low_freq), kaldi_mel_scale(high_freq)
    delta = (mel_high - mel_low) / (num_bins + 1)
    b = torch.arange(num_bins, dtype=torch.float64).unsqueeze(1)
    left, center, right = mel_low + b * delta, mel_low + (b + 1) * delta, mel_low + (b + 2) * delta
    mel = kaldi_mel_scale(torch.arange(n_fft_bins, dtype=torch.float64) * (sample_rate / padded)).unsqueeze(0)
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    # The Nyquist FFT bin gets no weight in Kaldi (the loop stops at padded/2).
    return torch.nn.functional.pad(banks, (0, 1))


def kaldi_mel_banks(
    num_bins: int, padded_window_size: int, sample_rate: float, low_freq: float = 20.0, high_freq: float = 0.0
) -> Tensor:
    """Kaldi triangular mel filters ``(num_bins, padded_window_size // 2 + 1)`` (float64).

    ``high_freq <= 0`` is relative to Nyquist, as in Kaldi.
    """
    return _mel_banks_cached(int(num_bins), int(padded_window_size), float(sample_rate), float(low_freq),
                             float(high_freq)).clone()


def _frame_indices(num_samples: int, size: int, shift: int, snip_edges: bool) -> Tensor:
    """Sample index of every frame position ``(num_frames, size)``; reflection as Kaldi's ExtractWindow."""
    if snip_edges:
        num_frames = 0 if num_samples < size else 1 + (num_samples - size) // shift
        start = torch.arange(num_frames) * shift
    else:
        num_frames = (num_samples + shift // 2) // shift
        start = torch.arange(num_frames) * shift + shift // 2 - size // 2
    idx = start.unsqueeze(1) + torch.arange(size).unsqueeze(0)
    if not snip_edges:
        # Kaldi mirrors out-of-range samples: s < 0 -> -s - 1, s >= T -> 2T - 1 - s (repeat until in range).
        for _ in range(4):
            idx = torch.where(idx < 0, -idx - 1, idx)
            idx = torch.where(idx >= num_samples, 2 * num_samples - 1 - idx, idx)
    return idx


def kaldi_fbank(
    waveform: Tensor,
    sample_rate: float,
    *,
    num_mel_bins: int = 23,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    window_type: str = "povey",
    blackman_coeff: float = 0.42,
    preemphasis: float = 0.97,
    remove_dc_offset: bool = True,
    dither: float = 0.0,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
    round_to_power_of_two: bool = True,
    snip_edges: bool = True,
    use_energy: bool = False,
    raw_energy: bool = True,
    energy_floor: float = 0.0,
    htk_compat: bool = False,
    use_log_fbank: bool = True,
    use_power: bool = True,
    subtract_mean: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Kaldi fbank of ``waveform (..., T)`` -> ``(..., num_mel_bins [+1 if use_energy], num_frames)``.

    Defaults are Kaldi's (povey window, 23 bins, dither off as in AST/torchaudio usage). AST uses
    ``window_type="hanning", num_mel_bins=128`` at 16 kHz. ``energy_floor`` 0 means no floor (Kaldi).
    With ``use_energy`` the log energy is the first feature, or the last with ``htk_compat``.
    """
    if not isinstance(waveform, Tensor):
        raise AudioError(f"kaldi_fbank expects a torch.Tensor waveform, got {type(waveform).__name__}")
    if not waveform.is_floating_point():
        raise AudioError(f"kaldi_fbank expects a float waveform in [-1, 1], got dtype {waveform.dtype}")
    if waveform.ndim == 0 or waveform.shape[-1] == 0:
        raise AudioError("kaldi_fbank got an empty waveform")
    if sample_rate <= 0:
        raise AudioError(f"sample_rate must be positive, got {sample_rate}")
    size = int(sample_rate * frame_length_ms * 0.001)
    shift = int(sample_rate * frame_shift_ms * 0.001)
    if size < 2 or shift < 1:
        raise AudioError(f"frame length/shift too small: {size}/{shift} samples")
    if waveform.shape[-1] < size and snip_edges:
        raise AudioError(
            f"waveform of {waveform.shape[-1]} samples is shorter than one {frame_length_ms} ms frame ({size} samples)"
        )
    padded = 1 << (size - 1).bit_length() if round_to_power_of_two else size
    lead = waveform.shape[:-1]
    x = waveform.reshape(-1, waveform.shape[-1])
    idx = _frame_indices(x.shape[-1], size, shift, snip_edges).to(x.device)
    frames = x[:, idx]  # (N, L, size)
    dtype = frames.dtype
    eps = torch.tensor(FLT_EPSILON, dtype=dtype, device=x.device)
    if dither != 0.0:
        frames = frames + dither * torch.randn(frames.shape, generator=generator, dtype=dtype).to(x.device)
    if remove_dc_offset:
        frames = frames - frames.mean(dim=-1, keepdim=True)
    if use_energy and raw_energy:
        log_energy = torch.maximum(frames.pow(2).sum(-1), eps).log()
    if preemphasis != 0.0:
        prev = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
        frames = frames - preemphasis * prev
    frames = frames * kaldi_window(window_type, size, blackman_coeff, dtype).to(x.device)
    if use_energy and not raw_energy:
        log_energy = torch.maximum(frames.pow(2).sum(-1), eps).log()
    if padded > size:
        frames = torch.nn.functional.pad(frames, (0, padded - size))
    spec = torch.fft.rfft(frames, dim=-1).abs()
    if use_power:
        spec = spec.pow(2)
    banks = kaldi_mel_banks(num_mel_bins, padded, sample_rate, low_freq, high_freq).to(x.device, dtype)
    mel = spec @ banks.T  # (N, L, bins)
    if use_log_fbank:
        mel = torch.maximum(mel, eps).log()
    if use_energy:
        if energy_floor > 0.0:
            log_energy = torch.clamp(log_energy, min=math.log(energy_floor))
        e = log_energy.unsqueeze(-1)
        mel = torch.cat([mel, e] if htk_compat else [e, mel], dim=-1)
    if subtract_mean:
        mel = mel - mel.mean(dim=1, keepdim=True)
    return mel.transpose(-1, -2).reshape(*lead, mel.shape[-1], mel.shape[1])


class KaldiFbank(torch.nn.Module):
    """Module form of :func:`kaldi_fbank`: ``(B, T)`` or ``(T,)`` -> ``(B, F, L)`` / ``(F, L)``."""

    def __init__(self, sample_rate: float = 16000, **kwargs):
        super().__init__()
        self.sample_rate = sample_rate
        self.kwargs = kwargs

    def forward(self, waveform: Tensor) -> Tensor:
        return kaldi_fbank(waveform, self.sample_rate, **self.kwargs)

    def extra_repr(self) -> str:
        return f"sample_rate={self.sample_rate}, " + ", ".join(f"{k}={v}" for k, v in self.kwargs.items())


class NormalizedKaldiFbank(FeatureExtractor):
    """The AST / SSAST front end: waveform ``(B, T)`` -> normalised Kaldi fbank ``(B, n_mels, L)``, frame lengths.

    Kaldi frames of 25 ms every 10 ms without edge padding (``snip_edges``: ``(T - 400) // 160 + 1`` frames at
    16 kHz, so the shortest input is one 25 ms frame), computed in float64 (in float32 the log-energies of quiet
    bins drift by ~1e-4 from the references: HF's numpy path, torchaudio in double; in float64 ~1e-7; Kaldi's
    per-frame DC removal makes the official global mean subtraction a no-op). Frames past an item's length are
    zeroed *before* normalisation ``(x - norm_mean) / (2 norm_std)``, as the official dataloaders pad, so
    batched and one-by-one features agree. ``max_length``: pad/crop to that many frames (AST's official
    behaviour); ``None``: the longest item's frame count.
    """

    def __init__(self, sample_rate: int = 16000, n_mels: int = 128, window_type: str = "hanning",
                 norm_mean: float = -4.2677393, norm_std: float = 4.5689974, max_length: int | None = None,
                 input_scale: float = 1.0):
        super().__init__()
        self.input_scale = float(input_scale)  # BEATs: waveform x 2^15 before the fbank
        self.sample_rate, self.n_mels, self.n_features = int(sample_rate), int(n_mels), int(n_mels)
        self.window_type, self.norm_mean, self.norm_std = window_type, float(norm_mean), float(norm_std)
        self.max_length = None if max_length is None else int(max_length)
        self.frame_length = int(sample_rate * 0.025)
        self.frame_shift = self.hop_length = int(sample_rate * 0.010)
        self.min_samples, self.min_samples_reason = self.frame_length, "one 25 ms Kaldi frame (frames are not padded)"

    def num_frames(self, n_samples: int | Tensor) -> int | Tensor:
        n = (n_samples - self.frame_length) // self.frame_shift + 1
        return torch.clamp(n, min=0) if isinstance(n, Tensor) else max(n, 0)

    def compute(self, wav: Tensor) -> Tensor:
        return kaldi_fbank(wav.double() * self.input_scale, self.sample_rate, num_mel_bins=self.n_mels,
                           window_type=self.window_type)

    def finish(self, feats: Tensor, frames: Tensor) -> tuple[Tensor, Tensor]:
        valid = torch.arange(feats.shape[-1], device=feats.device)[None, :] < frames[:, None]
        feats = feats.masked_fill(~valid[:, None, :], 0.0)
        if self.max_length is not None:
            target = self.max_length
            if feats.shape[-1] < target:
                feats = torch.nn.functional.pad(feats, (0, target - feats.shape[-1]))
            feats, frames = feats[..., :target], torch.clamp(frames, max=target)
        return (feats - self.norm_mean) / (self.norm_std * 2), frames
