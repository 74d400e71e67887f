"""Connectionist temporal classification helpers: decoding and forced alignment (Graves et al., ICML 2006).

A CTC model emits, for each of ``T`` frames, a distribution over ``V`` labels, one of them the *blank*. A
frame path maps to a label sequence by merging repeats and then dropping blanks (the many-to-one map
``B`` of Graves et al., Section 3.1), so ``a a - b`` and ``a - - b`` both read ``ab``; a repeated label needs a
blank between its copies (``a - a``).

- :func:`ctc_collapse`, :func:`ctc_greedy_decode`: best-path decoding (argmax per frame, then ``B``),
  which Graves et al. call *best path decoding* (Section 3.2), with the frame where each emitted label
  starts (used for timestamps).
- :func:`ctc_prefix_beam_search`: prefix search over label sequences that sums the probability of every
  path of a prefix, kept apart by whether the path ends in a blank (Graves 2012, "Supervised Sequence
  Labelling with RNNs", Section 7.5; the form of Hannun et al. 2014, arXiv:1408.2873, Algorithm 1, without
  a language model).
- :func:`forced_align`: the single most likely frame path that reads a *given* transcript — Viterbi over
  the transcript extended with blanks ``- y1 - y2 ... - yL -`` (``S = 2L + 1`` states; Graves et al.,
  Section 4.1's lattice, with max in place of sum). The semantics equal ``torchaudio.functional.forced_align``
  (per-frame labels including blanks, and each frame's log-probability), checked against a brute-force
  enumeration of every path in tests.
- :func:`token_spans`, :func:`word_spans`: the aligned frames of each transcript token and of each word
  (tokens between word separators), with start/end frames and mean log-probability — word timestamps.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ConfigError, DataError

__all__ = [
    "TokenSpan", "ctc_collapse", "ctc_greedy_decode", "ctc_prefix_beam_search", "forced_align", "min_ctc_frames",
    "token_spans", "word_spans",
]


def ctc_collapse(frame_labels: Sequence[int] | Tensor, blank: int = 0) -> list[int]:
    """The label sequence a frame path reads: merge repeats, then drop blanks (``[a, a, -, b, b] -> [a, b]``)."""
    out: list[int] = []
    prev = None
    for lab in (frame_labels.tolist() if isinstance(frame_labels, Tensor) else frame_labels):
        lab = int(lab)
        if lab != prev and lab != blank:
            out.append(lab)
        prev = lab
    return out


def _check_lengths(lengths: Tensor | None, b: int, t: int) -> Tensor:
    if lengths is None:
        return torch.full((b,), t, dtype=torch.long)
    lengths = torch.as_tensor(lengths).long().cpu()
    if lengths.shape != (b,) or bool(((lengths < 0) | (lengths > t)).any()):
        raise ConfigError(f"lengths must be ({b},) in [0, {t}], got {lengths.tolist()}")
    return lengths


def ctc_greedy_decode(log_probs: Tensor, lengths: Tensor | None = None, blank: int = 0,
                      return_frames: bool = False) -> list[list[int]] | tuple[list[list[int]], list[list[int]]]:
    """Best-path decoding of ``log_probs (B, T, V)`` (any scores whose argmax is the label: logits work too).

    Args:
        lengths: ``(B,)`` valid frames (frames past them are ignored).
        return_frames: also return, per item, the frame at which each emitted label starts.

    Returns:
        label id lists (blanks and repeats removed), and with ``return_frames`` their start frames.
    """
    if log_probs.ndim != 3:
        raise ConfigError(f"ctc_greedy_decode expects (B, T, V) scores, got {tuple(log_probs.shape)}")
    b, t, _ = log_probs.shape
    lengths = _check_lengths(lengths, b, t)
    best = log_probs.argmax(-1).cpu()
    hyps, frames = [], []
    for i in range(b):
        path = best[i, : int(lengths[i])].tolist()
        ids, starts, prev = [], [], None
        for f, lab in enumerate(path):
            if lab != prev and lab != blank:
                ids.append(lab)
                starts.append(f)
            prev = lab
        hyps.append(ids)
        frames.append(starts)
    return (hyps, frames) if return_frames else hyps


def _logaddexp(a: float, b: float) -> float:
    if a == -float("inf"):
        return b
    if b == -float("inf"):
        return a
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


def _add_prefix(table: dict[tuple[int, ...], list[float]], prefix: tuple[int, ...], pb: float, pnb: float) -> None:
    cur = table.setdefault(prefix, [-math.inf, -math.inf])
    cur[0] = _logaddexp(cur[0], pb)
    cur[1] = _logaddexp(cur[1], pnb)


def ctc_prefix_beam_search(log_probs: Tensor, beam_size: int = 8, blank: int = 0, top_k: int | None = None,
                           nbest: int = 1) -> list[tuple[list[int], float]]:
    """Prefix beam search over one utterance's ``log_probs (T, V)`` (log-softmax outputs).

    Each prefix keeps two log-probabilities: of the paths that read it and end in a blank, ``p_b``, and of
    those that end in its last label, ``p_nb``. Extending by label ``c`` from ``p_b + p_nb`` (or only from
    ``p_b`` when ``c`` repeats the last label, since ``a a`` merges), staying by a blank or by the last label
    again; the ``beam_size`` best prefixes by ``logaddexp(p_b, p_nb)`` survive each frame.

    Args:
        top_k: per frame, consider only the ``top_k`` most likely labels (default: all).
        nbest: how many hypotheses to return.

    Returns:
        ``[(label ids, log-probability of all their paths), ...]``, best first.
    """
    if log_probs.ndim != 2:
        raise ConfigError(f"ctc_prefix_beam_search expects one utterance (T, V), got {tuple(log_probs.shape)}")
    if beam_size < 1 or nbest < 1:
        raise ConfigError(f"beam_size and nbest must be >= 1, got {beam_size}, {nbest}")
    lp = log_probs.detach().double().cpu()
    t_len, v = lp.shape
    k = v if top_k is None else max(1, min(int(top_k), v))
    ninf = -float("inf")
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, ninf)}
    for t in range(t_len):
        row = lp[t]
        cand = row.topk(k).indices.tolist() if k < v else range(v)
        nxt: dict[tuple[int, ...], list[float]] = {}
        add = functools.partial(_add_prefix, nxt)
        for prefix, (pb, pnb) in beams.items():
            total = _logaddexp(pb, pnb)
            last = prefix[-1] if prefix else None
            for c in cand:
                p = float(row[c])
                if c == blank:
                    add(prefix, total + p, ninf)
                elif c == last:
                    add(prefix, ninf, pnb + p)  # the repeat merges into the same label
                    add(prefix + (c,), ninf, pb + p)  # a blank separated the two copies
                else:
                    add(prefix + (c,), ninf, total + p)
        ranked = sorted(nxt.items(), key=lambda kv: _logaddexp(*kv[1]), reverse=True)
        beams = {p: (s[0], s[1]) for p, s in ranked[:beam_size]}
    out = sorted(((list(p), _logaddexp(*s)) for p, s in beams.items()), key=lambda x: x[1], reverse=True)
    return out[:nbest]


def min_ctc_frames(targets: Sequence[int] | Tensor) -> int:
    """Fewest frames a CTC path reading ``targets`` needs: one per label plus one blank between repeats."""
    ids = targets.tolist() if isinstance(targets, Tensor) else list(targets)
    return len(ids) + sum(1 for a, b in zip(ids, ids[1:]) if a == b)


def forced_align(log_probs: Tensor, targets: Tensor | Sequence[int], blank: int = 0) -> tuple[Tensor, Tensor]:
    """Most likely CTC frame path that reads ``targets`` exactly (Viterbi over the blank-extended transcript).

    Args:
        log_probs: ``(T, V)`` or ``(1, T, V)`` log-softmax outputs of one utterance.
        targets: ``(L,)`` or ``(1, L)`` label ids (no blanks), ``L >= 0``.
        blank: the blank id.

    Returns:
        ``(frame_labels (T,), frame_scores (T,))``: the label of every frame of the best path (blank
        included) and its log-probability (``log_probs`` at that label), as
        ``torchaudio.functional.forced_align`` without the batch axis. ``frame_scores.sum()`` is the path's
        log-probability.

    Raises:
        DataError: the transcript cannot fit in ``T`` frames (fewer than :func:`min_ctc_frames`), or a target
            is the blank or out of range.
    """
    lp = log_probs[0] if log_probs.ndim == 3 and log_probs.shape[0] == 1 else log_probs
    if lp.ndim != 2:
        raise ConfigError(f"forced_align aligns one utterance: log_probs (T, V) or (1, T, V), got "
                          f"{tuple(log_probs.shape)}")
    tg = torch.as_tensor(targets, dtype=torch.long).cpu().reshape(-1)
    t_len, v = lp.shape
    if tg.numel() and (bool((tg < 0).any()) or bool((tg >= v).any())):
        raise DataError(f"forced_align: target ids must lie in [0, {v}), got {tg.tolist()[:10]}...")
    if bool((tg == blank).any()):
        raise DataError(f"forced_align: the transcript contains the blank id {blank}")
    need = min_ctc_frames(tg)
    if t_len < max(need, 1):
        raise DataError(f"forced_align: the transcript needs at least {need} frames ({tg.numel()} tokens + "
                        f"{need - tg.numel()} blanks between repeats), the audio has {t_len}")
    lpf = lp.detach().float().cpu()
    n_states = 2 * tg.numel() + 1
    ext = torch.full((n_states,), blank, dtype=torch.long)
    ext[1::2] = tg
    # a label state may be entered from two states back (skipping the blank) unless it repeats that label
    skip_ok = torch.zeros(n_states, dtype=torch.bool)
    if tg.numel() > 1:
        skip_ok[3::2] = tg[1:] != tg[:-1]
    ninf = torch.tensor(-float("inf"))
    alpha = torch.full((n_states,), -float("inf"))
    alpha[0] = lpf[0, blank]
    if n_states > 1:
        alpha[1] = lpf[0, ext[1]]
    # back[t, s] = how many states the best path moved to reach s at frame t (0 stay, 1 or 2)
    back = torch.zeros((t_len, n_states), dtype=torch.int8)
    emit_all = lpf[:, ext]  # (T, S)
    for t in range(1, t_len):
        stay = alpha
        one = torch.cat([ninf[None], alpha[:-1]])
        two = torch.where(skip_ok, torch.cat([ninf.expand(2), alpha[:-2]]) if n_states > 2 else ninf, ninf)
        cand = torch.stack([stay, one, two])  # ties prefer staying (argmax returns the first)
        best, arg = cand.max(0)
        alpha = best + emit_all[t]
        back[t] = arg.to(torch.int8)
    # the path ends in the last label or the final blank
    s = n_states - 1
    if n_states > 1 and alpha[n_states - 2] > alpha[n_states - 1]:
        s = n_states - 2
    if not torch.isfinite(alpha[s]):
        raise DataError("forced_align: no path reads the transcript (log-probabilities of -inf on every path)")
    states = torch.empty(t_len, dtype=torch.long)
    for t in range(t_len - 1, -1, -1):
        states[t] = s
        s -= int(back[t, s])
    labels = ext[states]
    scores = lpf[torch.arange(t_len), labels]
    return labels.to(log_probs.device), scores.to(log_probs.device)


@dataclass(frozen=True)
class TokenSpan:
    """One aligned unit: ``token`` (an id, or a word's text), frames ``[start, end)`` and the mean frame
    log-probability ``score`` over its non-blank frames."""

    token: int | str
    start: int
    end: int
    score: float


def token_spans(frame_labels: Tensor | Sequence[int], frame_scores: Tensor | Sequence[float],
                blank: int = 0) -> list[TokenSpan]:
    """The spans of :func:`forced_align`'s output: one per transcript token, in order.

    A token's span runs from its first frame to the end of its last consecutive frame (blanks around it are
    not included, as ``torchaudio.functional.merge_tokens``).
    """
    labels = frame_labels.tolist() if isinstance(frame_labels, Tensor) else list(frame_labels)
    scores = frame_scores.tolist() if isinstance(frame_scores, Tensor) else list(frame_scores)
    if len(labels) != len(scores):
        raise ConfigError(f"{len(labels)} frame labels but {len(scores)} frame scores")
    spans: list[TokenSpan] = []
    t = 0
    while t < len(labels):
        lab = labels[t]
        if lab == blank:
            t += 1
            continue
        start = t
        while t + 1 < len(labels) and labels[t + 1] == lab:
            t += 1
        spans.append(TokenSpan(int(lab), start, t + 1, float(sum(scores[start : t + 1]) / (t + 1 - start))))
        t += 1
    return spans


def word_spans(spans: Sequence[TokenSpan], separator: int | Sequence[int], texts: Sequence[str] | None = None
               ) -> list[TokenSpan]:
    """Group token spans into words: the tokens between separator tokens (e.g. the space id).

    Args:
        spans: :func:`token_spans` of one utterance.
        separator: the id(s) that separate words (not part of any word).
        texts: the text of every token span (same length as ``spans``); the word's ``token`` is their
            concatenation. Without it, a word's ``token`` is its tokens' ids joined by ``"-"``.

    Returns:
        one :class:`TokenSpan` per word, ``score`` the frame-weighted mean of its tokens' scores.
    """
    seps = {int(separator)} if isinstance(separator, int) else {int(s) for s in separator}
    if texts is not None and len(texts) != len(spans):
        raise ConfigError(f"{len(spans)} token spans but {len(texts)} token texts")
    words: list[TokenSpan] = []
    cur: list[int] = []

    def flush() -> None:
        if not cur:
            return
        group = [spans[i] for i in cur]
        frames = sum(s.end - s.start for s in group)
        score = sum(s.score * (s.end - s.start) for s in group) / max(frames, 1)
        name = "".join(texts[i] for i in cur) if texts is not None else "-".join(str(s.token) for s in group)
        words.append(TokenSpan(name, group[0].start, group[-1].end, float(score)))
        cur.clear()

    for i, s in enumerate(spans):
        if int(s.token) in seps:
            flush()
        else:
            cur.append(i)
    flush()
    return words
