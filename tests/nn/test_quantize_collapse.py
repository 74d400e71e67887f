"""Codebook-collapse options of audiozoo.nn.VectorQuantizer (standardised lookup, split restarts of dead codes,
fast usage counts): each changes behaviour only when asked, and the standardised lookup keeps a codebook in use on
the moving latent cloud that collapses the default one (docs/models/encodec.md)."""

from __future__ import annotations

import pytest
import torch

from audiozoo.errors import ConfigError
from audiozoo.nn.quantize import ResidualVQ, VectorQuantizer


def _perplexity(codes: torch.Tensor, k: int) -> float:
    p = torch.bincount(codes.reshape(-1), minlength=k).float()
    p = p / p.sum()
    return float(torch.exp(-(p * p.clamp(min=1e-12).log()).sum()))


def _moving_cloud(step: int, n: int = 512, d: int = 8) -> torch.Tensor:
    """A fresh encoder's latents: 16 tight clusters (spread 1e-2) on an offset that jumps by ~1 every step."""
    g = torch.Generator().manual_seed(step)
    centres = 0.01 * torch.randn(16, d, generator=torch.Generator().manual_seed(123))
    offset = torch.randn(d, generator=g) * 1.0 + 3.0
    pts = offset + centres[torch.arange(n) % 16] + 1e-3 * torch.randn(n, d, generator=g)
    return pts.t()[None]  # (1, d, n)


def test_standardized_lookup_survives_a_moving_offset():
    torch.manual_seed(0)
    plain = VectorQuantizer(8, 32, decay=0.9, dead_code_threshold=0.5).train()
    std = VectorQuantizer(8, 32, decay=0.9, dead_code_threshold=0.5, standardize=True).train()
    for step in range(15):
        x = _moving_cloud(step)
        out_plain, out_std = plain(x), std(x)
    assert _perplexity(out_plain.codes, 32) < 3  # the default codebook collapsed onto the offset
    assert _perplexity(out_std.codes, 32) > 10  # standardised: the 16 clusters keep their codes
    # once the offset settles the running statistics follow it; eval / encode / decode use them and the code
    # vectors come back in the input's space, within the clusters' spread
    x = _moving_cloud(99)
    for _ in range(60):
        std(x)
    std.eval()
    codes = std.encode(x)
    assert codes.shape == (1, 512) and _perplexity(codes, 32) > 10
    assert float((std.decode(codes) - x).abs().max()) < 0.01


def test_options_keep_the_default_layout_and_validate():
    keys = set(VectorQuantizer(4, 8).state_dict())
    assert keys == set(VectorQuantizer(4, 8, count_decay=0.8, replace_interp=0.5).state_dict())
    assert set(VectorQuantizer(4, 8, standardize=True).state_dict()) == keys | {"z_mean", "z_var"}
    for bad in (dict(replace_interp=0.0), dict(replace_interp=1.5), dict(count_decay=1.0)):
        with pytest.raises(ConfigError):
            VectorQuantizer(4, 8, **bad)
    rvq = ResidualVQ(4, 2, 8, standardize=True, count_decay=0.5)
    assert all(layer.standardize and layer.count_decay == 0.5 for layer in rvq.layers)


def test_split_restart_puts_a_dead_code_between_a_vector_and_its_code():
    torch.manual_seed(0)
    vq = VectorQuantizer(2, 4, kmeans_init=False, dead_code_threshold=1.0, replace_interp=0.25, count_decay=0.5)
    vq.train()
    with torch.no_grad():
        vq.embed.zero_()
        vq.embed[1:] = 100.0  # dead: far from everything
        vq.embed_avg.copy_(vq.embed * 2.0)  # EMA state consistent with the counts
        vq.cluster_size.fill_(2.0)
        vq.usage.fill_(2.0)
    x = torch.tensor([[[1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0]]])  # one vector (1, 2), four times
    vq(x)
    # usage of codes 1..3 halves to 1.0 -> not dead yet; code 0's EMA moves towards (1, 2)
    assert torch.allclose(vq.embed[1:], torch.full((3, 2), 100.0))
    vq(x)  # 0.5 < 1: dead now -> restarted at e(x) + 0.25 (x - e(x)), between the vector and code 0
    e0 = vq.embed[0]
    target = torch.tensor([1.0, 2.0])
    for code in vq.embed[1:]:
        assert float((code - e0).norm()) < float((target - e0).norm()) + 1e-6
        assert float((code - 100.0).abs().min()) > 50


def test_calibrate_standardization_removes_the_running_average_lag():
    torch.manual_seed(0)
    rvq = ResidualVQ(8, 2, 32, decay=0.9, dead_code_threshold=0.5, standardize=True).train()
    for step in range(15):
        rvq(_moving_cloud(step))
    x = _moving_cloud(15)  # the offset has moved again: the lagging running mean misses the cloud
    rvq.eval()
    assert _perplexity(rvq.encode(x)[:, 0], 32) < 3
    rvq.calibrate_standardization(x)
    assert _perplexity(rvq.encode(x)[:, 0], 32) > 10
    plain = ResidualVQ(8, 1, 4)
    before = {k: v.clone() for k, v in plain.state_dict().items()}
    plain.calibrate_standardization(x)  # layers without standardize: nothing changes
    assert all(torch.equal(before[k], v) for k, v in plain.state_dict().items())


def test_standardized_input_rvq_codes_and_decodes_in_the_standardized_space():
    torch.manual_seed(0)
    plain = ResidualVQ(8, 2, 32, decay=0.9, dead_code_threshold=0.5).train()
    rvq = ResidualVQ(8, 2, 32, decay=0.9, dead_code_threshold=0.5, standardize_input=True).train()
    for step in range(15):
        x = _moving_cloud(step)
        out_plain, out = plain(x), rvq(x)
    assert _perplexity(out_plain.codes[:, 0], 32) < 3
    assert _perplexity(out.codes[:, 0], 32) > 10
    # the output lives in the standardised space: zero mean, unit variance per channel, whatever the offset
    q = out.quantized.detach()
    assert float(q.mean(-1).abs().max()) < 0.3 and 0.5 < float(q.std(-1).mean()) < 1.5
    # straight-through: the gradient reaching x is 1 / std per channel
    xin = x.clone().requires_grad_(True)
    rvq(xin).quantized.sum().backward()
    std = x[0].std(-1, unbiased=False)
    torch.testing.assert_close(xin.grad[0, :, 0], 1 / std, rtol=1e-3, atol=0)
    # eval after calibration: encode / decode agree with training's quantized output
    rvq.calibrate_standardization(x)
    rvq.eval()
    codes = rvq.encode(x)
    assert _perplexity(codes[:, 0], 32) > 10
    torch.testing.assert_close(rvq.decode(codes), rvq(x).quantized, rtol=0, atol=1e-5)
    assert {"in_mean", "in_var", "in_initted"} <= set(rvq.state_dict())
    assert not any(k.startswith("in_") for k in plain.state_dict())
