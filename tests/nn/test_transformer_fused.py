"""fuse_for_inference: the oneDNN fused CPU fast path reproduces the eager TransformerBlock."""

from __future__ import annotations

import pytest
import torch

import audiozoo
from audiozoo.errors import ConfigError
from audiozoo.nn import TransformerEncoder, add_lora
from audiozoo.nn.transformer import (
    FusedTransformerBlock,
    TransformerBlock,
    _mkldnn_ok,
    fusable,
    fuse_for_inference,
)


def _encoder(**kw) -> TransformerEncoder:
    torch.manual_seed(0)
    enc = TransformerEncoder(64, 3, 4, **kw).eval()
    with torch.no_grad():  # non-trivial norms/biases so every fused operand matters
        for p in enc.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return enc


def test_fp32_fused_matches_eager_with_padding_mask():
    enc = _encoder()
    fused = fuse_for_inference(enc)
    assert all(isinstance(b, FusedTransformerBlock) for b in fused.blocks)
    x = torch.randn(2, 37, 64)
    mask = torch.zeros(2, 37, dtype=torch.bool)
    mask[1, 25:] = True  # padding: never attended to
    with torch.inference_mode():
        ref, got = enc(x, mask), fused(x, mask)
        ref_h, got_h = enc(x, return_hidden=True)[1], fused(x, return_hidden=True)[1]
    # Same fp32 maths, different GEMM kernels / summation order: measured max abs diff 1.4e-6 on outputs of
    # magnitude ~4; 1e-5 is float32 rounding headroom, far below any wiring error (>= 1e-2).
    assert (got - ref).abs().max() < 1e-5
    assert len(got_h) == len(ref_h) == 3
    assert ref.abs().max() > 1.0


def test_bf16_fused_close_to_fp32_and_original_untouched():
    enc = _encoder()
    if not _mkldnn_ok(torch.bfloat16):  # an AVX2-only CPU: refused with the reason, nothing half-fused
        with pytest.raises(ConfigError, match="bfloat16 GEMMs are not available"):
            fuse_for_inference(enc, torch.bfloat16)
        pytest.skip("oneDNN bf16 GEMMs are not supported on this CPU (refusal checked)")
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    fused = fuse_for_inference(enc, torch.bfloat16)
    x = torch.randn(2, 50, 64)
    with torch.inference_mode():
        ref = enc(x)
        got = fused(x.bfloat16()).float()
        eager_bf16 = TransformerEncoder(64, 3, 4).eval()
        eager_bf16.load_state_dict(enc.state_dict())
        eager_bf16 = eager_bf16.to(torch.bfloat16)(x.bfloat16()).float()
    # bf16 keeps 8 mantissa bits (relative step 2^-8 = 3.9e-3); three blocks of rounding put both bf16 paths
    # ~3.5e-2 from fp32 on values ~4 (measured: fused 0.036, eager 0.035). The fused path must be no worse
    # than eager bf16 (x1.5 for rounding luck).
    err, err_eager = (got - ref).abs().max(), (eager_bf16 - ref).abs().max()
    assert err < 0.1
    assert err < 1.5 * err_eager + 1e-3
    assert all(type(b) is TransformerBlock for b in enc.blocks)  # the original model is not modified
    assert all(torch.equal(v, enc.state_dict()[k]) for k, v in before.items())


def test_unfusable_blocks_are_kept():
    post_ln = _encoder(norm_first=False)
    assert not any(fusable(b) for b in post_ln.blocks)
    assert all(type(b) is TransformerBlock for b in fuse_for_inference(post_ln).blocks)
    lora = _encoder()
    add_lora(lora, r=2)
    assert all(type(b) is TransformerBlock for b in fuse_for_inference(lora).blocks)
    with pytest.raises(ConfigError):
        FusedTransformerBlock(post_ln.blocks[0])


def test_refuses_non_cpu_model():
    with torch.device("meta"):
        enc = TransformerEncoder(32, 1, 2)
    with pytest.raises(ConfigError, match="CPU"):
        fuse_for_inference(enc)


def test_ast_fused_matches_eager():
    m = audiozoo.create_model("ast_tiny", max_length=48, n_mels=32, embed_dim=64, depth=2, num_heads=2,
                              patch_size=8, fstride=6, tstride=6).eval()
    x = torch.randn(2, 32, 48)
    fused = fuse_for_inference(m)
    with torch.inference_mode():
        # float32 rounding only (see test_fp32_fused_matches_eager_with_padding_mask); measured ~1e-7.
        assert (fused(x) - m(x)).abs().max() < 1e-5
