"""Sinusoidal embeddings (audiozoo.nn.embeddings) and the ConvNeXt-V2 block (audiozoo.nn.convnext)."""

from __future__ import annotations

import math

import pytest
import torch

from audiozoo.errors import ConfigError
from audiozoo.nn.convnext import GRN, ConvNeXtV2Block
from audiozoo.nn.embeddings import sinusoidal_positions, timestep_embedding


def test_timestep_embedding_formula():
    t = torch.tensor([0.0, 0.3, 1.0])
    e = timestep_embedding(t, 8, scale=1000.0)
    w = torch.tensor([10000.0 ** (-i / 3) for i in range(4)])  # half - freq_shift = 3 (Grad-TTS spacing)
    ref = torch.cat([torch.sin(1000 * t[:, None] * w), torch.cos(1000 * t[:, None] * w)], -1)
    torch.testing.assert_close(e, ref, rtol=0, atol=2e-4)  # |arg| <= 1000: float32 ulp of the angle is 6e-5
    assert e.shape == (3, 8) and timestep_embedding(t, 9).shape == (3, 9)
    assert (timestep_embedding(t, 9)[:, -1] == 0).all()
    flipped = timestep_embedding(t, 8, flip_sin_to_cos=True)
    assert torch.equal(flipped, torch.cat([timestep_embedding(t, 8)[:, 4:], timestep_embedding(t, 8)[:, :4]], -1))
    assert timestep_embedding(torch.tensor([3, 7]), 6).dtype == torch.float32
    with pytest.raises(ConfigError):
        timestep_embedding(t[:, None], 8)
    with pytest.raises(ConfigError):
        timestep_embedding(t, 2)  # half = 1 = freq_shift: no spacing


@pytest.mark.parity
@pytest.mark.parametrize("shift,flip", [(1.0, False), (0.0, True)])
def test_timestep_embedding_matches_diffusers(shift: float, flip: bool):
    emb = pytest.importorskip("diffusers.models.embeddings")
    t = torch.arange(0, 1000, 37)
    ref = emb.get_timestep_embedding(t, 64, flip_sin_to_cos=flip, downscale_freq_shift=shift)
    ours = timestep_embedding(t, 64, freq_shift=shift, flip_sin_to_cos=flip)
    # the frequencies are the same numbers rounded in another order (1 ulp); angles up to 999 rad make that
    # |arg| * 2^-23 ~ 1.2e-4 in the sine at most: measured 3.1e-5 (shift 1), 0 (shift 0)
    torch.testing.assert_close(ours, ref, rtol=0, atol=2.5e-4)


def test_sinusoidal_positions():
    pe = sinusoidal_positions(6, 10)
    pos = torch.arange(6.0)[:, None]
    div = torch.tensor([10000 ** (-2 * i / 10) for i in range(5)])
    torch.testing.assert_close(pe[:, 0::2], torch.sin(pos * div), rtol=0, atol=1e-6)
    torch.testing.assert_close(pe[:, 1::2], torch.cos(pos * div), rtol=0, atol=1e-6)
    torch.testing.assert_close(sinusoidal_positions(3, 10, offset=3), pe[3:], rtol=0, atol=1e-6)
    assert sinusoidal_positions(4, 7).shape == (4, 7)
    assert math.isclose(float(sinusoidal_positions(1, 4)[0, 1]), 1.0)


def test_grn_and_convnext_v2_block():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 8)
    g = GRN(8)
    assert torch.equal(g(x), x)  # gamma = beta = 0: identity at init (paper eq. 3)
    with torch.no_grad():
        g.gamma.fill_(1.0)
    gx = x.norm(dim=1, keepdim=True)
    torch.testing.assert_close(g(x), x * gx / (gx.mean(-1, keepdim=True) + 1e-6) + x)
    blk = ConvNeXtV2Block(8, 24)
    y = blk(torch.randn(2, 8, 11))
    assert y.shape == (2, 8, 11)
    y.sum().backward()
    assert all(p.grad is not None for n, p in blk.named_parameters() if "grn" not in n)
