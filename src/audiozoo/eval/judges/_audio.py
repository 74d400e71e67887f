"""Input handling shared by the judges (private): waveforms in any accepted form -> 1-D float32 arrays."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from audiozoo.dsp.io import resample
from audiozoo.errors import AudioError, ConfigError

WavBatch = Any  # torch.Tensor / np.ndarray (T,) or (B, T), or a sequence of 1-D waveforms


def check_rate(sample_rate: Any) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ConfigError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    return int(sample_rate)


def as_wav_list(wavs: WavBatch, sample_rate: int, target_rate: int, what: str) -> tuple[list[np.ndarray], bool]:
    """Split ``wavs`` into 1-D float32 waveforms at ``target_rate``.

    Returns ``(list, single)``: ``single`` is True when one ``(T,)`` waveform was given (the caller then
    returns a scalar-shaped result).
    """
    sample_rate = check_rate(sample_rate)
    if isinstance(wavs, (torch.Tensor, np.ndarray)):
        arr = wavs.detach().cpu().float().numpy() if isinstance(wavs, torch.Tensor) else np.asarray(wavs)
        if arr.ndim == 1:
            items, single = [arr], True
        elif arr.ndim == 2:
            items, single = list(arr), False
        else:
            raise AudioError(f"{what}: expected a waveform (T,) or a batch (B, T), got shape {tuple(arr.shape)}")
    elif isinstance(wavs, Sequence) and not isinstance(wavs, (str, bytes)):
        items, single = list(wavs), False
    else:
        raise AudioError(f"{what}: expected a tensor/array (T,) or (B, T) or a list of 1-D waveforms, "
                         f"got {type(wavs).__name__}")
    if not items:
        raise AudioError(f"{what}: no waveforms given")
    out = []
    for i, w in enumerate(items):
        a = w.detach().cpu().float().numpy() if isinstance(w, torch.Tensor) else np.asarray(w)
        if a.dtype.kind not in "fiu":
            raise AudioError(f"{what}: waveform {i} is not numeric (dtype {a.dtype})")
        a = np.ascontiguousarray(a, dtype=np.float32)
        if a.ndim != 1:
            raise AudioError(f"{what}: waveform {i} must be 1-D (T,), got shape {a.shape}")
        if a.size == 0:
            raise AudioError(f"{what}: waveform {i} is empty")
        if not np.isfinite(a).all():
            raise AudioError(f"{what}: waveform {i} contains NaN or Inf")
        if sample_rate != target_rate:
            a = np.asarray(resample(a, sample_rate, target_rate), dtype=np.float32)
        out.append(a)
    return out, single


def num_threads() -> int:
    """Threads for the ONNX / CTranslate2 runtimes: torch's setting (so OMP_NUM_THREADS=1 is respected)."""
    return max(1, torch.get_num_threads())
