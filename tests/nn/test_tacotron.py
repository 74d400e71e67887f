"""Tacotron 2 blocks: location-sensitive attention and the zoneout LSTM cell (the model's parity with espnet is in
tests/models/test_tacotron2.py)."""

from __future__ import annotations

import pytest
import torch

from audiozoo.errors import ConfigError
from audiozoo.nn.tacotron import LocationSensitiveAttention, ZoneoutLSTMCell


def test_attention_is_a_masked_distribution_that_follows_location():
    torch.manual_seed(0)
    att = LocationSensitiveAttention(query_dim=6, memory_dim=5, attn_dim=4, filters=3, kernel_size=5)
    memory = torch.randn(2, 7, 5)
    mask = torch.arange(7)[None] >= torch.tensor([7, 4])[:, None]
    query, cum = torch.randn(2, 6), torch.zeros(2, 7)
    ctx, w = att(query, memory, att.process_memory(memory), cum, mask)
    torch.testing.assert_close(w.sum(-1), torch.ones(2))
    assert (w[1, 4:] == 0).all() and ctx.shape == (2, 5)
    torch.testing.assert_close(ctx, torch.einsum("bn,bnd->bd", w, memory))
    # the cumulative weights of the previous steps move the scores (the "location" of location-sensitive)
    _, w2 = att(query, memory, att.process_memory(memory), torch.eye(7)[[2, 1]], mask)
    assert not torch.allclose(w, w2)
    with pytest.raises(ConfigError, match="odd kernel"):
        LocationSensitiveAttention(6, 5, kernel_size=4)


def test_zoneout_is_stochastic_in_training_and_its_expectation_in_eval():
    torch.manual_seed(0)
    cell = ZoneoutLSTMCell(3, 4, zoneout=0.3)
    x, state = torch.randn(5, 3), (torch.randn(5, 4), torch.randn(5, 4))
    new = cell.cell(x, state)
    cell.eval()
    h, c = cell(x, state)
    torch.testing.assert_close(h, 0.3 * state[0] + 0.7 * new[0])
    torch.testing.assert_close(c, 0.3 * state[1] + 0.7 * new[1])
    cell.train()
    h, _ = cell(x, state)
    kept = torch.isclose(h, state[0]) & ~torch.isclose(new[0], state[0])
    assert kept.any() and (torch.isclose(h, state[0]) | torch.isclose(h, new[0])).all()
    with pytest.raises(ConfigError, match="zoneout"):
        ZoneoutLSTMCell(3, 4, zoneout=1.5)
