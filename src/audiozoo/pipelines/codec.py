"""Neural codec: waveform -> discrete codes (a self-describing ``.safetensors`` file) -> waveform.

>>> codec = audiozoo.pipeline("codec", model="runs/my_codec/best")       # NAME.TAG or a checkpoint folder
>>> out = codec("speech.wav")               # {"codes": (Q, L) int64, "sample_rate", "frame_rate", "bitrate", ...}
>>> codec.save_codes(out, "speech.codes.safetensors")
>>> wav, sr = CodecPipeline.decode_file("speech.codes.safetensors")   # the recorded model decodes it

The codes file holds one tensor ``codes (Q, L)`` (int16, or int32 for codebooks over 32767 entries) and string
metadata: the format and its version, the model (its registry architecture and the spec it was loaded from), a
fingerprint of its codebooks (so decoding with other weights -- a different model, or the same architecture
trained again -- is refused with a clear error), the sample rate, frame rate, hop, number of codebooks used,
codebook size, bitrate and the number of input samples (the decoder's output is trimmed to it). No pickle.

Long inputs (over :attr:`CodecPipeline.max_offline_seconds`, or whenever ``chunk_seconds`` is set) are encoded and
decoded in chunks with context on both sides (:class:`~audiozoo.pipelines.streaming.StreamingMixin`), in memory
bounded by the chunk. The stitched result is close to, not always equal to, offline coding: the EnCodec /
WavTokenizer encoders end in LSTMs, and WavTokenizer's decoder has GroupNorms and a self-attention block over the
whole sequence, so their receptive field is the whole signal and a finite context truncates it. Measured in
tests/pipelines/test_codec.py (tiny models, 0.25 s chunks, 0.125 s context): codes identical for both; decoded audio
equal to offline up to float rounding for EnCodec (165 dB SNR), 9 dB SNR for WavTokenizer.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from ..dsp.io import save_audio
from ..errors import AudioError, CheckpointError, ConfigError
from ..resolve import resolve_model, split_spec
from .base import AudioInput, Pipeline
from .streaming import StreamingMixin

__all__ = ["CODES_FORMAT", "CodecPipeline", "codebook_fingerprint", "load_codes"]

CODES_FORMAT = "audiozoo-codes"
CODES_VERSION = "1"


def codebook_fingerprint(model: torch.nn.Module) -> str:
    """sha256 (16 hex digits) of the model's codebooks (every ``*embed`` buffer, in state-dict order): what maps
    codes to latents, so two models decode a file alike only if these agree."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        if k.endswith(".embed"):
            h.update(k.encode())
            h.update(v.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def load_codes(path: str | os.PathLike) -> tuple[Tensor, dict[str, str]]:
    """Read a codes file: ``(codes (Q, L) int64, metadata)``; clear errors for other files."""
    p = Path(path)
    if not p.is_file():
        raise AudioError(f"codes file not found: {p}")
    try:
        tensors = load_file(str(p))
        with safe_open(str(p), framework="pt") as f:
            meta = dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise AudioError(f"{p}: not a safetensors codes file ({e})") from e
    if meta.get("format") != CODES_FORMAT or "codes" not in tensors:
        raise AudioError(f"{p}: not an audiozoo codes file (format {meta.get('format')!r}); write one with "
                         "'audiozoo codec encode'")
    if meta.get("version") != CODES_VERSION:
        raise AudioError(f"{p}: codes file version {meta.get('version')!r}; this audiozoo reads {CODES_VERSION}")
    codes = tensors["codes"].long()
    if codes.ndim != 2:
        raise AudioError(f"{p}: codes must be (Q, L), got {tuple(codes.shape)}")
    return codes, meta


class CodecPipeline(StreamingMixin, Pipeline):
    """Encode audio to codes and decode codes to audio with a codec (family ``codec``).

    Args:
        model: ``NAME.TAG``, a checkpoint folder or ``.safetensors`` file, or a codec module.
        n_q: codebooks to use (models with residual codebooks; default all).
        bandwidth: target bitrate in kbps (models whose ``encode`` takes ``bandwidth``, e.g. EnCodec).
        chunk_seconds, context_seconds: chunked coding (default: only inputs over ``max_offline_seconds``, in
            ``long_chunk_seconds`` chunks); context on each side of a chunk.
        trained: refuse bare architecture names (random weights); tests and benchmarks may pass False.

    ``__call__(audio)`` -> ``{"codes": (Q, L) int64, "num_samples", "sample_rate", "frame_rate", "num_codebooks",
    "codebook_size", "bitrate", "input"}``.
    """

    task = "codec"
    max_offline_seconds: float = 30.0
    long_chunk_seconds: float = 10.0

    def __init__(self, model: Any = None, device: str | torch.device = "cpu", n_q: int | None = None,
                 bandwidth: float | None = None, chunk_seconds: float | None = None, context_seconds: float = 1.0,
                 progress: bool = False, trained: bool = True):
        super().__init__(device=device, batch_size=1, progress=progress)
        if model is None:
            raise ConfigError("the codec pipeline needs model= (a trained codec: NAME.TAG or a checkpoint folder); "
                              "no speech codec is shipped yet")
        self.spec = str(Path(model).resolve()) if isinstance(model, (str, os.PathLike)) and Path(model).exists() \
            else (model if isinstance(model, str) else getattr(model, "model_name", type(model).__name__))
        self.model = resolve_model(model, "codec", trained=trained).to(self.device).eval()
        if not getattr(self.model, "codebook_size", None):
            raise ConfigError(f"{type(self.model).__name__} is a continuous autoencoder (no codebooks): it has no "
                              "discrete codes to write")
        self.sample_rate = int(self.model.sample_rate)
        self.hop_length = int(self.model.hop_length)
        params = inspect.signature(self.model.encode).parameters
        if bandwidth is not None and "bandwidth" not in params:
            raise ConfigError(f"{type(self.model).__name__} has one bitrate: --bandwidth is not supported (use n_q "
                              "where it has several codebooks)")
        if n_q is not None and not 1 <= int(n_q) <= int(self.model.num_codebooks):
            raise ConfigError(f"n_q must be in [1, {self.model.num_codebooks}] for this model, got {n_q}")
        self.encode_kwargs: dict[str, Any] = {}
        if n_q is not None:
            self.encode_kwargs["n_q"] = int(n_q)
        if bandwidth is not None:
            self.encode_kwargs["bandwidth"] = float(bandwidth)
        if chunk_seconds is not None and chunk_seconds <= 0:
            raise ConfigError(f"chunk_seconds must be > 0, got {chunk_seconds}")
        if context_seconds < 0:
            raise ConfigError(f"context_seconds must be >= 0, got {context_seconds}")
        self.chunk_seconds, self.context_seconds = chunk_seconds, float(context_seconds)
        self.fingerprint = codebook_fingerprint(self.model)

    # ---- chunking -----------------------------------------------------------------------------------
    def _chunk_frames(self, n_frames: int) -> tuple[int, int] | None:
        """``(chunk, context)`` in frames, or None for offline coding."""
        secs = self.chunk_seconds
        if secs is None:
            if n_frames * self.hop_length <= self.max_offline_seconds * self.sample_rate:
                return None
            secs = self.long_chunk_seconds
        frames = lambda s: max(1, round(s * self.sample_rate / self.hop_length))  # noqa: E731
        return frames(secs), (frames(self.context_seconds) if self.context_seconds > 0 else 0)

    # ---- encode / decode ----------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, wav: Tensor) -> Tensor:
        """Waveform ``(T,)`` at :attr:`sample_rate` -> codes ``(Q, ceil(T / hop))`` int64."""
        if wav.ndim != 1 or wav.shape[-1] < 1:
            raise AudioError(f"encode expects a non-empty mono waveform (T,), got {tuple(wav.shape)}")
        hop = self.hop_length
        n = -(-wav.shape[-1] // hop)
        x = torch.nn.functional.pad(wav.float(), (0, n * hop - wav.shape[-1])).to(self.device)
        spans = self._chunk_frames(n)
        if spans is None:
            return self.model.encode(x[None], **self.encode_kwargs)[0].cpu()
        frames = x.view(n, hop).t()  # (hop, L): chunks are cut on whole frames

        def fn(w: Tensor) -> Tensor:
            return self.model.encode(w.t().reshape(1, -1), **self.encode_kwargs)[0]

        return torch.cat(list(self.stream_chunks(frames, fn, *spans)), -1)[:, :n].cpu()

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """Codes ``(Q, L)`` -> waveform ``(L * hop,)`` at :attr:`sample_rate`."""
        if codes.ndim != 2 or codes.is_floating_point():
            raise AudioError(f"decode expects integer codes (Q, L), got {tuple(codes.shape)} {codes.dtype}")
        k = int(self.model.codebook_size)
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= k):
            raise AudioError(f"codes out of range for a codebook of {k} entries")
        codes = codes.long().to(self.device)
        spans = self._chunk_frames(codes.shape[-1])
        if spans is None:
            return self.model.decode(codes[None])[0].float().cpu()

        def fn(c: Tensor) -> Tensor:
            return self.model.decode(c[None])[0]

        out = torch.cat(list(self.stream_chunks(codes, fn, *spans, scale=self.hop_length)), -1)
        return out[: codes.shape[-1] * self.hop_length].float().cpu()

    def _process(self, a: AudioInput) -> dict[str, Any]:
        codes = self.encode(a.wav)
        q = codes.shape[0]
        return {"codes": codes, "num_samples": int(a.wav.shape[-1]), "sample_rate": self.sample_rate,
                "frame_rate": float(self.model.frame_rate), "hop_length": self.hop_length, "num_codebooks": q,
                "codebook_size": int(self.model.codebook_size),
                "bitrate": q * math.log2(int(self.model.codebook_size)) * float(self.model.frame_rate),
                "input": a.source}

    # ---- files --------------------------------------------------------------------------------------
    def metadata(self, result: dict[str, Any]) -> dict[str, str]:
        """The string metadata recorded with ``result``'s codes."""
        meta = {"format": CODES_FORMAT, "version": CODES_VERSION, "model": str(self.spec),
                "model_name": str(getattr(self.model, "model_name", type(self.model).__name__)),
                "codebook_fingerprint": self.fingerprint, "source": str(result.get("input", ""))}
        for k in ("num_samples", "sample_rate", "frame_rate", "hop_length", "num_codebooks", "codebook_size",
                  "bitrate"):
            meta[k] = json.dumps(result[k])
        meta.update({f"encode_{k}": json.dumps(v) for k, v in self.encode_kwargs.items()})
        return meta

    def save_codes(self, result: dict[str, Any], path: str | os.PathLike) -> Path:
        """Write ``result`` (from ``__call__``) as a codes file (int16 codes when the codebook allows)."""
        codes = result["codes"]
        dtype = torch.int16 if int(self.model.codebook_size) <= 32767 else torch.int32
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        save_file({"codes": codes.to(dtype).contiguous()}, str(p), metadata=self.metadata(result))
        return p

    def check_codes(self, meta: dict[str, str], source: str = "codes") -> None:
        """Refuse codes written by another model (architecture, rates, codebook size or codebook weights)."""
        mine = {"model_name": str(getattr(self.model, "model_name", type(self.model).__name__)),
                "sample_rate": json.dumps(self.sample_rate), "hop_length": json.dumps(self.hop_length),
                "codebook_size": json.dumps(int(self.model.codebook_size)),
                "codebook_fingerprint": self.fingerprint}
        bad = [f"{k}: file {meta.get(k)!r} vs model {v!r}" for k, v in mine.items() if meta.get(k) != v]
        if bad:
            raise CheckpointError(f"{source} was encoded by another model ({meta.get('model')!r}) than {self.spec!r}; "
                                  f"decode it with that model ({'; '.join(bad)})")
        if int(json.loads(meta.get("num_codebooks", "0"))) > int(self.model.num_codebooks):
            raise CheckpointError(f"{source} has more codebooks than {self.spec!r} ({self.model.num_codebooks})")

    def decode_codes_file(self, path: str | os.PathLike) -> Tensor:
        """Decode a codes file with this pipeline's model (checked against the file's record) -> ``(T,)``."""
        codes, meta = load_codes(path)
        self.check_codes(meta, str(path))
        wav = self.decode(codes)
        n = int(json.loads(meta.get("num_samples", "0"))) or wav.shape[-1]
        return wav[:n]

    @classmethod
    def decode_file(cls, path: str | os.PathLike, model: Any = None, out: str | os.PathLike | None = None,
                    **kwargs: Any) -> tuple[Tensor, int]:
        """Decode a codes file -> ``(wav (T,), sample_rate)``, with ``model`` or the model the file records;
        writes ``out`` (a .wav) when given."""
        _, meta = load_codes(path)
        spec = model if model is not None else meta.get("model")
        if spec is None:
            raise AudioError(f"{path} records no model; pass one")
        # a composite spec ("folder+vocoder") records each part; a recorded folder must still exist
        if model is None and any(os.path.isabs(p) and not Path(p).exists() for p in split_spec(str(spec))):
            raise CheckpointError(f"{path} was encoded by {spec}, which no longer exists; pass the model (-m)")
        pipe = cls(spec, **kwargs)
        wav = pipe.decode_codes_file(path)
        if out is not None:
            save_audio(out, wav, pipe.sample_rate)
        return wav, pipe.sample_rate
