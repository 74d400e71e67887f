"""CTC decoding and forced alignment against brute-force enumeration of every frame path."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from audiozoo.errors import ConfigError, DataError
from audiozoo.nn.ctc import (
    ctc_collapse,
    ctc_greedy_decode,
    ctc_prefix_beam_search,
    forced_align,
    min_ctc_frames,
    token_spans,
    word_spans,
)


def _paths(t: int, v: int):
    return itertools.product(range(v), repeat=t)


def brute_force_align(lp: torch.Tensor, targets: list[int], blank: int = 0) -> tuple[tuple[int, ...], float]:
    """The best path reading ``targets``, by scoring every one of the V^T paths."""
    best, best_s = None, -math.inf
    for path in _paths(*lp.shape):
        if ctc_collapse(path, blank) != targets:
            continue
        s = float(sum(lp[i, c] for i, c in enumerate(path)))
        if s > best_s:
            best, best_s = path, s
    return best, best_s


def brute_force_decode(lp: torch.Tensor, blank: int = 0) -> dict[tuple[int, ...], float]:
    """log P(label sequence) = logsumexp over its paths, for every reachable label sequence."""
    total: dict[tuple[int, ...], list[float]] = {}
    for path in _paths(*lp.shape):
        total.setdefault(tuple(ctc_collapse(path, blank)), []).append(float(sum(lp[i, c] for i, c in enumerate(path))))
    return {k: float(torch.logsumexp(torch.tensor(v, dtype=torch.float64), 0)) for k, v in total.items()}


def test_collapse_merges_repeats_then_drops_blanks():
    assert ctc_collapse([1, 1, 0, 2, 2, 0, 0, 2]) == [1, 2, 2]
    assert ctc_collapse(torch.tensor([0, 0, 0])) == []
    assert ctc_collapse([3, 3, 3], blank=3) == []
    assert min_ctc_frames([1, 1, 2, 2, 2]) == 8 and min_ctc_frames([]) == 0


@pytest.mark.parametrize("seed,t,targets", [
    (0, 3, [1]), (1, 4, [1, 2]), (2, 5, [2, 2]), (3, 6, [1, 2, 1]), (4, 6, [3, 3, 1]), (5, 5, [1, 2, 3]),
    (6, 6, [2, 2, 2]), (7, 4, []),
])
def test_forced_align_equals_brute_force_viterbi(seed, t, targets):
    g = torch.Generator().manual_seed(seed)
    lp = torch.randn(t, 4, generator=g).log_softmax(-1)
    labels, scores = forced_align(lp, torch.tensor(targets), blank=0)
    want_path, want_score = brute_force_align(lp, targets)
    assert tuple(labels.tolist()) == want_path
    assert ctc_collapse(labels, 0) == targets
    assert scores.sum().item() == pytest.approx(want_score, abs=1e-5)
    assert torch.allclose(scores, lp[torch.arange(t), labels])


def test_forced_align_batched_input_and_other_blank():
    g = torch.Generator().manual_seed(11)
    lp = torch.randn(1, 5, 4, generator=g).log_softmax(-1)
    labels, _ = forced_align(lp, torch.tensor([[0, 1]]), blank=3)  # blank is the last id here
    want, _ = brute_force_align(lp[0], [0, 1], blank=3)
    assert tuple(labels.tolist()) == want


def test_forced_align_recovers_a_peaked_path():
    path = [0, 5, 5, 0, 7, 0, 0, 5, 9, 9]
    lp = torch.full((len(path), 12), -20.0)
    lp[torch.arange(len(path)), torch.tensor(path)] = 0.0
    labels, scores = forced_align(lp.log_softmax(-1), ctc_collapse(path))
    assert labels.tolist() == path and float(scores.sum()) > -1e-3
    spans = token_spans(labels, scores)
    assert [(s.token, s.start, s.end) for s in spans] == [(5, 1, 3), (7, 4, 5), (5, 7, 8), (9, 8, 10)]
    words = word_spans(spans, separator=7, texts=["a", " ", "b", "c"])
    assert [(w.token, w.start, w.end) for w in words] == [("a", 1, 3), ("bc", 7, 10)]


def test_forced_align_errors():
    lp = torch.zeros(3, 4).log_softmax(-1)
    with pytest.raises(DataError, match="at least 4 frames"):
        forced_align(lp, [1, 1, 2])  # needs 1 - 1 2: four frames
    with pytest.raises(DataError, match="blank"):
        forced_align(lp, [0, 1])
    with pytest.raises(DataError, match="must lie in"):
        forced_align(lp, [9])
    with pytest.raises(ConfigError, match="one utterance"):
        forced_align(torch.zeros(2, 3, 4), [1])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prefix_beam_search_finds_the_most_probable_labelling(seed):
    g = torch.Generator().manual_seed(seed)
    lp = (2 * torch.randn(5, 3, generator=g)).log_softmax(-1)
    probs = brute_force_decode(lp)
    best = max(probs, key=probs.get)
    (hyp, score), = ctc_prefix_beam_search(lp, beam_size=64)
    assert tuple(hyp) == best and score == pytest.approx(probs[best], abs=1e-6)
    top3 = ctc_prefix_beam_search(lp, beam_size=64, nbest=3)
    want3 = sorted(probs.items(), key=lambda kv: kv[1], reverse=True)[:3]
    assert [tuple(h) for h, _ in top3] == [k for k, _ in want3]


def test_greedy_decode_with_lengths_and_frames():
    path = torch.tensor([[1, 1, 0, 2, 2, 3], [2, 0, 2, 1, 1, 1]])
    lp = torch.nn.functional.one_hot(path, 4).float()
    hyps, frames = ctc_greedy_decode(lp, torch.tensor([6, 4]), return_frames=True)
    assert hyps == [[1, 2, 3], [2, 2, 1]] and frames == [[0, 3, 5], [0, 2, 3]]
    with pytest.raises(ConfigError):
        ctc_greedy_decode(lp, torch.tensor([7, 1]))
