"""MaskGIT decoding (audiozoo.nn.maskgit): the paper's schedule of masked counts, confidence re-masking, kept
prompts, lengths, determinism, the training corruption."""

from __future__ import annotations

import math

import pytest
import torch

from audiozoo.errors import ConfigError
from audiozoo.nn.maskgit import mask_by_confidence, mask_schedule, maskgit_decode, random_mask

V, MASK = 10, 10  # vocabulary 0..9, mask id 10


def test_mask_schedules():
    r = torch.linspace(0, 1, 11)
    for kind in ("cosine", "linear", "square", "cubic", "sqrt"):
        g = mask_schedule(r, kind)
        assert float(g[0]) == 1.0 and abs(float(g[-1])) < 1e-12 and bool((g.diff() <= 0).all()), kind
    assert float(mask_schedule(0.5)) == pytest.approx(math.cos(math.pi / 4))
    with pytest.raises(ConfigError):
        mask_schedule(0.5, "exp")


def test_mask_by_confidence_exact_counts():
    conf = torch.tensor([[0.5, 0.1, 0.9, 0.1, 0.3], [1.0, 2.0, 3.0, 4.0, 5.0]])
    m = mask_by_confidence(conf, torch.tensor([2, 0]))
    assert m.tolist() == [[False, True, False, True, False], [False] * 5]
    assert mask_by_confidence(conf, torch.tensor([5, 3])).sum(-1).tolist() == [5, 3]


def test_decode_follows_the_schedule_and_keeps_decided_tokens():
    n, steps = 16, 6
    target = torch.randint(0, V, (2, n), generator=torch.Generator().manual_seed(0))
    seen = []

    def logits_fn(x):
        seen.append(x.clone())
        # confident about the target everywhere, plus position-dependent noise so confidences differ
        return 5.0 * torch.nn.functional.one_hot(target, V).float() + 0.1 * torch.randn(2, n, V)

    torch.manual_seed(0)
    out = maskgit_decode(logits_fn, torch.full((2, n), MASK), MASK, steps, temperature=0.0,
                         generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, target)
    assert len(seen) == steps
    for step in range(1, steps):  # tokens still masked when step `step` runs: floor(N gamma(step / T))
        expected = max(1, min(n - step, math.floor(n * math.cos(math.pi / 2 * step / steps))))
        masked = (seen[step] == MASK).sum(-1)
        assert masked.tolist() == [expected, expected], step
        decided = seen[step - 1] != MASK
        assert torch.equal(seen[step][decided], seen[step - 1][decided])  # decided tokens never change


def test_prompt_lengths_and_determinism():
    n = 12
    torch.manual_seed(0)
    table = torch.randn(n, V)

    def logits_fn(x):  # depends on the context, like a real model
        ctx = (x != MASK).float().sum(-1, keepdim=True)[..., None]
        return table[None] + 0.3 * ctx

    init = torch.full((2, n), MASK)
    init[:, :3] = torch.tensor([1, 2, 3])
    lengths = torch.tensor([12, 8])
    a = maskgit_decode(logits_fn, init, MASK, 5, lengths=lengths, generator=torch.Generator().manual_seed(7))
    b = maskgit_decode(logits_fn, init, MASK, 5, lengths=lengths, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert torch.equal(a[:, :3], init[:, :3])  # the prompt is kept
    assert (a[0] != MASK).all() and (a[1, :8] != MASK).all() and (a[1, 8:] == MASK).all()  # padding untouched
    assert ((a[:, 3:] >= 0) & (a[:, 3:] < V)).logical_or(a[:, 3:] == MASK).all()
    c = maskgit_decode(logits_fn, init, MASK, 5, lengths=lengths, generator=torch.Generator().manual_seed(8))
    assert not torch.equal(a, c)  # sampling: another seed, another draw


def test_random_mask():
    tokens = torch.randint(0, V, (64, 20), generator=torch.Generator().manual_seed(0))
    lengths = torch.randint(5, 21, (64,), generator=torch.Generator().manual_seed(1))
    masked, m = random_mask(tokens, MASK, lengths=lengths, generator=torch.Generator().manual_seed(2))
    valid = torch.arange(20)[None] < lengths[:, None]
    assert not (m & ~valid).any() and (m.sum(-1) >= 1).all()
    assert torch.equal(masked[m], torch.full((int(m.sum()),), MASK)) and torch.equal(masked[~m], tokens[~m])
    frac = (m.sum(-1).float() / lengths).mean()
    assert 0.5 < float(frac) < 0.8  # E[cos(pi r / 2)] = 2 / pi = 0.64 (plus the ceil)


def test_errors():
    with pytest.raises(ConfigError):
        maskgit_decode(lambda x: x, torch.zeros(3, dtype=torch.long), MASK)
    with pytest.raises(ConfigError, match="steps"):
        maskgit_decode(lambda x: x, torch.zeros(1, 3, dtype=torch.long), MASK, steps=0)
    with pytest.raises(ConfigError, match="logits_fn"):
        maskgit_decode(lambda x: torch.zeros(1, 2, V), torch.full((1, 3), MASK), MASK)
