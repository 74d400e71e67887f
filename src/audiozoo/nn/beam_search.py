"""Greedy and beam-search decoding for any autoregressive decoder whose state can be re-indexed.

The decoder is seen through two callables, so the same search drives a Transformer decoder with a
:class:`~audiozoo.nn.autoregressive.KVCache` (state = the cache, re-indexed by ``cache.reorder``) and a
recurrent decoder such as a Mamba stack (state = per-layer :class:`~audiozoo.nn.mamba.MambaState`, re-indexed
with ``index_select``):

- ``step_fn(tokens (N, n), state) -> (logits (N, V), state)``: run the decoder on the ``n`` new tokens of
  each of the ``N`` rows, return the next-token logits after the last one and the updated state;
- ``reorder_fn(state, index (N',)) -> state``: keep rows ``index`` (beam re-ranking, or batch expansion).

Beam search (Graves 2012, arXiv:1211.3711, Section 2; the form used by sequence-to-sequence toolkits such as
fairseq and Hugging Face ``generate``): every item keeps ``beam_size`` live hypotheses ranked by summed
token log-probability; a hypothesis that emits ``eos`` is finished and scored by ``logp / len**length_penalty``
(Wu et al. 2016, arXiv:1609.08144, Section 7, with the simple power form); an item stops when it holds
``beam_size`` finished hypotheses (``early_stopping`` in Hugging Face's terms) or at ``max_len``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError

__all__ = ["beam_search", "greedy_search"]

StepFn = Callable[[Tensor, Any], tuple[Tensor, Any]]
ReorderFn = Callable[[Any, Tensor], Any]


def _pad_out(seqs: list[list[int]], pad_id: int, device: torch.device) -> tuple[Tensor, Tensor]:
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long, device=device)
    out = torch.full((len(seqs), max(1, int(lengths.max()) if len(seqs) else 1)), pad_id, dtype=torch.long,
                     device=device)
    for i, s in enumerate(seqs):
        if s:
            out[i, : len(s)] = torch.tensor(s, dtype=torch.long, device=device)
    return out, lengths


@torch.no_grad()
def greedy_search(step_fn: StepFn, state: Any, batch_size: int, bos_id: int, eos_id: int, max_len: int, *,
                  pad_id: int = 0, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor, Tensor]:
    """Argmax decoding of ``batch_size`` items from ``bos``.

    Returns:
        ``(tokens (B, N), lengths (B,), scores (B,))``: the tokens after ``bos`` up to and excluding ``eos``
        (padded with ``pad_id``), their counts, and the summed log-probability (``eos`` included when it
        was emitted).
    """
    if max_len < 0:
        raise ConfigError(f"max_len must be >= 0, got {max_len}")
    device = torch.device(device)
    tokens = torch.full((batch_size, 1), bos_id, dtype=torch.long, device=device)
    done = torch.zeros(batch_size, dtype=torch.bool, device=device)
    scores = torch.zeros(batch_size, dtype=torch.float64, device=device)
    out: list[list[int]] = [[] for _ in range(batch_size)]
    for _ in range(max_len):
        logits, state = step_fn(tokens, state)
        logp = logits.float().log_softmax(-1)
        nxt = logp.argmax(-1)
        scores += torch.where(done, 0.0, logp.gather(1, nxt[:, None])[:, 0].double())
        for i in (~done).nonzero()[:, 0].tolist():
            if int(nxt[i]) != eos_id:
                out[i].append(int(nxt[i]))
        done |= nxt == eos_id
        if bool(done.all()):
            break
        tokens = nxt[:, None]
    toks, lengths = _pad_out(out, pad_id, device)
    return toks, lengths, scores


@torch.no_grad()
def beam_search(step_fn: StepFn, state: Any, reorder_fn: ReorderFn, batch_size: int, bos_id: int, eos_id: int,
                max_len: int, *, beam_size: int = 4, length_penalty: float = 1.0, pad_id: int = 0,
                device: torch.device | str = "cpu") -> tuple[Tensor, Tensor, Tensor]:
    """Beam search of ``batch_size`` items; ``state`` holds one row per item and is expanded to
    ``batch_size * beam_size`` rows (item-major) with ``reorder_fn`` before the first step.

    Returns:
        ``(tokens (B, N), lengths (B,), scores (B,))`` of each item's best hypothesis (tokens after ``bos``,
        without ``eos``); ``scores`` are the length-normalised log-probabilities it was ranked by.
    """
    if beam_size < 1:
        raise ConfigError(f"beam_size must be >= 1, got {beam_size}")
    if max_len < 0:
        raise ConfigError(f"max_len must be >= 0, got {max_len}")
    device = torch.device(device)
    b, k = batch_size, beam_size
    state = reorder_fn(state, torch.arange(b, device=device).repeat_interleave(k))
    # only the first beam of each item is live at the start (the others would duplicate it)
    beam_scores = torch.full((b, k), -float("inf"), dtype=torch.float64, device=device)
    beam_scores[:, 0] = 0.0
    seqs: list[list[int]] = [[] for _ in range(b * k)]
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(b)]
    done = [False] * b
    tokens = torch.full((b * k, 1), bos_id, dtype=torch.long, device=device)

    def norm(score: float, length: int) -> float:
        return score / (max(length, 1) ** length_penalty)

    for step in range(max_len):
        logits, state = step_fn(tokens, state)
        logp = logits.float().log_softmax(-1).double()  # (B*K, V)
        v = logp.shape[-1]
        cand = (beam_scores.view(-1, 1) + logp).view(b, k * v)
        top_s, top_i = cand.topk(min(2 * k, k * v), dim=-1)  # enough to find k live ones besides eos
        new_scores = torch.full((b, k), -float("inf"), dtype=torch.float64, device=device)
        new_rows = torch.zeros(b, k, dtype=torch.long, device=device)
        new_tok = torch.full((b, k), eos_id, dtype=torch.long, device=device)
        new_seqs: list[list[int]] = [[] for _ in range(b * k)]
        for i in range(b):
            if done[i]:
                new_rows[i] = i * k  # keep the rows valid; their scores stay -inf
                continue
            j = 0
            for s, idx in zip(top_s[i].tolist(), top_i[i].tolist()):
                if s == -float("inf"):
                    break
                beam, tok = divmod(idx, v)
                row = i * k + beam
                if tok == eos_id:
                    finished[i].append((norm(s, len(seqs[row]) + 1), list(seqs[row])))
                    continue
                new_scores[i, j], new_rows[i, j], new_tok[i, j] = s, row, tok
                new_seqs[i * k + j] = seqs[row] + [tok]
                j += 1
                if j == k:
                    break
            if len(finished[i]) >= k or j == 0:
                done[i] = True
        if all(done) or step == max_len - 1:
            seqs = new_seqs
            beam_scores = new_scores
            break
        seqs, beam_scores = new_seqs, new_scores
        state = reorder_fn(state, new_rows.view(-1))
        tokens = new_tok.view(-1, 1)
    best: list[list[int]] = []
    best_scores = []
    for i in range(b):
        pool = list(finished[i])
        if not pool:  # nothing finished by max_len: rank the live hypotheses
            pool = [(norm(float(beam_scores[i, j]), len(seqs[i * k + j])), seqs[i * k + j]) for j in range(k)
                    if beam_scores[i, j] > -float("inf")]
        score, seq = max(pool, key=lambda x: x[0]) if pool else (-float("inf"), [])
        best.append(seq)
        best_scores.append(score)
    toks, lengths = _pad_out(best, pad_id, device)
    return toks, lengths, torch.tensor(best_scores, dtype=torch.float64, device=device)
