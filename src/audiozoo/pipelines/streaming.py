"""Chunked / streamed processing shared by the pipelines whose model maps a sequence onto an output sequence
in lock-step: vocode (mel frames -> samples), upsample / enhance, separate and codec (samples -> samples).

A long input is cut into chunks of ``chunk`` steps; each chunk is processed together with ``context`` steps on
both sides and only the output of its own steps is kept. When the context covers the model's receptive field
the stitched output equals processing the whole input at once (up to float rounding); memory is bounded by
``chunk + 2 * context`` steps and the algorithmic latency is ``chunk + context`` steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from ..errors import ConfigError

__all__ = ["StreamingMixin", "chunk_spans", "frames_in_chunks", "overlap_add_spans", "overlap_add_stream",
           "overlap_add_taper"]


def chunk_spans(total: int, chunk: int, context: int, min_window: int = 1) -> Iterator[tuple[int, int, int, int]]:
    """``(s, e, a, b)`` for each chunk: its own steps ``[s, e)`` and the window ``[a, b)`` with context.

    Windows shorter than ``min_window`` (only at the very end, when chunk and context are tiny) are widened
    to the left.
    """
    if chunk < 1 or context < 0:
        raise ConfigError(f"need chunk >= 1 and context >= 0, got {chunk}, {context}")
    for s in range(0, total, chunk):
        e = min(s + chunk, total)
        a, b = max(0, s - context), min(total, e + context)
        if b - a < min_window:
            a = max(0, b - min_window)
        yield s, e, a, b


def frames_in_chunks(fn: Callable[[Tensor], Tensor], wav: Tensor, hop: int, span: int, chunk: int) -> Tensor:
    """A frame-wise analysis ``fn: (T,) -> (..., L)`` of a long ``wav (T,)``, computed ``chunk`` frames at a time.

    ``fn`` must frame shift-invariantly (frame ``j`` of a window that starts at sample ``a * hop`` is frame
    ``a + j`` of the whole signal: centred or not, any fixed offset) with each frame's analysis window inside
    ``span`` samples (the FFT size). Every window starts on a frame boundary with ``ceil(span / hop) + 1``
    frames of context on each side; only the edge padding ``fn`` applies at a window's ends differs from one
    pass, and it touches just the discarded context, so the frames equal one pass over ``wav`` while memory
    holds one window. The last window runs to the end of ``wav``, so the frame count is ``fn``'s own.
    """
    if hop < 1 or span < 1 or chunk < 1:
        raise ConfigError(f"need hop, span and chunk >= 1, got {hop}, {span}, {chunk}")
    t, ctx = wav.shape[-1], -(-span // hop) + 1
    parts, s = [], 0
    while True:
        a = max(0, s - ctx)
        if (s + chunk + ctx) * hop >= t:
            parts.append(fn(wav[..., a * hop:])[..., s - a:])
            return torch.cat(parts, -1)
        parts.append(fn(wav[..., a * hop:(s + chunk + ctx) * hop])[..., s - a:s - a + chunk])
        s += chunk


class StreamingMixin:
    """Adds :meth:`stream_chunks` to a pipeline."""

    @staticmethod
    def stream_chunks(x: Tensor, fn: Callable[[Tensor], Tensor], chunk: int, context: int, scale: int = 1,
                      min_window: int = 1) -> Iterator[Tensor]:
        """Yield ``fn``'s output for ``x (..., N)`` chunk by chunk.

        Args:
            x: input ``(..., N)``; chunks are cut on the last axis.
            fn: ``(..., n) -> (..., >= n * scale)``, the model on one window.
            chunk, context: chunk length and context per side, in input steps.
            scale: output steps per input step (a vocoder's hop; 1 for waveform -> waveform).
            min_window: the shortest window ``fn`` accepts.

        Each yielded piece holds the output of the chunk's own steps (``(e - s) * scale``); the last one keeps
        whatever ``fn`` returns past its end (a centred iSTFT's ``(L - 1) * hop``, padding to whole frames), so
        callers trim the concatenation to the length they expect.
        """
        total = x.shape[-1]
        with torch.no_grad():
            for s, e, a, b in chunk_spans(total, chunk, context, min_window):
                y = fn(x[..., a:b])
                start = (s - a) * scale
                stop = y.shape[-1] if e == total else start + (e - s) * scale
                yield y[..., start:stop]


# ------------------------------------------------------------------------------------------ windowed overlap-add
def overlap_add_spans(total: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """Windows ``[a, b)`` of ``window`` steps every ``window - overlap`` steps covering ``[0, total)``; the last
    one is moved back to end at ``total`` (so every window is full length when ``total >= window``)."""
    if window < 1 or not 0 <= overlap < window:
        raise ConfigError(f"need window >= 1 and 0 <= overlap < window, got {window}, {overlap}")
    if total <= window:
        return [(0, total)]
    hop = window - overlap
    spans = [(a, a + window) for a in range(0, total - window + 1, hop)]
    if spans[-1][1] < total:
        spans.append((total - window, total))
    return spans


def overlap_add_taper(n: int, ramp: int, left: bool = True, right: bool = True) -> Tensor:
    """``(n,)`` weights: linear ramps of ``ramp`` steps at the ends (``left``/``right``), 1 in between.

    The ramp values ``(k + 0.5) / ramp`` of two windows overlapping by ``ramp`` steps sum to 1 (a linear
    cross-fade); weights never reach 0, so the normalisation by their sum is always defined.
    """
    w = torch.ones(n)
    r = min(ramp, n)
    if r > 0:
        up = (torch.arange(r, dtype=torch.float32) + 0.5) / r
        if left:
            w[:r] = torch.minimum(w[:r], up)
        if right:
            w[n - r:] = torch.minimum(w[n - r:], up.flip(0))
    return w


def overlap_add_stream(x: Tensor, fn: Callable[[Tensor], Tensor], window: int, overlap: int) -> Iterator[Tensor]:
    """Yield ``fn``'s output for a long ``x (..., N)`` in finished pieces, processing overlapping windows.

    Separation (Demucs' ``apply_model(split=True)``; Conv-TasNet with "overlap between prediction frames",
    Défossez et al. 2019, Section 6) is better served by cross-fading overlapping windows than by cutting
    hard chunks: each window's output is weighted by :func:`overlap_add_taper` (ramps of ``overlap`` steps)
    and the weighted outputs are summed and divided by the summed weights. ``fn: (..., n) -> (..., *, n)``
    (any extra leading axes, e.g. sources) must keep the length. Pieces are yielded as soon as no later window
    touches them, so memory holds one window's input and output plus the overlap (a flat profile in ``N``);
    concatenating the pieces on the last axis gives the ``N`` output steps.
    """
    total = x.shape[-1]
    spans = overlap_add_spans(total, window, overlap)
    acc: Tensor | None = None  # weighted sum over [done, b_prev)
    wsum: Tensor | None = None
    done = 0
    with torch.no_grad():
        for i, (a, b) in enumerate(spans):
            y = fn(x[..., a:b])
            if y.shape[-1] != b - a:
                raise ConfigError(f"overlap-add needs fn to keep the length: {b - a} steps gave {y.shape[-1]}")
            w = overlap_add_taper(b - a, overlap, left=a > 0, right=b < total).to(y.device, y.dtype)
            grow = b - done - (acc.shape[-1] if acc is not None else 0)
            if acc is None:
                acc = torch.zeros(*y.shape[:-1], b - done, dtype=y.dtype, device=y.device)
                wsum = torch.zeros(b - done, dtype=y.dtype, device=y.device)
            elif grow > 0:
                acc = torch.cat([acc, acc.new_zeros(*acc.shape[:-1], grow)], -1)
                wsum = torch.cat([wsum, wsum.new_zeros(grow)], -1)
            acc[..., a - done:b - done] += y * w
            wsum[a - done:b - done] += w
            nxt = spans[i + 1][0] if i + 1 < len(spans) else total
            if nxt > done:  # [done, nxt) is final: no later window starts before nxt
                k = nxt - done
                yield acc[..., :k] / wsum[:k]
                acc, wsum, done = acc[..., k:], wsum[k:], nxt
