"""Quantisers (audiozoo.nn.quantize): residual VQ against transformers' EnCodec quantizer with the same codebooks
(exact codes), FSQ against vector-quantize-pytorch and the paper's formulas, k-means init, EMA updates, dead
codes, the straight-through estimator, masks, quantizer dropout."""

from __future__ import annotations

import math

import pytest
import torch

from audiozoo.errors import ConfigError
from audiozoo.nn.quantize import FSQ, ResidualVQ, VectorQuantizer, kmeans


def _clusters(n: int = 600, k: int = 4, d: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points around ``k`` well-separated centres, as ``(1, d, n)`` frames, and the centres."""
    g = torch.Generator().manual_seed(seed)
    centres = 4.0 * torch.randn(k, d, generator=g)
    pts = centres[torch.arange(n) % k] + 0.1 * torch.randn(n, d, generator=g)
    return pts.t()[None], centres


# --------------------------------------------------------------------------- parity
@pytest.mark.parity
def test_residual_vq_matches_encodec_quantizer():
    tr = pytest.importorskip("transformers")
    from transformers.models.encodec.modeling_encodec import EncodecResidualVectorQuantizer

    cfg = tr.EncodecConfig(codebook_size=64, hidden_size=16, target_bandwidths=[1.5, 3.0, 6.0])
    ref = EncodecResidualVectorQuantizer(cfg).eval()
    ours = ResidualVQ(16, cfg.num_quantizers, 64).eval()
    g = torch.Generator().manual_seed(0)
    for a, b in zip(ref.layers, ours.layers):  # the same (random) codebooks
        embed = torch.randn(64, 16, generator=g) * 0.5
        a.codebook.embed.copy_(embed)
        b.embed.copy_(embed)
        b.initted.fill_(1.0)
    x = torch.randn(3, 16, 50, generator=g)
    for bw in (1.5, 6.0, None):
        codes_ref = ref.encode(x, bw)  # (Q, B, T)
        # n_q = floor(bandwidth / (log2(K) frame_rate)): 1.5 kbps -> 3 of 6-bit codes at 75 Hz, 6 kbps -> 13
        n = cfg.num_quantizers if bw is None else math.floor(bw * 1000 / (6 * cfg.frame_rate))
        assert codes_ref.shape[0] == n and ours.bitrate(cfg.frame_rate, n) <= (bw or 6.0) * 1000
        codes = ours.encode(x, n)  # (B, Q, T)
        assert torch.equal(codes, codes_ref.transpose(0, 1))  # exact codes
        torch.testing.assert_close(ours.decode(codes), ref.decode(codes_ref), rtol=0, atol=1e-6)  # measured 0
        assert ours.bitrate(cfg.frame_rate, n) == pytest.approx(n * 6 * cfg.frame_rate)
    out = ours(x)  # eval forward = encode + decode (straight-through value)
    assert torch.equal(out.codes, ours.encode(x))
    torch.testing.assert_close(out.quantized, ours.decode(out.codes), rtol=0, atol=1e-5)


@pytest.mark.parity
@pytest.mark.parametrize("levels,dim", [([8, 5, 5, 5], None), ([7, 5, 4], 12), ([8, 8, 8, 6, 5], None)])
def test_fsq_matches_vector_quantize_pytorch(levels: list[int], dim: int | None):
    vqp = pytest.importorskip("vector_quantize_pytorch")
    ref = vqp.FSQ(levels, dim=dim)
    ours = FSQ(levels, dim=dim)
    if dim is not None:
        ours.project_in.load_state_dict(ref.project_in.state_dict())
        ours.project_out.load_state_dict(ref.project_out.state_dict())
    x = 2.0 * torch.randn(2, 40, ours.dim, generator=torch.Generator().manual_seed(0))  # (B, N, D) for the ref
    out_ref, idx_ref = ref(x)
    out, codes = ours(x.transpose(1, 2))
    assert torch.equal(codes, idx_ref.long())  # exact indices
    torch.testing.assert_close(out.transpose(1, 2), out_ref, rtol=0, atol=1e-6)  # measured 0
    torch.testing.assert_close(ours.decode(codes).transpose(1, 2), ref.indices_to_codes(idx_ref), rtol=0, atol=1e-6)
    assert ours.codebook_size == math.prod(levels)


def test_fsq_paper_formulas():
    levels = [8, 5, 3]
    q = FSQ(levels, bound="paper")
    z = torch.linspace(-4, 4, 81)[None, :, None].expand(1, 81, 3)
    eps = 1e-3
    lv = torch.tensor(levels, dtype=torch.float32)
    half_l = (lv - 1) * (1 - eps) / 2  # App. A.1
    offset = torch.where(lv % 2 == 1, 0.0, 0.5)
    bounded = torch.tanh(z + torch.tan(offset / half_l)) * half_l - offset
    expected = bounded.round() / torch.div(lv, 2, rounding_mode="floor")
    out, codes = q(z.transpose(1, 2).contiguous())
    torch.testing.assert_close(out.transpose(1, 2), expected, rtol=0, atol=0)
    # every level of every channel is reached and the index is the mixed-radix number of the level digits
    digits = (expected * torch.div(lv, 2, rounding_mode="floor") + torch.div(lv, 2, rounding_mode="floor")).long()
    assert [int(digits[0, :, i].unique().numel()) for i in range(3)] == levels
    assert torch.equal(codes[0], digits[0, :, 0] + 8 * digits[0, :, 1] + 40 * digits[0, :, 2])
    all_codes = torch.arange(q.codebook_size)[None]
    assert torch.equal(q.codes_to_indices(q.indices_to_codes(all_codes)), all_codes)
    # straight-through: the gradient of the rounding is the identity (through the tanh bound)
    zz = torch.zeros(1, 3, 4, requires_grad=True)
    q(zz)[0].sum().backward()
    assert (zz.grad > 0).all()


# --------------------------------------------------------------------------- VQ training behaviour
def test_kmeans_finds_the_clusters():
    x, centres = _clusters()
    means, counts = kmeans(x[0].t(), 4, iters=20)
    d = torch.cdist(centres, means)
    assert float(d.min(-1).values.max()) < 0.1 and counts.sum() == 600


def test_vq_kmeans_init_ema_and_straight_through():
    torch.manual_seed(0)
    x, centres = _clusters()
    vq = VectorQuantizer(3, 4, decay=0.9, dead_code_threshold=0.0).train()
    assert vq.initted.item() == 0 and (vq.embed == 0).all()
    xin = x.clone().requires_grad_(True)
    out = vq(xin)
    assert vq.initted.item() == 1
    # k-means on the first batch: every centre has a code within the noise level
    assert float(torch.cdist(centres, vq.embed).min(-1).values.max()) < 0.1
    assert out.codes.shape == (1, 600) and out.codes.unique().numel() == 4
    out.quantized.sum().backward()
    assert torch.equal(xin.grad, torch.ones_like(x))  # straight-through estimator
    torch.testing.assert_close(out.quantized, vq.decode(out.codes), rtol=0, atol=1e-6)
    # EMA: shift the data; after a few batches the codes follow the new means
    for _ in range(60):
        vq(x + 1.0)
    assert float(torch.cdist(centres + 1.0, vq.embed).min(-1).values.max()) < 0.05


def test_vq_dead_codes_are_replaced_by_batch_vectors():
    torch.manual_seed(0)
    x, _ = _clusters(k=2)
    vq = VectorQuantizer(3, 8, kmeans_init=False, dead_code_threshold=1.0).train()
    with torch.no_grad():
        vq.embed.copy_(torch.full((8, 3), 100.0))  # far from the data: only code ... nothing is ever chosen
        vq.embed[0] = 0.0
    vq(x)
    data = x[0].t()
    # every code now lies on a data point (EMA of code 0, or a replaced dead code)
    dist = torch.cdist(vq.embed[1:], data, compute_mode="donot_use_mm_for_euclid_dist")
    assert float(dist.min(-1).values.max()) < 1e-5
    assert (vq.cluster_size[1:] >= 1.0).all()


def test_vq_mask_excludes_padding_from_the_codebook():
    torch.manual_seed(0)
    x, _ = _clusters(n=200)
    padded = torch.cat([x, torch.full((1, 3, 50), 1e3)], -1)
    mask = torch.cat([torch.ones(1, 200), torch.zeros(1, 50)], -1).bool()
    vq = VectorQuantizer(3, 4, dead_code_threshold=0.0).train()
    vq(padded, mask)
    assert float(vq.embed.abs().max()) < 50  # the 1e3 padding never became (or moved) a code


def test_learned_codebook_projection_and_cosine_lookup():
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 32, codebook_dim=4, ema=False, l2_normalize=True, kmeans_init=False,
                         dead_code_threshold=0.0)
    assert isinstance(vq.embed, torch.nn.Parameter)
    x = torch.randn(2, 16, 7, requires_grad=True)
    out = vq(x)
    assert out.quantized.shape == (2, 16, 7) and out.inputs[0].shape == (2, 4, 7)
    (out.quantized.sum() + (out.inputs[0].detach() - out.codewords[0]).square().mean()).backward()
    assert vq.embed.grad is not None and vq.project_in.weight.grad is not None and x.grad is not None
    # cosine lookup: the chosen code maximises the cosine similarity
    z = out.inputs[0].detach().transpose(1, 2).reshape(-1, 4)
    cos = torch.nn.functional.normalize(z, dim=-1) @ torch.nn.functional.normalize(vq.embed.detach(), dim=-1).t()
    assert torch.equal(out.codes.reshape(-1), cos.argmax(-1))


def test_residual_vq_refines_and_quantizer_dropout():
    torch.manual_seed(0)
    x = torch.randn(8, 8, 64)
    rvq = ResidualVQ(8, 4, 32, quantizer_dropout=1.0).train()
    for _ in range(3):
        rvq(x)
    rvq.eval()
    errs = [float((rvq.decode(rvq.encode(x, n)) - x).square().mean()) for n in range(1, 5)]
    assert all(b < a for a, b in zip(errs, errs[1:])), errs  # every extra codebook reduces the error
    rvq.train()
    torch.manual_seed(1)
    out = rvq(x)
    assert out.active is not None and out.active.shape == (8, 4) and out.active[:, 0].all()
    n_used = out.active.sum(-1)
    assert n_used.unique().numel() > 1  # SoundStream: n_q varies per item
    for i in range(8):  # an item's output is the sum of its active codebooks' vectors only
        ref = sum(out.codewords[q][i] for q in range(int(n_used[i])))
        torch.testing.assert_close(out.quantized[i], ref, rtol=0, atol=1e-5)
    assert out.codes.shape == (8, 4, 64) and len(out.inputs) == 4


def test_quantizer_errors():
    with pytest.raises(ConfigError):
        VectorQuantizer(4, 8, decay=1.0)
    with pytest.raises(ConfigError, match="expects"):
        VectorQuantizer(4, 8)(torch.randn(2, 5, 3))
    with pytest.raises(ConfigError, match="n_q"):
        ResidualVQ(4, 2, 8).encode(torch.randn(1, 4, 3), 3)
    with pytest.raises(ConfigError, match="codes"):
        ResidualVQ(4, 2, 8).decode(torch.zeros(1, 3, 5, dtype=torch.long))
    with pytest.raises(ConfigError, match="levels"):
        FSQ([1, 4])
    with pytest.raises(ConfigError, match="bound"):
        FSQ([4, 4], bound="clamp")
