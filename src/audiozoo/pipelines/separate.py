"""Source separation: a mixture -> one waveform per source (Demucs, Conv-TasNet, any ``separate`` model).

>>> sep = audiozoo.pipeline("separate", model="path/to/checkpoint_folder")
>>> out = sep("song.wav")           # {"input", "sources": {name: (C, T) tensor}, "sample_rate", ...}
>>> sep.separate_to_files("song.wav", "out/")   # out/<name>.wav, streamed: bounded memory on long files

The mixture is read with its channels, converted to the model's channel count (a mono file is duplicated for a
stereo model; a stereo file is averaged for a mono model) and resampled to the model's rate; sources come out at
the model's rate. Long inputs run in windows of ``chunk_seconds`` (default: the model's training segment)
overlapping by ``overlap`` (a fraction), cross-faded linearly (:func:`~.streaming.overlap_add_stream`), as
Demucs' ``apply_model(split=True)``; :meth:`SeparatePipeline.separate_to_files` writes each finished piece
to disk at once; a file input is also read window by window (:class:`~audiozoo.dsp.io.AudioFileStream`:
decoded, mixed and resampled block by block, equal to reading it whole), so memory holds one window whatever
the file's length.

Query-conditioned separators (USS: ``forward(mixture, condition)``, a ``condition_dim`` attribute) separate what a
query names: ``query="LABEL"`` (a class of the model's condition space: a one-hot condition for ``onehot`` models;
for ``probabilities`` models the query tagger's probabilities of each window kept only at that class, as the
official ``separate_by_class_ids``) or ``query_audio=CLIP`` (the tagger's probabilities or embedding of an example
clip). The tagger is ``query_model`` or the model config's ``query_model``. The one output source is named after the
label (``target`` for an audio query). A fixed-source separator refuses a query.
"""

from __future__ import annotations

