"""NormEMAVectorQuantizer (BEiT v2 / BEATs): unit codebook from spherical k-means, cosine lookup, normalised EMA,
masked frames, straight-through output and the commitment term."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from audiozoo.errors import ConfigError
from audiozoo.nn import NormEMAVectorQuantizer
from audiozoo.nn.quantize import spherical_kmeans
from audiozoo.train.losses.quantize import commitment_loss


def test_spherical_kmeans_finds_directions():
    g = torch.Generator().manual_seed(0)
    centres = F.normalize(torch.randn(4, 8, generator=g), dim=-1)
    x = F.normalize(centres.repeat(50, 1) + 0.05 * torch.randn(200, 8, generator=g), dim=-1)
    torch.manual_seed(0)
    means, counts = spherical_kmeans(x, 4, iters=10)
    assert torch.allclose(means.norm(dim=-1), torch.ones(4), atol=1e-5) and int(counts.sum()) == 200
    assert (means @ centres.T).max(0).values.min() > 0.99  # every true direction found


def test_lookup_init_and_ema_step():
    torch.manual_seed(0)
    q = NormEMAVectorQuantizer(6, 5, decay=0.9).train()
    x = torch.randn(2, 6, 30)
    out = q(x)
    assert q.initted.item() == 1 and torch.allclose(q.embed.norm(dim=-1), torch.ones(5), atol=1e-5)
    z = F.normalize(x, dim=1)
    assert torch.allclose(out.inputs[0], z) and torch.allclose(out.quantized, out.codewords[0])  # value e, grad to z
    # next step: codes by the highest cosine, and each used code moves to l2norm(0.9 e + 0.1 l2norm(mean))
    before = q.embed.clone()
    y = torch.randn(2, 6, 30)
    out = q(y)
    flat = F.normalize(y, dim=1).transpose(1, 2).reshape(-1, 6)
    codes = (flat @ before.T).argmax(-1)
    assert torch.equal(out.codes.reshape(-1), codes)
    assert torch.allclose(out.codewords[0].transpose(1, 2).reshape(-1, 6), before[codes])  # looked up before update
    for k in range(5):
        sel = flat[codes == k]
        want = before[k] if len(sel) == 0 else F.normalize(0.9 * before[k] + 0.1 * F.normalize(sel.mean(0), dim=0),
                                                           dim=0)
        assert torch.allclose(q.embed[k], want, atol=1e-6)
    com = commitment_loss(out)
    assert torch.allclose(com, F.mse_loss(flat, before[codes]))  # the official beta * mse(sg[e], z), beta 1


def test_eval_and_mask_do_not_train_the_codebook():
    torch.manual_seed(0)
    q = NormEMAVectorQuantizer(4, 3).eval()
    x = torch.randn(1, 4, 10)
    assert torch.equal(q(x).codes, torch.zeros(1, 10, dtype=torch.long))  # uninitialised: every vector -> code 0
    assert q.initted.item() == 0 and not q.embed.any()
    q.train()
    mask = torch.zeros(1, 10, dtype=torch.bool)
    q(x, mask=mask)  # no valid frame: nothing to learn from
    assert q.initted.item() == 0
    mask[0, :6] = True
    x2 = x.clone()
    x2[..., 6:] = 1e3 * torch.randn(1, 4, 4)
    torch.manual_seed(1)
    q(x2, mask=mask)
    torch.manual_seed(1)
    r = NormEMAVectorQuantizer(4, 3).train()
    r(x[..., :6])
    assert torch.allclose(q.embed, r.embed, atol=1e-6)  # padded frames left out of k-means and EMA
    with pytest.raises(ConfigError):
        q(torch.randn(1, 5, 3))
