"""Acoustic-condition blocks (AdaSpeech): conditional LayerNorm, the conv encoders, per-token frame means."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from audiozoo.errors import ConfigError
from audiozoo.nn import ConditionalLayerNorm, ConvConditionEncoder, segment_mean


def test_conditional_layer_norm() -> None:
    torch.manual_seed(0)
    cln = ConditionalLayerNorm(6, 4)
    x, cond = torch.randn(2, 5, 6), torch.randn(2, 4)
    assert torch.allclose(cln(x, cond), F.layer_norm(x, (6,)), atol=1e-6)  # starts as a plain LayerNorm
    for p in cln.parameters():
        torch.nn.init.normal_(p)
    gamma, beta = cln.affine(cond)
    assert torch.allclose(cln(x, cond), F.layer_norm(x, (6,)) * gamma[:, None] + beta[:, None], atol=1e-5)
    assert sum(p.numel() for p in cln.parameters()) == 2 * (4 * 6 + 6)
    with pytest.raises(ConfigError):
        cln(x, torch.randn(2, 3))


def test_segment_mean() -> None:
    frames = torch.randn(2, 9, 3)
    durations = torch.tensor([[2, 0, 3, 4], [1, 1, 2, 0]])
    got = segment_mean(frames, durations)
    for i in range(2):
        start = 0
        for n, d in enumerate(durations[i].tolist()):
            want = frames[i, start:start + d].mean(0) if d else torch.zeros(3)
            assert torch.allclose(got[i, n], want, atol=1e-6)
            start += d


def test_conv_condition_encoder_pooling_and_padding() -> None:
    torch.manual_seed(0)
    enc = ConvConditionEncoder(5, 8, 5, 2, out_dim=3, dropout=0.0, pool=True).eval()
    x = torch.randn(2, 11, 5)
    mask = torch.arange(11)[None] >= torch.tensor([11, 6])[:, None]
    with torch.no_grad():
        both = enc(x.masked_fill(mask[..., None], 7.0), mask)  # garbage in the padding must not matter
        alone = enc(x[1:2, :6])
    assert both.shape == (2, 3) and torch.allclose(both[1], alone[0], atol=1e-5)
    seq = ConvConditionEncoder(5, 8, 3, 2, out_dim=4, dropout=0.0).eval()
    with torch.no_grad():
        out = seq(x, mask)
    assert out.shape == (2, 11, 4) and (out[1, 6:] == 0).all()
    with pytest.raises(ConfigError):
        ConvConditionEncoder(5, 8, 4)
