"""Blocks of audiozoo.nn.delightful (their parity with coqui-tts is in tests/models/test_delightful_tts.py)."""

from __future__ import annotations

import pytest
import torch

from audiozoo.errors import ConfigError
from audiozoo.nn.delightful import ReferenceEncoder, StyleTokenLayer, XLRelPosAttention, average_nonzero
from audiozoo.nn.embeddings import sinusoidal_positions


def test_average_nonzero_skips_zeros_and_empty_tokens():
    values = torch.tensor([[1.0, 0.0, 3.0, 5.0, 0.0, 0.0]])
    d = torch.tensor([[3, 1, 0, 2]])
    assert torch.equal(average_nonzero(values, d), torch.tensor([[2.0, 5.0, 0.0, 0.0]]))


def test_reference_encoder_lengths_and_zeroed_padding():
    enc = ReferenceEncoder(6, (4, 4, 8), 3, (2, 2), 5).eval()
    mel = torch.randn(2, 6, 17)
    states, last, n = enc(mel, torch.tensor([17, 9]))
    assert states.shape == (2, 5, 5) and last.shape == (2, 5) and n.tolist() == [5, 3]
    assert torch.all(states[1, 3:] == 0)
    with pytest.raises(ConfigError):
        ReferenceEncoder(6, (4, 4), 4, (2,), 5)


def test_style_tokens_are_a_convex_combination():
    stl = StyleTokenLayer(8, 5)
    out = stl(torch.randn(3, 4))
    values = stl.value(torch.tanh(stl.tokens))
    assert out.shape == (3, 8)
    # the output lies in the span of the token values with weights summing to 1
    w = torch.linalg.lstsq(values.t(), out.t()).solution
    assert torch.allclose(w.sum(0), torch.ones(3), atol=1e-4)


def test_xl_attention_ignores_masked_keys():
    attn = XLRelPosAttention(8, 2).eval()
    q, kv = torch.randn(1, 3, 8), torch.randn(1, 6, 8)
    pos = sinusoidal_positions(6, 8)
    mask = torch.tensor([[False] * 4 + [True] * 2])
    a = attn(q, kv, pos, mask)
    b = attn(q, torch.cat([kv[:, :4], torch.randn(1, 2, 8)], 1), pos, mask)
    assert torch.allclose(a, b, atol=1e-6)
    with pytest.raises(ConfigError):
        attn(q, kv, pos[:4], mask)
