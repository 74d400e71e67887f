"""``embed`` pipeline (CLI ``audiozoo embed --speaker``): audio -> one utterance embedding per input.

The default model is the GE2E / SV2TTS speaker encoder with resemblyzer's released weights
(``ge2e_speaker_encoder.resemblyzer``, docs/models/ge2e.md); any ``embed``-family model works. Each input is
resampled to the model's rate and embedded with the model's own ``embed`` (for GE2E: volume normalisation,
partial utterances of 1.6 s, averaged d-vectors). :meth:`EmbedPipeline.compare` adds the cosine-similarity
matrix of several inputs (:func:`audiozoo.eval.speaker.similarity_matrix`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import AudioError
from ..eval.speaker import similarity_matrix
from ..resolve import resolve_model
from .base import AudioInput, Pipeline

DEFAULT_SPEAKER_MODEL = "ge2e_speaker_encoder.resemblyzer"
MIN_SECONDS = 0.1  # shorter clips hold too few frames (10 at a 10 ms hop) to say anything about a speaker
SILENCE_DBFS = -60.0  # every sample below this: the embedding describes no voice (a warning says so)


class EmbedPipeline(Pipeline):
    """Audio -> ``{"input", "model", "embedding": [embed_dim floats], "embed_dim", "duration_s", ...}``.

    GE2E models also report ``num_partials``; a silent input gets ``"warning"``. Inputs shorter than
    ``min_seconds`` raise :class:`AudioError`.
    """

    task = "embed"
    family = "embed"
    min_seconds: float = MIN_SECONDS
    silence_dbfs: float | None = SILENCE_DBFS

    def __init__(self, model: Any = DEFAULT_SPEAKER_MODEL, **kw: Any):
        super().__init__(**kw)
        self.model_spec = model if isinstance(model, str) else getattr(model, "model_name", type(model).__name__)
        self.model = resolve_model(model, "embed", trained=True).to(self.device).eval()
        self.sample_rate = int(self.model.frontend.sample_rate)

    @torch.no_grad()
    def embed(self, wav: torch.Tensor) -> torch.Tensor:
        """Mono ``(T,)`` at :attr:`sample_rate` -> ``(embed_dim,)``."""
        wav = wav.float().to(self.device)[None]
        if hasattr(self.model, "embed"):
            return self.model.embed(wav)[0].cpu()
        feats, frames = self.model.frontend(wav)
        return self.model(feats, frames)[0].cpu()

    def _forward(self, a: AudioInput) -> dict[str, Any]:
        n = int(a.wav.shape[-1])
        need = max(1, math.ceil(self.min_seconds * self.sample_rate))
        if n < need:
            raise AudioError(f"{a.source}: {n} samples ({1000 * n / self.sample_rate:.1f} ms) is too short to embed; "
                             f"need at least {need} samples ({1000 * need / self.sample_rate:.0f} ms at "
                             f"{self.sample_rate} Hz)")
        emb = self.embed(a.wav)
        out: dict[str, Any] = {"input": a.source, "model": self.model_spec, "embed_dim": int(emb.numel()),
                               "duration_s": round(n / self.sample_rate, 4)}
        if hasattr(self.model, "partial_starts"):
            out["num_partials"] = len(self.model.partial_starts(n))
        peak = float(a.wav.abs().max())
        if self.silence_dbfs is not None and peak < 10.0 ** (self.silence_dbfs / 20.0):
            out["warning"] = (f"the input is silence (peak below {self.silence_dbfs:g} dBFS): its embedding "
                              "describes no voice")
        out["embedding"] = [round(float(v), 7) for v in emb]
        return out

    def compare(self, inputs: Sequence[Any]) -> dict[str, Any]:
        """Embed several inputs: ``{"model", "items": [per-input results], "similarity": (N, N) cosine matrix}``."""
        items = self(list(inputs))
        emb = torch.tensor([r["embedding"] for r in items], dtype=torch.float64)
        sim = similarity_matrix(emb)
        return {"model": self.model_spec, "items": items,
                "similarity": [[round(float(v), 6) for v in row] for row in sim]}
