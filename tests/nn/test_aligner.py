"""audiozoo.nn.aligner (RAD-TTS-style aligner), its forward-sum loss, and audiozoo.eval.alignment."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from audiozoo.errors import ConfigError
from audiozoo.eval.alignment import boundary_errors, onsets, summarize_boundary_errors, uniform_span_durations
from audiozoo.nn.aligner import ConvAligner, batch_prior, beta_binomial_prior
from audiozoo.train.losses.alignment import forward_sum_loss


def test_beta_binomial_prior_is_the_betabinomial_pmf():
    p = beta_binomial_prior(5, 12, scaling=1.0)
    assert p.shape == (12, 5)
    assert torch.allclose(p.sum(-1), torch.ones(12), atol=1e-6)
    stats = pytest.importorskip("scipy.stats")
    for j in (1, 6, 12):
        ref = stats.betabinom(4, j, 12 - j + 1).pmf(np.arange(5))
        assert np.allclose(p[j - 1].numpy(), ref, atol=1e-6)
    assert p.argmax(-1).tolist() == sorted(p.argmax(-1).tolist())  # the mode walks down the diagonal
    with pytest.raises(ConfigError):
        beta_binomial_prior(0, 3)


def _brute_force(log_attn: torch.Tensor) -> float:
    """-log sum over monotonic surjective alignments (T frames -> N tokens, no blank) / N."""
    t, n = log_attn.shape
    lp = torch.log_softmax(log_attn.double(), -1)
    total = []
    for cuts in itertools.combinations(range(1, t), n - 1):  # durations = compositions of T into N parts
        edges = (0, *cuts, t)
        total.append(sum(float(lp[j, i]) for i in range(n) for j in range(edges[i], edges[i + 1])))
    return -torch.logsumexp(torch.tensor(total), 0).item() / n


def test_forward_sum_equals_brute_force_without_blank():
    torch.manual_seed(0)
    la = torch.randn(1, 6, 3)
    got = forward_sum_loss(torch.log_softmax(la, -1), torch.tensor([3]), torch.tensor([6]), blank_logprob=-1e4)
    assert math.isclose(float(got), _brute_force(la[0]), rel_tol=1e-4)
    # padded tokens and frames do not change an item's loss
    big = torch.full((2, 9, 5), -3.0)
    big[0, :6, :3] = torch.log_softmax(la[0], -1)
    got2 = forward_sum_loss(big, torch.tensor([3, 5]), torch.tensor([6, 9]), blank_logprob=-1e4)
    other = forward_sum_loss(big[1:], torch.tensor([5]), torch.tensor([9]), blank_logprob=-1e4)
    assert math.isclose(float(got2), (float(got) + float(other)) / 2, rel_tol=1e-4)
    with pytest.raises(ConfigError):
        forward_sum_loss(big, torch.tensor([3, 5]), torch.tensor([2, 9]))


def _toy(n_items: int, gen: torch.Generator, patterns: torch.Tensor):
    """Token sequences (6 distinct tokens each) with known durations; the mel is each token's spectrum + noise."""
    items = []
    for _ in range(n_items):
        tok = torch.randperm(patterns.shape[0], generator=gen)[:6]  # distinct tokens: boundaries are identifiable
        dur = torch.randint(2, 7, (6,), generator=gen)
        mel = patterns[tok.repeat_interleave(dur)].T + 0.3 * torch.randn(patterns.shape[1], int(dur.sum()),
                                                                          generator=gen)
        items.append((tok, dur, mel))
    return items


def _batch(items):
    n, t = max(len(i[0]) for i in items), max(i[2].shape[1] for i in items)
    tok = torch.zeros(len(items), n, dtype=torch.long)
    mel = torch.zeros(len(items), items[0][2].shape[0], t)
    for b, (tk, _, m) in enumerate(items):
        tok[b, :len(tk)], mel[b, :, :m.shape[1]] = tk, m
    return tok, torch.tensor([len(i[0]) for i in items]), mel, torch.tensor([i[2].shape[1] for i in items])


def test_aligner_learns_toy_durations_and_beats_uniform():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    patterns = 2 * torch.randn(8, 8, generator=gen)
    train, test = _toy(32, gen, patterns), _toy(8, gen, patterns)
    model = ConvAligner(8, n_mels=8, channels=32, att_dim=16, text_kernels=(3, 1), mel_kernels=(3, 1))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(150):
        tok, tl, mel, fl = _batch(train[(step * 8) % 32:(step * 8) % 32 + 8])
        loss = forward_sum_loss(model(tok, tl, mel, fl, batch_prior(tl, fl, tok.shape[1], mel.shape[2])), tl, fl)
        opt.zero_grad()
        loss.backward()
        opt.step()
    tok, tl, mel, fl = _batch(test)
    pred = model.align(tok, tl, mel, fl)
    err, base = [], []
    for b, (tk, dur, _) in enumerate(test):
        d = pred[b, :len(tk)].numpy()
        assert d.sum() == dur.sum() and (d >= 1).all()
        err.append(np.abs(boundary_errors(d, dur.numpy(), frame_ms=1.0)))
        u = uniform_span_durations(len(tk), int(dur.sum()), (1, int(dur.sum()) - 1))
        base.append(np.abs(boundary_errors(u, dur.numpy(), frame_ms=1.0)))
    assert np.concatenate(err).mean() < 0.5 * np.concatenate(base).mean()
    # an item aligned alone equals the same item in the padded batch
    alone = model.align(*_batch(test[:1]))
    assert torch.equal(alone[0], pred[0, :alone.shape[1]])


def test_boundary_metrics():
    assert onsets([2, 3, 1]).tolist() == [0, 2, 5]
    e = boundary_errors([2, 3, 1, 4], [3, 3, 1, 3], keep=[False, True, False, True], frame_ms=10.0)
    assert e.tolist() == [-10.0, -10.0]
    s = summarize_boundary_errors([-10.0, 30.0, 60.0, 5.0])
    assert s["boundaries"] == 4 and s["mean_abs_ms"] == 26.25 and s["median_abs_ms"] == 20.0
    assert s["within_20ms_pct"] == 50.0 and s["within_50ms_pct"] == 75.0 and s["bias_ms"] == 21.25
    d = uniform_span_durations(6, 40, (10, 30))
    assert d.tolist() == [10, 5, 5, 5, 5, 10]
    tight = uniform_span_durations(5, 5, (0, 5))  # no room: one frame each
    assert tight.tolist() == [1, 1, 1, 1, 1]
    with pytest.raises(ConfigError):
        boundary_errors([1, 2], [1, 2, 3])
