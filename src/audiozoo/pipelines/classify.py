"""``audio-classification`` pipeline (CLI verb ``tag``): audio -> top-k labels, per chunk and overall.

The model must be a trained classifier (a weight set such as ``ast_tiny.fsdd_digits`` or a checkpoint
folder) whose metadata carries its ``labels``; untrained weights are refused rather than shown as results.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import AudioError, ConfigError
from ..resolve import resolve_model
from .base import AudioInput, Pipeline, batched, window_starts


def window_samples(model: torch.nn.Module, default_seconds: float) -> int:
    """Samples per analysis window: the longest input the classifier takes (``max_frames`` frames of its
    front end), or ``default_seconds`` for models that take any length (PANNs, ConvNeXt, ...)."""
    fe = model.frontend
    if getattr(model, "max_frames", None):
        return int(fe.num_samples(int(model.max_frames)))
    return max(int(round(default_seconds * fe.sample_rate)), int(getattr(fe, "min_samples", 1)))


# What a classifier says about silence and too-short clips (docs/decisions.md, "Silence and too-short
# clips in classification"): a softmax always names a class, so without these checks 3 samples of zeros
# come back as a confident digit.
# shortest clip tagged: one 25 ms analysis window, the frame of every registered classifier's front end (real
# sounds are that short: Sonic Pi's elec_flip lasts 75 ms, and ast_tiny.sonicpi_family was trained on it)
MIN_SECONDS = 0.025
SILENCE_DBFS = -60.0  # a window whose every sample is below -60 dBFS (ffmpeg silencedetect's default) is silence


def peak_dbfs(wav: torch.Tensor) -> float:
    """Peak level of a waveform ``(T,)`` in dB relative to full scale (``-inf`` for digital silence)."""
    peak = float(wav.abs().max()) if wav.numel() else 0.0
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def check_duration(a: AudioInput, min_samples: int) -> None:
    """Raise :class:`AudioError` naming the minimum duration when ``a`` is shorter than ``min_samples``."""
    n = int(a.wav.shape[-1])
    if n < min_samples:
        raise AudioError(
            f"{a.source}: {n} samples ({1000 * n / a.sample_rate:.1f} ms) is too short to classify; need at "
            f"least {min_samples} samples ({1000 * min_samples / a.sample_rate:.1f} ms at {a.sample_rate} Hz)"
        )


def is_silent(wav: torch.Tensor, threshold_dbfs: float | None) -> bool:
    """Whether every sample of ``wav`` lies below ``threshold_dbfs`` (never, with ``None``)."""
    return threshold_dbfs is not None and float(wav.abs().max()) < 10.0 ** (threshold_dbfs / 20.0)


class AudioClassificationPipeline(Pipeline):
    """Top-k labels per input, overall and per analysis window.

    A clip shorter than ``min_seconds`` (or than the front end's ``min_samples``) raises :class:`AudioError`
    naming the minimum; windows whose peak is below ``silence_dbfs`` get no labels and no weight in the
    overall scores, and an input that is silence throughout comes back as ``{"labels": [], "silence": True,
    "warning": ...}``. ``silence_dbfs=None`` / ``min_seconds=0`` turn them off.
    """

    task = "audio-classification"
    family = "classify"
    call_options = {"postprocess": ("top_k",)}

    def __init__(self, model: Any, top_k: int = 5, hop_ratio: float = 0.5, window_seconds: float = 10.0,
                 min_seconds: float = MIN_SECONDS, silence_dbfs: float | None = SILENCE_DBFS, **kw):
        super().__init__(**kw)
        self.min_seconds, self.silence_dbfs = float(min_seconds), silence_dbfs
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

    def _top(self, probs: torch.Tensor, k: int) -> list[dict[str, Any]]:
        s, i = probs.topk(k)
        return [{"label": self.labels[j], "score": round(float(v), 5)} for v, j in zip(s.tolist(), i.tolist())]

    @torch.no_grad()
    def _forward(self, a: AudioInput) -> dict[str, Any]:
        min_samples = max(int(math.ceil(self.min_seconds * self.sample_rate)),
                          int(getattr(self.model.frontend, "min_samples", 1)), 1)
        check_duration(a, min_samples)
        # Windows are cut batch by batch, so memory holds one batch, not every (overlapping) window at once.
        t = a.wav.shape[-1]
        starts = window_starts(t, self.window, self.hop)
        lengths = torch.tensor([min(self.window, t - s) for s in starts])
        silent = torch.tensor([is_silent(a.wav[s:s + n], self.silence_dbfs) for s, n in zip(starts, lengths.tolist())])
        keep = (~silent).nonzero().flatten().tolist()
        p = torch.zeros(len(starts), len(self.labels))
        for idx in batched(keep, self.batch_size):
            w = torch.zeros(len(idx), self.window, dtype=a.wav.dtype)
            for row, i in enumerate(idx):
                w[row, : lengths[i]] = a.wav[starts[i]:starts[i] + self.window]
            feats, flen = self.model.frontend(w.to(self.device), lengths[idx].to(self.device))
            p[idx] = self._scores(self.model(feats, flen)).float().cpu()
        return {"input": a.source, "probs": p, "starts": starts, "lengths": lengths, "silent": silent,
                "peak_dbfs": peak_dbfs(a.wav)}

    def postprocess(self, out: dict[str, Any], top_k: int | None = None) -> dict[str, Any]:
        """Window probabilities -> top-k labels overall (windows weighted by their audio; silent ones not at
        all) and the best label per window. ``top_k`` may be changed per call: ``pipe(x, top_k=1)``."""
        k = self.top_k if top_k is None else min(int(top_k), len(self.labels))
        if k < 1:
            raise ConfigError(f"top_k must be >= 1, got {top_k}")
        p, lengths, silent = out["probs"], out["lengths"], out["silent"]
        segments = [
            {"start_s": round(int(s) / self.sample_rate, 3),
             "end_s": round((int(s) + int(n)) / self.sample_rate, 3),
             **({"top": [], "silence": True} if q_silent else {"top": self._top(q, 1)})}
            for s, n, q, q_silent in zip(out["starts"], lengths, p, silent.tolist())
        ]
        if bool(silent.all()):  # nothing but silence: no class is the answer, say so instead of naming one
            level = out["peak_dbfs"]
            return {"input": out["input"], "labels": [], "silence": True, "peak_dbfs": round(level, 2),
                    "warning": f"silence: peak {level:.1f} dBFS is below the {self.silence_dbfs:g} dBFS threshold, "
                               "so no labels", "segments": segments}
        # Weight chunks by how much real audio they hold (a padded tail counts less; silent ones not at all).
        weights = lengths.float() * (~silent).float()
        overall = (p * (weights / weights.sum())[:, None]).sum(0)
        return {"input": out["input"], "labels": self._top(overall, k), "silence": False, "segments": segments}
