"""Source separation: a mixture -> one waveform per source (Demucs, Conv-TasNet, any ``separate`` model).

>>> sep = audiozoo.pipeline("separate", model="path/to/checkpoint_folder")
>>> out = sep("song.wav")           # {"input", "sources": {name: (C, T) tensor}, "sample_rate", ...}
>>> sep.separate_to_files("song.wav", "out/")   # out/<name>.wav, streamed: bounded memory on long files

The mixture is read with its channels, converted to the model's channel count (a mono file is duplicated for a
stereo model; a stereo file is averaged for a mono model) and resampled to the model's rate; sources come out at
the model's rate. Long inputs run in windows of ``chunk_seconds`` (default: the model's training segment)
overlapping by ``overlap`` (a fraction), cross-faded linearly (:func:`~.streaming.overlap_add_stream`), as
Demucs' ``apply_model(split=True)``; :meth:`SeparatePipeline.separate_to_files` writes each finished piece
to disk at once, so memory holds the input and one window, not the outputs.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..dsp.io import load_audio, resample
from ..errors import AudioError, ConfigError
from ..resolve import resolve_model
from .base import Pipeline
from .streaming import StreamingMixin, overlap_add_stream

__all__ = ["SeparatePipeline"]


class SeparatePipeline(StreamingMixin, Pipeline):
    """Separate mixtures with a ``separate`` model.

    Args:
        model: registry weight set ``name.tag``, checkpoint folder, ``.safetensors`` file (with ``arch``) or a
            module (a bare untrained architecture name is refused).
        arch: architecture of a bare weights file.
        chunk_seconds: window length (default: the model config's ``segment_seconds``, else 10 s).
        overlap: overlap between windows, a fraction of the window in ``[0, 0.5]`` (Demucs: 0.25).
        device, progress: as :class:`~.base.Pipeline`.
    """

    task = "separate"
    family = "separate"

    def __init__(self, model: Any, arch: str | None = None, device: str | torch.device = "cpu",
                 chunk_seconds: float | None = None, overlap: float = 0.25, progress: bool = False):
        super().__init__(device=device, batch_size=1, progress=progress)
        m = resolve_model(model, "separate", trained=True, arch=arch)
        for attr in ("sources", "sample_rate", "audio_channels"):
            if getattr(m, attr, None) is None:
                raise ConfigError(f"{type(m).__name__} is not a separator (no {attr!r})")
        self.model: nn.Module = m.to(self.device).eval()
        self.model_spec = str(model) if not isinstance(model, nn.Module) else type(model).__name__
        self.sample_rate = int(m.sample_rate)
        self.channels = int(m.audio_channels)
        self.sources = list(m.sources)
        seg = chunk_seconds if chunk_seconds is not None else getattr(getattr(m, "config", None), "segment_seconds",
                                                                      10.0)
        if not seg or seg <= 0:
            raise ConfigError(f"chunk_seconds must be > 0, got {chunk_seconds}")
        if not 0.0 <= overlap <= 0.5:
            raise ConfigError(f"overlap must be a fraction in [0, 0.5], got {overlap}")
        self.window = max(1, int(round(float(seg) * self.sample_rate)))
        self.overlap = int(round(overlap * self.window))

    # ---- input ------------------------------------------------------------------------------------
    def read(self, x: Any, index: int = 0) -> tuple[Tensor, int, str]:
        """``(mixture (C, T) at the model's rate and channel count, input rate, source name)``."""
        if isinstance(x, (str, os.PathLike)):
            wav, sr = load_audio(x, mono=False)
            name = str(x)
        elif isinstance(x, (bytes, bytearray)):
            wav, sr = load_audio(io.BytesIO(bytes(x)), mono=False)
            name = f"<bytes #{index}>"
        elif isinstance(x, dict):
            arr = x.get("array", x.get("audio"))
            rate = x.get("sampling_rate", x.get("sample_rate"))
            if arr is None or rate is None:
                raise AudioError(f"input #{index}: a dict input needs 'array' and 'sampling_rate', got {sorted(x)}")
            arr = arr if isinstance(arr, Tensor) else torch.as_tensor(np.asarray(arr))
            wav, sr = load_audio(arr, mono=False, array_sample_rate=int(rate))
            name = str(x.get("path", f"<array #{index}>"))
        else:
            raise AudioError(f"input #{index}: unsupported input {type(x).__name__} (path, bytes, "
                             "{'array', 'sampling_rate'})")
        if wav.shape[0] != self.channels:
            wav = wav.mean(0, keepdim=True).expand(self.channels, -1).contiguous()
        if sr != self.sample_rate:
            wav = resample(wav, sr, self.sample_rate)
        if wav.shape[-1] == 0:
            raise AudioError(f"{name}: no samples")
        return wav.float(), int(sr), name

    # ---- separation -------------------------------------------------------------------------------
    def _window(self, seg: Tensor) -> Tensor:
        """The model on one window ``(C, n) -> (S, C, n)`` (too-short windows are zero-padded, then trimmed)."""
        n = seg.shape[-1]
        need = int(getattr(getattr(self.model, "config", None), "kernel_size", 1))
        if n < need:
            seg = torch.nn.functional.pad(seg, (0, need - n))
        y = self.model(seg[None].to(self.device))[0]
        return y[..., :n].float().cpu()

    def stream(self, mixture: Tensor):
        """Yield finished pieces ``(S, C, n)`` of the separation of ``mixture (C, T)`` (model rate)."""
        return overlap_add_stream(mixture, self._window, self.window, self.overlap)

    def separate(self, mixture: Tensor) -> Tensor:
        """``(C, T) -> (S, C, T)`` in memory."""
        return torch.cat(list(self.stream(mixture)), -1)

    def separate_to_files(self, x: Any, out_dir: str | os.PathLike, index: int = 0) -> dict[str, Any]:
        """Separate ``x`` and write ``out_dir/<source>.wav`` (32-bit float, model rate) piece by piece."""
        import soundfile as sf

        mix, rate, name = self.read(x, index)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {s: out / f"{s}.wav" for s in self.sources}
        files = [sf.SoundFile(str(p), "w", samplerate=self.sample_rate, channels=self.channels, subtype="FLOAT")
                 for p in paths.values()]
        peak = 0.0
        try:
            for piece in self.stream(mix):
                peak = max(peak, float(piece.abs().max()))
                for f, y in zip(files, piece):
                    f.write(y.T.numpy())
        finally:
            for f in files:
                f.close()
        return {"input": name, "files": {s: str(p) for s, p in paths.items()}, "sample_rate": self.sample_rate,
                "input_rate": rate, "seconds": mix.shape[-1] / self.sample_rate, "peak": peak,
                "model": self.model_spec}

    # ---- the three pipeline stages ------------------------------------------------------------------
    def preprocess(self, x: Any, index: int = 0) -> tuple[Tensor, int, str]:
        """``(mixture (C, T) at the model's rate and channel count, input rate, source name)``."""
        return self.read(x, index)

    def _forward(self, item: tuple[Tensor, int, str]) -> dict[str, Any]:
        mix, rate, name = item
        est = self.separate(mix)
        return {"input": name, "sources": dict(zip(self.sources, est)), "mixture": mix,
                "sample_rate": self.sample_rate, "input_rate": rate, "model": self.model_spec}
