"""``audio-classification`` pipeline (CLI verb ``tag``): audio -> top-k labels, per chunk and overall.

The model must be a trained classifier (a weight set such as ``ast_tiny.fsdd_digits`` or a checkpoint
folder) whose metadata carries its ``labels``; untrained weights are refused rather than shown as results.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError
from ..resolve import resolve_model
from .base import AudioInput, Pipeline, batched, chunk


def window_samples(model: torch.nn.Module, default_seconds: float) -> int:
    """Samples per analysis window: the longest input the classifier takes (``max_frames`` frames of its
    front end), or ``default_seconds`` for models that take any length (PANNs, ConvNeXt, ...)."""
    fe = model.frontend
    if getattr(model, "max_frames", None):
        return int(fe.num_samples(int(model.max_frames)))
    return max(int(round(default_seconds * fe.sample_rate)), int(getattr(fe, "min_samples", 1)))


class AudioClassificationPipeline(Pipeline):
    task = "audio-classification"

    def __init__(self, model: Any, top_k: int = 5, hop_ratio: float = 0.5, window_seconds: float = 10.0, **kw):
        super().__init__(**kw)
        self.model = resolve_model(model, "classify", trained=True).to(self.device).eval()
        meta = getattr(self.model, "pretrained_metadata", {}) or {}
        self.labels: list[str] = [str(x) for x in (meta.get("labels") or [])]
        if len(self.labels) != self.model.num_classes:
            raise ConfigError(
                f"checkpoint metadata lists {len(self.labels)} labels for {self.model.num_classes} classes; "
                "a classifier checkpoint must record its label names (metadata['labels'])"
            )
        self.multi_label = bool(meta.get("multi_label", False))
        self.sample_rate = int(self.model.frontend.sample_rate)
        self.window = window_samples(self.model, window_seconds)
        self.hop = max(1, int(self.window * hop_ratio))
        self.top_k = min(top_k, len(self.labels))

    def _scores(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.sigmoid() if self.multi_label else logits.softmax(-1)

    def _top(self, probs: torch.Tensor) -> list[dict[str, Any]]:
        s, i = probs.topk(self.top_k)
        return [{"label": self.labels[j], "score": round(float(v), 5)} for v, j in zip(s.tolist(), i.tolist())]

    @torch.no_grad()
    def _process(self, a: AudioInput) -> dict[str, Any]:
        windows, lengths, starts = chunk(a.wav, self.window, self.hop)
        probs = []
        for idx in batched(list(range(len(windows))), self.batch_size):
            w = windows[idx].to(self.device)
            feats, flen = self.model.frontend(w, lengths[idx].to(self.device))
            probs.append(self._scores(self.model(feats, flen)).cpu())
        p = torch.cat(probs)
        # Weight chunks by how much real audio they hold, so a padded tail counts less.
        weights = lengths.float() / lengths.sum()
        overall = (p * weights[:, None]).sum(0)
        segments = [
            {"start_s": round(int(s) / self.sample_rate, 3),
             "end_s": round((int(s) + int(n)) / self.sample_rate, 3), "top": self._top(q)[:1]}
            for s, n, q in zip(starts, lengths, p)
        ]
        return {"input": a.source, "labels": self._top(overall), "segments": segments}
