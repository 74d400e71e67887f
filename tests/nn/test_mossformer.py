"""audiozoo.nn.mossformer (MossFormer2 blocks, as HiFi-SR's encoder uses them) and audiozoo.nn.activations.Snake1d,
against independent formulations."""

from __future__ import annotations

import math

import pytest
import torch

from audiozoo.errors import ConfigError
from audiozoo.nn.activations import Snake1d
from audiozoo.nn.mossformer import FLASHLayer, MossFormer2Encoder, ScaleNorm, UniDeepFsmn
from audiozoo.nn.rope import apply_rotary


def test_partial_interleaved_rotary_matches_complex_rotation() -> None:
    # the FLASH layer rotates the first r dims of its query/key as complex numbers x0 + i x1 times exp(i pos f_k)
    torch.manual_seed(0)
    n, d, r = 7, 12, 8
    x = torch.randn(2, n, d)
    freqs = 1.0 / 10000 ** (torch.arange(0, r, 2).float() / r)
    ang = torch.arange(n).float()[:, None] * freqs[None]
    rep = ang.repeat_interleave(2, dim=-1)
    got = apply_rotary(x, rep.cos(), rep.sin(), interleaved=True)
    z = torch.view_as_complex(x[..., :r].reshape(2, n, r // 2, 2).contiguous()) * torch.polar(torch.ones_like(ang), ang)
    want = torch.cat([torch.view_as_real(z).reshape(2, n, r), x[..., r:]], dim=-1)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)  # float32 rounding only


def test_flash_layer_padding_adds_nothing() -> None:
    # 7 frames in chunks of 4 are zero-padded to 8 inside the layer: the output keeps the 7 real frames, finite,
    # and the chunking is real (one chunk of 7 gives another local attention).
    torch.manual_seed(0)
    layer = FLASHLayer(16, group_size=4, query_key_dim=8, expansion_factor=2.0, kernel=3, dropout=0.0).eval()
    x = torch.randn(1, 7, 16)
    cos, sin = torch.ones(7, 4), torch.zeros(7, 4)
    out = layer(x, cos, sin)
    assert out.shape == x.shape and torch.isfinite(out).all()
    layer.group_size = 7  # one chunk, no padding: a different chunking, so the output must change
    assert not torch.allclose(layer(x, cos, sin), out, atol=1e-5)


def test_scalenorm_and_fsmn_formulas() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 5, 6)
    sn = ScaleNorm(6)
    want = x / (x.norm(dim=-1, keepdim=True) / math.sqrt(6))
    torch.testing.assert_close(sn(x), want)
    fsmn = UniDeepFsmn(6, 4, lorder=2)
    p = fsmn.project(torch.relu(fsmn.linear(x)))
    k = fsmn.conv1.weight[:, 0]  # (C, 3): symmetric taps t-1, t, t+1
    pad = torch.nn.functional.pad(p, (0, 0, 1, 1))
    mem = sum(pad[:, i : i + 5] * k[:, i] for i in range(3))
    torch.testing.assert_close(fsmn(x), x + p + mem, rtol=1e-5, atol=1e-6)


def test_encoder_shapes_nonnegative_and_config_errors() -> None:
    enc = MossFormer2Encoder(8, channels=16, depth=1, group_size=4, query_key_dim=8, rotary_dim=4,
                             fsmn_channels=8, fsmn_lorder=3, conv_kernel=3, dropout=0.0).eval()
    y = enc(torch.randn(2, 8, 11))
    assert y.shape == (2, 8, 11) and (y >= 0).all()
    with pytest.raises(ConfigError):
        MossFormer2Encoder(8, channels=16, query_key_dim=8, rotary_dim=10)


def test_snake() -> None:
    s = Snake1d(3)
    with torch.no_grad():
        s.alpha.copy_(torch.tensor([0.5, 1.0, 2.0]).view(1, 3, 1))
    x = torch.linspace(-3, 3, 9).expand(1, 3, 9)
    a = torch.tensor([0.5, 1.0, 2.0]).view(1, 3, 1)
    torch.testing.assert_close(s(x), x + torch.sin(a * x) ** 2 / a)
