"""audiozoo.nn.transformer: pre-/post-LN blocks vs torch.nn.TransformerEncoderLayer, DropPath, encoder."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from audiozoo.nn.transformer import DropPath, TransformerBlock, TransformerEncoder


def _torch_layer_like(block: TransformerBlock, norm_first: bool) -> nn.TransformerEncoderLayer:
    d = block.norm1.normalized_shape[0]
    ref = nn.TransformerEncoderLayer(d, block.attn.num_heads, block.mlp.fc1.out_features, dropout=0.0,
                                     activation="gelu", layer_norm_eps=block.norm1.eps, batch_first=True,
                                     norm_first=norm_first)
    with torch.no_grad():
        ref.self_attn.in_proj_weight.copy_(block.attn.qkv.weight)
        ref.self_attn.in_proj_bias.copy_(block.attn.qkv.bias)
        ref.self_attn.out_proj.weight.copy_(block.attn.proj.weight)
        ref.self_attn.out_proj.bias.copy_(block.attn.proj.bias)
        for ours, theirs in ((block.mlp.fc1, ref.linear1), (block.mlp.fc2, ref.linear2),
                             (block.norm1, ref.norm1), (block.norm2, ref.norm2)):
            theirs.weight.copy_(ours.weight)
            theirs.bias.copy_(ours.bias)
    return ref.eval()


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("masked", [False, True])
def test_block_matches_torch_encoder_layer(norm_first, masked):
    block = TransformerBlock(32, 4, mlp_ratio=2.0, norm_first=norm_first).eval()
    with torch.no_grad():  # non-trivial LayerNorm affine so the norm placement matters
        for n in (block.norm1, block.norm2):
            n.weight.normal_(1.0, 0.2)
            n.bias.normal_(0.0, 0.2)
    ref = _torch_layer_like(block, norm_first)
    x = torch.randn(3, 10, 32)
    mask = None
    if masked:
        mask = torch.zeros(3, 10, dtype=torch.bool)
        mask[1, 7:] = True
    # Grad mode on: torch's layer then takes its reference (non-fused) path, whose padded rows are defined.
    ours = block(x, mask)
    theirs = ref(x, src_key_padding_mask=mask)
    # Same math, two float32 implementations: rounding-order differences only.
    assert (ours - theirs).abs().max() < 1e-5


def test_pre_ln_and_post_ln_differ_and_post_ln_ends_normalised():
    pre = TransformerBlock(16, 2, norm_first=True).eval()
    post = TransformerBlock(16, 2, norm_first=False).eval()
    post.load_state_dict(pre.state_dict())
    x = torch.randn(2, 7, 16) * 3 + 2
    with torch.no_grad():
        y_pre, y_post = pre(x), post(x)
    assert not torch.allclose(y_pre, y_post, atol=1e-3)
    # Post-LN ends with LayerNorm (weight 1, bias 0 at init): each token has mean 0 and variance ~1.
    assert y_post.mean(-1).abs().max() < 1e-5
    assert (y_post.var(-1, unbiased=False) - 1).abs().max() < 1e-3  # eps=1e-6 shifts it by ~1e-6 / var
    # Pre-LN keeps the residual stream un-normalised (its mean follows the input's offset of 2).
    assert y_pre.mean(-1).abs().min() > 0.5


def test_drop_path():
    dp = DropPath(0.5)
    x = torch.randn(64, 3, 4) + 5
    dp.eval()
    assert dp(x) is x
    dp.train()
    y = dp(x)
    per_sample = (y / x).reshape(64, -1)
    # Each sample is either dropped (0) or kept and rescaled by 1 / keep = 2.
    scales = per_sample[:, 0]
    assert torch.all((scales == 0) | torch.isclose(scales, torch.tensor(2.0)))
    assert torch.allclose(per_sample, scales[:, None].expand_as(per_sample))
    assert 0 < (scales == 0).sum() < 64  # with p=0.5 over 64 samples both outcomes occur (P(fail) ~ 1e-19)
    assert DropPath(0.0).train()(x) is x


def test_encoder_hidden_and_drop_path_schedule():
    enc = TransformerEncoder(16, depth=3, num_heads=2, drop_path=0.2).eval()
    assert [b.drop_path.p for b in enc.blocks] == pytest.approx([0.0, 0.1, 0.2])
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        out, hidden = enc(x, return_hidden=True)
        assert len(hidden) == 3 and all(h.shape == x.shape for h in hidden)
        assert torch.equal(out, enc.norm(hidden[-1]))
        manual = x
        for blk in enc.blocks:
            manual = blk(manual)
        assert torch.equal(enc(x), enc.norm(manual))
