"""audiozoo.nn.attention.MultiHeadAttention vs hand-written softmax attention and torch.nn.MultiheadAttention."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from audiozoo.nn.adapters import PrefixTuning
from audiozoo.nn.attention import MultiHeadAttention


def _manual_attention(x, qkv_w, qkv_b, proj_w, proj_b, heads, key_padding_mask=None, prefix=None):
    """softmax(q k^T / sqrt(d_head)) v per head, written with plain matmuls. ``prefix``: (k, v) (B, P, D)."""
    b, n, d = x.shape
    q, k, v = (x @ qkv_w.T + qkv_b).split(d, dim=-1)
    valid = torch.ones(b, n, dtype=torch.bool) if key_padding_mask is None else ~key_padding_mask
    if prefix is not None:
        k, v = torch.cat([prefix[0], k], 1), torch.cat([prefix[1], v], 1)
        valid = torch.cat([torch.ones(b, prefix[0].shape[1], dtype=torch.bool), valid], 1)
    dh = d // heads
    q = q.view(b, n, heads, dh).transpose(1, 2)
    k = k.view(b, -1, heads, dh).transpose(1, 2)
    v = v.view(b, -1, heads, dh).transpose(1, 2)
    scores = q @ k.transpose(-1, -2) / math.sqrt(dh)
    scores = scores.masked_fill(~valid[:, None, None, :], float("-inf"))
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d)
    return out @ proj_w.T + proj_b


def _mask(b: int, n: int) -> torch.Tensor:
    m = torch.zeros(b, n, dtype=torch.bool)
    m[1, n - 4:] = True  # second item: last 4 positions are padding
    m[2, n - 1:] = True
    return m


@pytest.mark.parametrize("masked", [False, True])
def test_mha_equals_manual_softmax_attention(masked):
    attn = MultiHeadAttention(24, 4).eval()
    x = torch.randn(3, 11, 24)
    mask = _mask(3, 11) if masked else None
    with torch.no_grad():
        out = attn(x, mask)
        ref = _manual_attention(x, attn.qkv.weight, attn.qkv.bias, attn.proj.weight, attn.proj.bias, 4, mask)
    # SDPA vs explicit matmul + softmax in float32: different reduction orders only.
    assert (out - ref).abs().max() < 1e-5


@pytest.mark.parametrize("masked", [False, True])
def test_mha_matches_torch_multihead_attention(masked):
    attn = MultiHeadAttention(32, 8).eval()
    ref = nn.MultiheadAttention(32, 8, batch_first=True).eval()
    with torch.no_grad():  # same weights: fused in_proj == our qkv, out_proj == our proj
        ref.in_proj_weight.copy_(attn.qkv.weight)
        ref.in_proj_bias.copy_(attn.qkv.bias)
        ref.out_proj.weight.copy_(attn.proj.weight)
        ref.out_proj.bias.copy_(attn.proj.bias)
    x = torch.randn(3, 9, 32)
    mask = _mask(3, 9) if masked else None
    ours = attn(x, mask)
    theirs, _ = ref(x, x, x, key_padding_mask=mask, need_weights=False)
    # Two float32 implementations of the same function; rounding-order differences only.
    assert (ours - theirs).abs().max() < 1e-5


def test_mha_padding_does_not_leak():
    attn = MultiHeadAttention(16, 2).eval()
    x = torch.randn(2, 10, 16)
    mask = torch.zeros(2, 10, dtype=torch.bool)
    mask[0, 6:] = True
    x2 = x.clone()
    x2[0, 6:] = 50 * torch.randn(4, 16)
    with torch.no_grad():
        # Valid positions see the same keys/values either way; rounding only.
        assert torch.allclose(attn(x, mask)[0, :6], attn(x2, mask)[0, :6], atol=1e-6)


def test_mha_rejects_indivisible_dim():
    with pytest.raises(ValueError):
        MultiHeadAttention(10, 3)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("hidden", [None, 16])
def test_mha_prefix_equals_manual_attention_over_prefixed_keys(masked, hidden):
    """The ``prefix`` hook (prefix tuning): keys/values = [prefix; projected tokens], prefix never masked."""
    attn = MultiHeadAttention(24, 4).eval()
    attn.prefix = PrefixTuning(24, 4, length=3, hidden=hidden)
    x = torch.randn(3, 11, 24)
    mask = _mask(3, 11) if masked else None
    with torch.no_grad():
        pk, pv = attn.prefix(3)
        out = attn(x, mask)
        ref = _manual_attention(x, attn.qkv.weight, attn.qkv.bias, attn.proj.weight, attn.proj.bias, 4, mask,
                                prefix=(pk, pv))
        assert (out - ref).abs().max() < 1e-5  # SDPA vs explicit softmax: float32 rounding only
        attn.prefix = None
        assert (attn(x, mask) - out).abs().max() > 1e-3  # the prefix does take part in attention
