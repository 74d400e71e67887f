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
from ..errors import AudioError, ConfigError


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
    """Base of every pipeline: ``preprocess`` -> ``_forward`` -> ``postprocess`` per input, with parameter
    routing (as HF transformers' pipelines).

    ``pipe(inputs, **options)``: ``inputs`` is one input or a list; call-time ``options`` are split by
    :meth:`_sanitize_parameters` into the keyword arguments of the three stages (an option a pipeline does not
    know is a :class:`ConfigError`, never silently ignored). Subclasses set ``task``, ``family`` (of the model
    they run; ``None`` for none) and ``sample_rate``, and implement ``_forward``; the default ``preprocess``
    decodes an audio input and resamples it to ``sample_rate``; the default ``postprocess`` returns the dict.
    """

    task: str = ""
    family: str | None = None
    sample_rate: int = 16000
    #: call-time options per stage: {"preprocess": (...), "forward": (...), "postprocess": (...)}
    call_options: dict[str, tuple[str, ...]] = {}

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 8, progress: bool = False):
        self.device = torch.device(device)
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.progress = progress

    # ---- the three stages ---------------------------------------------------------------------------
    def _sanitize_parameters(self, **options: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """Route call-time options to ``(preprocess, _forward, postprocess)`` by :attr:`call_options`."""
        stages: tuple[dict[str, Any], dict[str, Any], dict[str, Any]] = ({}, {}, {})
        for k, v in options.items():
            for i, stage in enumerate(("preprocess", "forward", "postprocess")):
                if k in self.call_options.get(stage, ()):
                    stages[i][k] = v
                    break
            else:
                known = sorted(o for opts in self.call_options.values() for o in opts)
                raise ConfigError(f"{type(self).__name__} has no call-time option {k!r}; options: {known or 'none'}")
        return stages

    def preprocess(self, x: Any, index: int = 0) -> AudioInput:
        """Decode one input (path, bytes, ``{"array", "sampling_rate"}``) and resample it to ``sample_rate``."""
        a = read_input(x, index)
        if a.sample_rate != self.sample_rate:
            a = AudioInput(resample(a.wav, a.sample_rate, self.sample_rate), self.sample_rate, a.source)
        return a

    def _forward(self, inputs: Any) -> dict[str, Any]:
        process = getattr(self, "_process", None)  # pipelines written before the three-stage split
        if process is None:  # pragma: no cover - abstract
            raise NotImplementedError
        return process(inputs)

    def postprocess(self, outputs: dict[str, Any]) -> dict[str, Any]:
        return outputs

    def __call__(self, inputs: Any, **options: Any) -> dict[str, Any] | list[dict[str, Any]]:
        pre, fwd, post = self._sanitize_parameters(**options)
        single = not isinstance(inputs, (list, tuple))
        items: Iterable = [inputs] if single else inputs
        results = []
        for i, x in enumerate(tqdm(items, desc=self.task, disable=not self.progress or single)):
            r = self.postprocess(self._forward(self.preprocess(x, i, **pre), **fwd), **post)
            results.append({"input": r.pop("input", None) or self.preprocess_source(x, i), **r})
        return results[0] if single else results

    @staticmethod
    def preprocess_source(x: Any, i: int) -> str:
        return str(x) if isinstance(x, (str, os.PathLike)) else f"<input #{i}>"


def ensure_dir(path: str | os.PathLike) -> Path:
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    return p
