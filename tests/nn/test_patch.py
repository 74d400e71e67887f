"""audiozoo.nn.patch: AST patch-grid arithmetic, token order, position-embedding resampling."""

from __future__ import annotations

import pytest
import torch

from audiozoo.nn.patch import PatchEmbed, resample_pos_embed


def test_ast_grid_arithmetic():
    # AST: 128 mel bins x 1024 frames, 16x16 patches at stride 10:
    # (128 - 16) // 10 + 1 = 12 rows, (1024 - 16) // 10 + 1 = 101 columns -> 1212 patches (Gong et al. 2021).
    pe = PatchEmbed((128, 1024), 16, 10, 1, embed_dim=8)
    assert pe.grid_size == (12, 101)
    assert pe.num_patches == 1212
    assert pe(torch.randn(1, 1, 128, 1024)).shape == (1, 1212, 8)
    # Non-overlapping ViT case and another length.
    assert PatchEmbed((128, 100), 16, 16).grid_size == (8, 6)
    assert pe.grid(128, 512) == (12, 50)


def test_patch_tokens_are_frequency_major():
    pe = PatchEmbed((20, 30), patch_size=4, stride=3, embed_dim=1)
    with torch.no_grad():  # the token value = the patch's top-left input sample
        pe.proj.weight.zero_()
        pe.proj.weight[0, 0, 0, 0] = 1.0
        pe.proj.bias.zero_()
    x = torch.arange(20 * 30, dtype=torch.float32).reshape(1, 1, 20, 30)
    tokens = pe(x)[0, :, 0]
    gf, gt = pe.grid_size
    for f, t in [(0, 0), (0, gt - 1), (1, 0), (gf - 1, 3)]:
        assert tokens[f * gt + t] == x[0, 0, 3 * f, 3 * t]


def test_patch_embed_rejects_too_small_input():
    with pytest.raises(ValueError, match="smaller than one patch"):
        PatchEmbed((128, 1024), 16, 10)(torch.randn(1, 1, 128, 8))


def test_resample_pos_embed_identity_and_shapes():
    pos = torch.randn(1, 2 + 12 * 101, 8)
    assert resample_pos_embed(pos, (12, 101), (12, 101), num_prefix_tokens=2) is pos
    out = resample_pos_embed(pos, (12, 101), (12, 50), num_prefix_tokens=2)
    assert out.shape == (1, 2 + 12 * 50, 8)
    assert torch.equal(out[:, :2], pos[:, :2])  # cls/dist embeddings are kept as they are
    with pytest.raises(ValueError):
        resample_pos_embed(pos, (12, 100), (12, 50), num_prefix_tokens=2)


def test_resample_pos_embed_values():
    # A grid that varies only along time keeps that structure: every frequency row is identical and the
    # time profile stays increasing; a constant grid stays constant (bilinear weights sum to 1).
    gf, gt = 3, 10
    ramp = torch.linspace(0, 1, gt).repeat(gf)[None, :, None].expand(1, gf * gt, 4)
    out = resample_pos_embed(ramp, (gf, gt), (5, 17)).reshape(5, 17, 4)
    assert torch.allclose(out, out[:1].expand_as(out), atol=1e-6)  # rows equal up to rounding
    assert torch.all(out[0, 1:, 0] >= out[0, :-1, 0])
    const = torch.full((1, gf * gt, 4), 0.7)
    assert torch.allclose(resample_pos_embed(const, (gf, gt), (4, 7)), torch.full((1, 28, 4), 0.7), atol=1e-6)
