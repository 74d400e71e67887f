"""Greedy and beam search against exhaustive search on a toy decoder whose state is the token history."""

from __future__ import annotations

import itertools

import pytest
import torch

from audiozoo.errors import ConfigError
from audiozoo.nn.beam_search import beam_search, greedy_search

V, BOS, EOS = 5, 3, 4  # tokens 0-2 are "words"; 3 is bos, 4 eos
TABLE = torch.randn(V ** 3, V, generator=torch.Generator().manual_seed(0)) * 2


def _logits(history: list[int], item: int) -> torch.Tensor:
    # next-token logits depend on the item and the last two tokens (a toy trigram model)
    a, b = (history[-2:] if len(history) >= 2 else [BOS] * (2 - len(history)) + history)
    return TABLE[(item * V * V + a * V + b) % TABLE.shape[0]]


def make_step():
    def step(tokens, state):
        items, hist = state
        for r in range(tokens.shape[0]):
            hist[r] = hist[r] + [int(tokens[r, -1])]
        return torch.stack([_logits(hist[r], items[r]) for r in range(tokens.shape[0])]), state

    def reorder(state, index):
        items, hist = state
        return [items[i] for i in index.tolist()], [list(hist[i]) for i in index.tolist()]

    return step, reorder


def exhaustive(item: int, max_len: int, length_penalty: float) -> tuple[list[int], float]:
    best, best_s = None, -float("inf")
    for n in range(max_len):
        for seq in itertools.product(range(3), repeat=n):
            hist, s = [BOS], 0.0
            for tok in (*seq, EOS):
                s += float(_logits(hist, item).log_softmax(-1)[tok])
                hist.append(tok)
            s /= (n + 1) ** length_penalty
            if s > best_s:
                best, best_s = list(seq), s
    return best, best_s


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_wide_beam_equals_exhaustive_search(length_penalty):
    step, reorder = make_step()
    b, max_len = 3, 4
    toks, lens, scores = beam_search(step, (list(range(b)), [[] for _ in range(b)]), reorder, b, BOS, EOS, max_len,
                                     beam_size=64, length_penalty=length_penalty)
    for i in range(b):
        want, want_s = exhaustive(i, max_len, length_penalty)
        assert toks[i, : int(lens[i])].tolist() == want
        assert float(scores[i]) == pytest.approx(want_s, abs=1e-5)


def test_greedy_is_the_argmax_chain_and_beam_is_no_worse():
    step, reorder = make_step()
    b, max_len = 4, 6
    toks, lens, scores = greedy_search(step, (list(range(b)), [[] for _ in range(b)]), b, BOS, EOS, max_len)
    for i in range(b):
        hist, want, s = [BOS], [], 0.0
        for _ in range(max_len):
            lp = _logits(hist, i).log_softmax(-1)
            tok = int(lp.argmax())
            s += float(lp[tok])
            if tok == EOS:
                break
            want.append(tok)
            hist.append(tok)
        assert toks[i, : int(lens[i])].tolist() == want and float(scores[i]) == pytest.approx(s, abs=1e-5)
    step, reorder = make_step()
    btoks, blens, bscores = beam_search(step, (list(range(b)), [[] for _ in range(b)]), reorder, b, BOS, EOS, max_len,
                                        beam_size=4, length_penalty=0.0)
    ended = [int(lens[i]) < max_len for i in range(b)]
    assert all(float(bscores[i]) >= float(scores[i]) - 1e-6 for i in range(b) if ended[i])


def test_bad_arguments():
    step, reorder = make_step()
    with pytest.raises(ConfigError):
        beam_search(step, ([0], [[]]), reorder, 1, BOS, EOS, 3, beam_size=0)
    with pytest.raises(ConfigError):
        greedy_search(step, ([0], [[]]), 1, BOS, EOS, -1)
