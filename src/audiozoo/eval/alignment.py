"""Boundary error of a forced aligner: predicted durations vs true durations of the same token sequence.

Both duration vectors are frames per token of one utterance (they sum to its frames). A token's **onset** is the
sum of the durations before it; the scored boundaries are the onsets of the tokens selected by ``keep`` (e.g.
every Piper id except the ``_`` pads and the ``^`` start), so both sides are compared on the same events.
Set-level numbers pool the absolute errors of every boundary of every utterance.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from audiozoo.errors import ConfigError

__all__ = ["boundary_errors", "onsets", "summarize_boundary_errors", "uniform_span_durations"]


def onsets(durations: Sequence[int] | np.ndarray) -> np.ndarray:
    """Start frame of every token ``(N,)`` from frames per token ``(N,)``."""
    d = np.asarray(durations, dtype=np.int64)
    return np.concatenate([[0], np.cumsum(d)[:-1]]) if len(d) else d


def boundary_errors(pred: Sequence[int] | np.ndarray, true: Sequence[int] | np.ndarray,
                    keep: Sequence[bool] | np.ndarray | None = None, frame_ms: float = 256 / 22.05) -> np.ndarray:
    """Signed onset errors in ms (predicted minus true) of the kept tokens ``(K,)``.

    Args:
        pred, true: frames per token ``(N,)`` for the same N tokens.
        keep: ``(N,)`` which tokens' onsets are boundaries (default all but the first, whose onset is 0).
        frame_ms: length of one frame (Piper / HiFi-GAN: 256 samples at 22.05 kHz = 11.61 ms).
    """
    p, t = np.asarray(pred, dtype=np.int64), np.asarray(true, dtype=np.int64)
    if p.shape != t.shape or p.ndim != 1:
        raise ConfigError(f"pred and true must be (N,) of the same N, got {p.shape} and {t.shape}")
    k = np.ones(len(t), dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
    if keep is None and len(k):
        k[0] = False
    if k.shape != t.shape:
        raise ConfigError(f"keep must be (N,) = {t.shape}, got {k.shape}")
    return (onsets(p)[k] - onsets(t)[k]).astype(np.float64) * frame_ms


def summarize_boundary_errors(errors_ms: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Pooled signed errors (ms) -> mean / median absolute error, bias, and % within 20 and 50 ms."""
    e = np.asarray(errors_ms, dtype=np.float64)
    if e.size == 0:
        raise ConfigError("no boundaries to summarize")
    a = np.abs(e)
    return {"boundaries": int(e.size), "mean_abs_ms": round(float(a.mean()), 2),
            "median_abs_ms": round(float(np.median(a)), 2), "bias_ms": round(float(e.mean()), 2),
            "within_20ms_pct": round(100 * float((a <= 20).mean()), 1),
            "within_50ms_pct": round(100 * float((a <= 50).mean()), 1)}


def uniform_span_durations(n_tokens: int, n_frames: int, span: tuple[int, int]) -> np.ndarray:
    """The trivial baseline: frames per token ``(n_tokens,)`` with the interior tokens spread evenly over the
    speech span ``[start, end)`` (frames), the first token taking the leading and the last the trailing silence.

    Every token gets at least one frame and the sum is ``n_frames``.
    """
    if n_tokens < 3 or n_frames < n_tokens:
        raise ConfigError(f"need >= 3 tokens and at least as many frames, got {n_tokens} tokens, {n_frames} frames")
    start, end = int(span[0]), int(span[1])
    start = min(max(start, 1), n_frames - (n_tokens - 1))  # leave >= 1 frame per token on both sides
    end = max(min(end, n_frames - 1), start + n_tokens - 2)
    inner = n_tokens - 2
    edges = np.round(np.linspace(start, end, inner + 1)).astype(np.int64)
    d = np.diff(edges)
    # rounding may give a 0-frame token when the span is barely long enough: borrow from the longest
    while (d < 1).any():
        i, j = int(np.argmin(d)), int(np.argmax(d))
        d[i] += 1
        d[j] -= 1
    return np.concatenate([[start], d, [n_frames - end]]).astype(np.int64)
