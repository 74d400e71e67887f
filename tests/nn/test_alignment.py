"""audiozoo.nn.alignment: MAS vs a straightforward DP (Glow-TTS Algorithm 1), durations, length regulator."""

from __future__ import annotations

import math

import pytest
import torch

from audiozoo.errors import ConfigError
from audiozoo.nn.alignment import (
    LengthRegulator,
    durations_from_alignment,
    length_regulate,
    monotonic_alignment_search,
)


def _reference_mas(lp: list[list[float]]) -> list[list[int]]:
    """Glow-TTS Algorithm 1 with plain Python loops on one (N, T) matrix: forward DP restricted to the states
    that can start at (0, 0) and reach (N-1, T-1), then backtracking that stays on a token on ties."""
    n, t = len(lp), len(lp[0])
    q = [[-math.inf] * t for _ in range(n)]
    for j in range(t):
        for i in range(max(0, n - (t - j)), min(n, j + 1)):
            if j == 0:
                q[i][j] = lp[i][j]
                continue
            stay = q[i][j - 1] if i < j else -math.inf
            come = q[i - 1][j - 1] if i > 0 else -math.inf
            q[i][j] = max(stay, come) + lp[i][j]
    path = [[0] * t for _ in range(n)]
    i = n - 1
    for j in range(t - 1, -1, -1):
        path[i][j] = 1
        if i > 0 and (i == j or q[i][j - 1] < q[i - 1][j - 1]):
            i -= 1
    return path


def test_mas_matches_reference_dp_exactly_with_lengths():
    g = torch.Generator().manual_seed(0)
    b, n, t = 4, 9, 23
    log_p = torch.randn(b, n, t, generator=g) * 3 - 2
    n_len = torch.tensor([9, 5, 1, 7])
    t_len = torch.tensor([23, 11, 4, 7])  # last: T_b == N_b forces the diagonal
    path = monotonic_alignment_search(log_p, n_len, t_len)
    assert path.shape == (b, n, t) and path.dtype == log_p.dtype
    for k in range(b):
        nb, tb = int(n_len[k]), int(t_len[k])
        ref = torch.tensor(_reference_mas(log_p[k, :nb, :tb].double().tolist()), dtype=path.dtype)
        assert torch.equal(path[k, :nb, :tb], ref), k
        assert path[k].sum() == tb  # nothing outside the valid block
    assert torch.equal(path[3, :7, :7], torch.eye(7))
    # ties (all paths equally likely): backtracking stays on a token while it can, as Glow-TTS's maximum_path
    tied = monotonic_alignment_search(torch.zeros(1, 3, 6))[0]
    assert durations_from_alignment(tied[None]).tolist() == [[1, 1, 4]]
    assert torch.equal(tied, torch.tensor(_reference_mas([[0.0] * 6] * 3), dtype=tied.dtype))
    assert path[2, 0, :4].tolist() == [1, 1, 1, 1]


def test_mas_path_is_monotonic_surjective_and_optimal_vs_brute_force():
    g = torch.Generator().manual_seed(1)
    n, t = 3, 7
    log_p = torch.randn(1, n, t, generator=g)
    path = monotonic_alignment_search(log_p)[0]
    assert torch.equal(path.sum(0), torch.ones(t))  # each frame exactly one token
    tokens = path.argmax(0)
    assert tokens[0] == 0 and tokens[-1] == n - 1 and ((tokens.diff() == 0) | (tokens.diff() == 1)).all()
    # brute force over all duration vectors (every token >= 1 frame, summing to t)
    best = -math.inf
    for d0 in range(1, t):
        for d1 in range(1, t - d0):
            d = [d0, d1, t - d0 - d1]
            tok = torch.repeat_interleave(torch.arange(n), torch.tensor(d))
            best = max(best, float(log_p[0, tok, torch.arange(t)].sum()))
    assert float((log_p[0] * path).sum()) == pytest.approx(best, abs=1e-5)
    assert durations_from_alignment(path[None]).tolist() == [path.sum(1).long().tolist()]


def test_mas_rejects_too_few_frames_and_bad_shapes():
    with pytest.raises(ConfigError, match="at least as many frames"):
        monotonic_alignment_search(torch.randn(1, 5, 8), torch.tensor([5]), torch.tensor([4]))
    with pytest.raises(ConfigError, match="B, N_text, T_frames"):
        monotonic_alignment_search(torch.randn(5, 8))


def test_length_regulator_expands_and_scales():
    x = torch.arange(2 * 3 * 2, dtype=torch.float32).view(2, 3, 2).requires_grad_()
    d = torch.tensor([[2, 0, 3], [1, 1, 4]])
    y, lens = length_regulate(x, d, lengths=torch.tensor([3, 2]))
    assert lens.tolist() == [5, 2] and y.shape == (2, 5, 2)
    ref0 = torch.repeat_interleave(x[0].detach(), d[0], dim=0)
    assert torch.equal(y[0].detach(), ref0)
    assert torch.equal(y[1, :2].detach(), x[1, :2].detach()) and (y[1, 2:] == 0).all()  # token 3 is padding
    y.sum().backward()
    assert x.grad[0].tolist() == [[2, 2], [0, 0], [3, 3]]
    # alpha scales durations (FastSpeech: 1.5 = slower), rounding half to even on float durations
    reg = LengthRegulator(alpha=1.5)
    y2, lens2 = reg(x.detach(), d)
    assert lens2.tolist() == [3 + 0 + 4, 2 + 2 + 6]  # round(3, 0, 4.5) -> (3, 0, 4); 1.5 -> 2
    assert torch.equal(y2[0, :7], torch.repeat_interleave(x[0].detach(), torch.tensor([3, 0, 4]), dim=0))
    _, lens3 = reg(x.detach(), d.float() * 0.5, alpha=1.0, max_len=3)
    assert lens3.tolist() == [3, 2]  # round(1, 0, 1.5) = (1, 0, 2); round(0.5, 0.5, 2) = (0, 0, 2)
    y4, lens4 = length_regulate(x.detach(), d, max_len=2)
    assert y4.shape == (2, 2, 2) and lens4.tolist() == [2, 2]
    with pytest.raises(ConfigError, match="non-negative"):
        length_regulate(x, -d)
