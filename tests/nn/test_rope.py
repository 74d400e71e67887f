"""audiozoo.nn.rope vs transformers' Llama RoPE, the complex-number definition, and RoPE's relative property."""

from __future__ import annotations

import pytest
import torch

from audiozoo.errors import ConfigError
from audiozoo.nn.rope import RotaryEmbedding, apply_rotary, rope_cos_sin, rope_inv_freq


def _complex_rope(x: torch.Tensor, positions: torch.Tensor, base: float) -> torch.Tensor:
    """The paper's definition (eq. 34), as Meta's original Llama writes it: pairs (x[2i], x[2i+1]) as complex
    numbers multiplied by exp(j * m * theta_i). ``x (..., L, D)``, float64."""
    d = x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    rot = torch.polar(torch.ones(len(positions), d // 2, dtype=torch.float64), positions[:, None].double() * theta)
    xc = torch.view_as_complex(x.double().unflatten(-1, (-1, 2)).contiguous())
    return torch.view_as_real(xc * rot).flatten(-2)


@pytest.mark.parity
def test_matches_transformers_llama():
    llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    from transformers import LlamaConfig

    b, h, n, d, base = 2, 3, 37, 16, 500000.0
    cfg = LlamaConfig(hidden_size=h * d, num_attention_heads=h, rope_parameters={"rope_type": "default",
                                                                                 "rope_theta": base})
    ref_rope = llama.LlamaRotaryEmbedding(cfg)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(b, h, n, d, generator=g), torch.randn(b, h, n, d, generator=g)
    # per-sample positions, with an offset as in KV-cached decoding
    position_ids = torch.stack([torch.arange(n) + 5, torch.arange(n) + 1000])
    cos_ref, sin_ref = ref_rope(q, position_ids)
    q_ref, k_ref = llama.apply_rotary_pos_emb(q, k, cos_ref, sin_ref)

    rope = RotaryEmbedding(d, base=base)
    cos, sin = rope.cos_sin(n, positions=position_ids)
    assert (cos - cos_ref).abs().max() <= 1e-6 and (sin - sin_ref).abs().max() <= 1e-6
    q_ours, k_ours = rope(q, positions=position_ids), rope(k, positions=position_ids)
    assert (q_ours - q_ref).abs().max() <= 1e-6
    assert (k_ours - k_ref).abs().max() <= 1e-6
    # shared positions (L,) with an offset give the same as Llama's position_ids for that offset
    q0 = rope(q, offset=5)
    assert (q0[0] - q_ref[0]).abs().max() <= 1e-6


def test_interleaved_matches_complex_definition_and_half_split_by_permutation():
    n, d, base = 11, 8, 10000.0
    x = torch.randn(2, n, 4, d)  # (B, L, H, D)
    pos = torch.arange(n)
    cos, sin = rope_cos_sin(pos, rope_inv_freq(d, base), interleaved=True)
    ours = apply_rotary(x, cos, sin, interleaved=True, seq_dim=-3)
    ref = _complex_rope(x.transpose(1, 2), pos, base).transpose(1, 2)
    assert (ours.double() - ref).abs().max() <= 1e-5
    # half-split = interleaved after moving pair i to dims (i, i + d/2)
    perm = torch.cat([torch.arange(0, d, 2), torch.arange(1, d, 2)])
    cos_h, sin_h = rope_cos_sin(pos, rope_inv_freq(d, base), interleaved=False)
    half = apply_rotary(x[..., perm], cos_h, sin_h, interleaved=False, seq_dim=-3)
    assert torch.allclose(half, ours[..., perm], atol=1e-6)


def test_partial_rotary_leaves_tail_and_relative_property():
    rope = RotaryEmbedding(12, rotary_dim=8, interleaved=True)
    q, k = torch.randn(1, 1, 6, 12), torch.randn(1, 1, 6, 12)
    qr = rope(q)
    assert torch.equal(qr[..., 8:], q[..., 8:])
    assert not torch.allclose(qr[..., 1:, :8], q[..., 1:, :8])
    # <R_m q, R_n k> depends only on m - n: shift both by 7 positions
    qs, ks = rope(q, offset=7), rope(k, offset=7)
    assert torch.allclose(qr @ rope(k).transpose(-1, -2), qs @ ks.transpose(-1, -2), atol=1e-5)
    # norms are preserved
    assert torch.allclose(qr.norm(dim=-1), q.norm(dim=-1), atol=1e-5)


def test_offset_equals_slice_of_full_sequence():
    rope = RotaryEmbedding(16)
    x = torch.randn(2, 4, 20, 16)
    full = rope(x)
    assert torch.allclose(rope(x[:, :, 13:], offset=13), full[:, :, 13:], atol=0)
    assert torch.allclose(rope(x[:, :, 19:], offset=19), full[:, :, 19:], atol=0)


def test_bad_inputs_raise():
    with pytest.raises(ConfigError, match="even"):
        rope_inv_freq(7)
    with pytest.raises(ConfigError, match="head_dim"):
        RotaryEmbedding(8, rotary_dim=16)
    rope = RotaryEmbedding(8)
    with pytest.raises(ConfigError, match="head_dim"):
        rope(torch.randn(2, 5, 6))
    cos, sin = rope.cos_sin(5)
    with pytest.raises(ConfigError, match="positions"):
        apply_rotary(torch.randn(2, 4, 8), cos, sin)