import io
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..data.queries import label_condition, tagger_condition
from ..dsp.io import AudioFileStream, audio_info, load_audio, resample
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
        query, query_audio, query_model: a query-conditioned separator's label or example clip, and its tagger
            (module docstring).
        device, progress: as :class:`~.base.Pipeline`.
    """

    task = "separate"
    family = "separate"

    def __init__(self, model: Any, arch: str | None = None, device: str | torch.device = "cpu",
                 chunk_seconds: float | None = None, overlap: float = 0.25, progress: bool = False,
                 query: str | None = None, query_audio: Any = None, query_model: Any = None):
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
        self._setup_query(query, query_audio, query_model)

    # ---- queries (query-conditioned separators) -----------------------------------------------------
    def _setup_query(self, query: str | None, query_audio: Any, query_model: Any) -> None:
        m, cfg = self.model, getattr(self.model, "config", None)
        self.condition: Tensor | None = None  # a fixed condition (1, D), or
        self.query_index: int | None = None  # a class whose tagger score on each window is the condition
        self.tagger: nn.Module | None = None
        if getattr(m, "condition_dim", None) is None:
            if query is not None or query_audio is not None:
                raise ConfigError(f"{self.model_spec} separates fixed sources {self.sources}; a query (--query / "
                                  "--query-audio) needs a query-conditioned separator such as USS")
            return
        if (query is None) == (query_audio is None):
            raise ConfigError(f"{self.model_spec} is query-conditioned: give one of query=LABEL (--query) or "
                              "query_audio=CLIP (--query-audio)")
        kind = str(getattr(cfg, "query_type", "probabilities"))
        if kind != "onehot" or query_audio is not None:
            spec = query_model or getattr(cfg, "query_model", None)
            if spec is None:
                raise ConfigError(f"{self.model_spec} ({kind} queries) needs its query tagger: give query_model "
                                  "(--query-model)")
            self.tagger = resolve_model(spec, "classify", trained=True).to(self.device).eval()
        dim = int(m.condition_dim)
        if query_audio is not None:
            if kind == "onehot":
                raise ConfigError(f"{self.model_spec} takes one-hot label queries: use query=LABEL (--query)")
            clip, _, _ = self.read(query_audio)
            self.condition = self._tag(clip.mean(0, keepdim=True), kind)
            self.sources = ["target"]
            return
        if kind == "embedding":
            raise ConfigError(f"{self.model_spec} is conditioned on tagger embeddings: query it with an example "
                              "clip (query_audio / --query-audio), not a label")
        meta = getattr(self.tagger if self.tagger is not None else m, "pretrained_metadata", None) or {}
        labels = [str(x) for x in (getattr(m, "labels", None) or meta.get("labels") or
                                   (getattr(m, "pretrained_metadata", None) or {}).get("labels") or [])]
        if len(labels) != dim:
            raise ConfigError(f"{self.model_spec}: no names for its {dim} condition classes (config.labels or the "
                              f"tagger's labels), so a label query is impossible; use query_audio")
        lower = [x.lower() for x in labels]
        if str(query).lower() not in lower:
            raise ConfigError(f"unknown query label {query!r}; this model knows {labels}")
        idx = lower.index(str(query).lower())
        if kind == "onehot":
            self.condition = label_condition([idx], dim).to(self.device)
        else:
            self.query_index = idx
        self.sources = ["".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in labels[idx]) or "target"]

    def _tag(self, wav: Tensor, kind: str) -> Tensor:
        """The tagger's condition ``(B, D)`` of ``wav (B, T)`` at the model's rate."""
        assert self.tagger is not None
        cond = tagger_condition(self.tagger, wav.to(self.device), self.sample_rate, kind)
        if cond.shape[-1] != int(self.model.condition_dim):
            raise ConfigError(f"the query tagger gives {cond.shape[-1]}-d conditions, the separator takes "
                              f"{int(self.model.condition_dim)}")
        return cond

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

    def _open_stream(self, x: Any) -> AudioFileStream | None:
        """A path whose frame count is exact, opened for reading window by window (``None``: read it whole)."""
        if not isinstance(x, (str, os.PathLike)):
            return None
        if audio_info(x)["format"] == "MP3":
            return None
        return AudioFileStream(x, self.sample_rate, self.channels)

    # ---- separation -------------------------------------------------------------------------------
    def _window(self, seg: Tensor) -> Tensor:
        """The model on one window ``(C, n) -> (S, C, n)`` (too-short windows are zero-padded, then trimmed)."""
        n = seg.shape[-1]
        cfg = getattr(self.model, "config", None)
        need = max(int(getattr(cfg, "kernel_size", 1)), int(getattr(cfg, "n_fft", 0)) // 2 + 1)
        if n < need:
            seg = torch.nn.functional.pad(seg, (0, need - n))
        if getattr(self.model, "condition_dim", None) is None:
            y = self.model(seg[None].to(self.device))[0]
        else:
            cond = self.condition
            if cond is None:  # a label query on tagger probabilities: this window's score of that class
                scores = self._tag(seg.mean(0, keepdim=True), "probabilities")
                cond = label_condition([int(self.query_index or 0)], scores.shape[-1], scores)
            y = self.model(seg[None].to(self.device), cond)[0]
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

        with ExitStack() as opened:  # the input stream and the output files close whatever happens
            stream = self._open_stream(x)
            if stream is not None:
                opened.enter_context(stream)
            mix, rate, name = (stream, stream.file_rate, str(x)) if stream is not None else self.read(x, index)
            out = Path(out_dir)
            out.mkdir(parents=True, exist_ok=True)
            paths = {s: out / f"{s}.wav" for s in self.sources}
            files = [opened.enter_context(sf.SoundFile(str(p), "w", samplerate=self.sample_rate,
                                                       channels=self.channels, subtype="FLOAT"))
                     for p in paths.values()]
            peak = 0.0
            for piece in self.stream(mix):
                peak = max(peak, float(piece.abs().max()))
                for f, y in zip(files, piece):
                    f.write(y.T.numpy())
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
