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

__all__ = ["StreamingMixin", "chunk_spans", "frames_in_chunks"]


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
