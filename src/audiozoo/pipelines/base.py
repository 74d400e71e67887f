"""Pipeline base: input (path | bytes | array | dict | list) -> resample -> chunks -> batched forward -> JSON.

Long inputs are cut into fixed windows (with hop) and pushed through the model ``batch_size`` windows at a
time, so memory stays bounded by the batch, not by the recording's length.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..dsp.io import load_audio, resample
from ..errors import AudioError


@dataclass
class AudioInput:
    """One decoded input: mono waveform ``(T,)`` float32 at ``sample_rate``, and where it came from."""

    wav: torch.Tensor
    sample_rate: int
    source: str


def _as_array_input(x: Any, sample_rate: int | None, source: str) -> AudioInput:
    arr = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if sample_rate is None:
        raise AudioError(f"{source}: an array input needs its sample rate ({{'array': ..., 'sampling_rate': sr}})")
    wav, sr = load_audio(arr, array_sample_rate=sample_rate, mono=True)
    return AudioInput(wav, sr, source)


def read_input(x: Any, index: int = 0) -> AudioInput:
    """Decode one pipeline input (keeps its native sample rate)."""
    if isinstance(x, (str, os.PathLike)):
        wav, sr = load_audio(x, mono=True)
        return AudioInput(wav, sr, str(x))
    if isinstance(x, (bytes, bytearray)):
        wav, sr = load_audio(io.BytesIO(bytes(x)), mono=True)
        return AudioInput(wav, sr, f"<bytes #{index}>")
    if isinstance(x, dict):
        arr = x.get("array", x.get("audio"))
        sr = x.get("sampling_rate", x.get("sample_rate"))
        if arr is None:
            raise AudioError(f"input #{index}: a dict input needs 'array' and 'sampling_rate' keys, got {sorted(x)}")
        return _as_array_input(arr, sr, str(x.get("path", f"<array #{index}>")))
    if isinstance(x, (np.ndarray, torch.Tensor)):
        raise AudioError(f"input #{index}: pass arrays as {{'array': x, 'sampling_rate': sr}} so the rate is known")
    raise AudioError(f"input #{index}: unsupported input type {type(x).__name__} (path, bytes, dict)")


def window_starts(t: int, window: int, hop: int) -> list[int]:
    """Start samples of the windows :func:`chunk` cuts from ``t`` samples (every ``hop``, covering the end)."""
    starts = list(range(0, max(t - window, 0) + 1, hop))
    if starts[-1] + window < t:
        starts.append(starts[-1] + hop)
    return starts


def chunk(wav: torch.Tensor, window: int, hop: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cut ``(T,)`` into windows ``(N, window)``; returns windows, valid lengths and start samples.

    The last window is zero-padded; a signal shorter than one window gives one padded window.
    """
    t = wav.shape[-1]
    starts = window_starts(t, window, hop)
    out = torch.zeros(len(starts), window, dtype=wav.dtype)
    lengths = torch.zeros(len(starts), dtype=torch.long)
    for i, s in enumerate(starts):
        seg = wav[s : s + window]
        out[i, : seg.shape[-1]] = seg
        lengths[i] = seg.shape[-1]
    return out, lengths, torch.tensor(starts)


def batched(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


class Pipeline:
    """Base class: subclasses set ``sample_rate`` and implement ``_process(AudioInput) -> dict``."""

    task: str = ""
    sample_rate: int = 16000

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 8, progress: bool = False):
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.progress = progress

    def preprocess(self, x: Any, index: int = 0) -> AudioInput:
        a = read_input(x, index)
        if a.sample_rate != self.sample_rate:
            a = AudioInput(resample(a.wav, a.sample_rate, self.sample_rate), self.sample_rate, a.source)
        return a

    def _process(self, a: AudioInput) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, inputs: Any) -> dict[str, Any] | list[dict[str, Any]]:
        single = not isinstance(inputs, (list, tuple))
        items: Iterable = [inputs] if single else inputs
        results = []
        for i, x in enumerate(tqdm(items, desc=self.task, disable=not self.progress or single)):
            r = self._process(self.preprocess(x, i))
            results.append({"input": r.pop("input", None) or self.preprocess_source(x, i), **r})
        return results[0] if single else results

    @staticmethod
    def preprocess_source(x: Any, i: int) -> str:
        return str(x) if isinstance(x, (str, os.PathLike)) else f"<input #{i}>"


def ensure_dir(path: str | os.PathLike) -> Path:
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    return p
