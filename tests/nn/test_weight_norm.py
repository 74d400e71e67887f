"""audiozoo.nn.weight_norm: apply/remove weight & spectral norm, legacy checkpoint key conversion."""

from __future__ import annotations

import warnings

import torch
from torch import nn

from audiozoo.nn.weight_norm import (
    apply_spectral_norm,
    apply_weight_norm,
    convert_legacy_weight_norm_keys,
    has_weight_norm,
    remove_spectral_norm,
    remove_weight_norm,
)


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(3, 4, 5, padding=2)
        self.up = nn.ConvTranspose1d(4, 2, 4, stride=2, padding=1)
        self.c2 = nn.Conv2d(1, 2, 3, padding=1)
        self.fc = nn.Linear(12, 3)
        self.norm = nn.LayerNorm(3)

    def forward(self, x):  # x (B, 3, 6)
        h = self.up(self.c1(x))  # (B, 2, 12)
        h = self.c2(h.unsqueeze(1)).mean((1, 2))  # (B, 1, 2, 12) -> (B, 2, 2, 12) -> (B, 12)
        return self.norm(self.fc(h))


def _legacy(fn, module, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the deprecated API is exactly what we convert from
        return fn(module, **kw)


def test_apply_weight_norm_types_and_identity():
    net = _Net()
    x = torch.randn(2, 3, 6)
    before = net(x)
    apply_weight_norm(net)
    assert all(has_weight_norm(m) for m in (net.c1, net.up, net.c2, net.fc))
    assert not has_weight_norm(net.norm)
    # At application g = ||v||, so the weight is reproduced up to float32 rounding.
    assert torch.allclose(net(x), before, atol=1e-6)
    # dim=0 on ConvTranspose1d gives g of shape (C_in, 1, 1) as HiFi-GAN checkpoints store it.
    assert net.up.parametrizations.weight.original0.shape == (4, 1, 1)
    n_params = len(list(net.parameters()))
    apply_weight_norm(net)  # idempotent: nothing is normalised twice
    assert len(list(net.parameters())) == n_params
    only = apply_weight_norm(_Net(), types=(nn.Conv1d,))
    assert has_weight_norm(only.c1) and not has_weight_norm(only.fc) and not has_weight_norm(only.up)


def test_remove_weight_norm_keeps_outputs():
    net = apply_weight_norm(_Net())
    with torch.no_grad():  # make g differ from ||v|| so removal has to fold a real rescaling
        net.c1.parametrizations.weight.original0.mul_(1.7)
        net.fc.parametrizations.weight.original0.mul_(0.4)
    x = torch.randn(2, 3, 6)
    before = net(x)
    remove_weight_norm(net)
    assert not any(has_weight_norm(m) for m in net.modules())
    assert "c1.weight" in net.state_dict() and isinstance(net.c1.weight, nn.Parameter)
    assert torch.allclose(net(x), before, atol=1e-6)  # the folded weight is the one used before


def test_spectral_norm_normalises_and_removes():
    lin = apply_spectral_norm(nn.Sequential(nn.Linear(16, 12)))[0]
    lin.train()
    for _ in range(30):  # one power iteration per training forward
        lin(torch.randn(1, 16))
    lin.eval()
    sigma = torch.linalg.matrix_norm(lin.weight.detach(), ord=2)
    assert abs(sigma.item() - 1.0) < 1e-3  # 30 power iterations converge far below this
    x = torch.randn(4, 16)
    before = lin(x)
    remove_spectral_norm(lin)
    assert "weight" in dict(lin.named_parameters())
    assert torch.allclose(lin(x), before, atol=1e-6)


def test_convert_legacy_weight_norm_keys_roundtrip():
    legacy = _legacy(nn.utils.weight_norm, nn.ConvTranspose1d(4, 3, 6, stride=2))
    sd = legacy.state_dict()
    assert set(sd) == {"weight_g", "weight_v", "bias"}
    new = convert_legacy_weight_norm_keys(sd)
    assert set(new) == {"parametrizations.weight.original0", "parametrizations.weight.original1", "bias"}
    ours = apply_weight_norm(nn.ConvTranspose1d(4, 3, 6, stride=2))
    ours.load_state_dict(new, strict=True)
    x = torch.randn(2, 4, 9)
    assert torch.allclose(ours(x), legacy(x), atol=1e-6)  # same g, v -> same weight; rounding only
    assert convert_legacy_weight_norm_keys(new) == new  # new layout passes through unchanged


def test_convert_legacy_keys_mixed_weight_and_spectral_norm():
    """HiFi-GAN's MSD mixes spectral norm (first sub-discriminator) and weight norm; ``weight_v`` means
    different things in the two, and the converter must tell them apart per module."""
    def build(wn, sn):
        return nn.Sequential(sn(nn.Conv1d(1, 4, 5, padding=2)), wn(nn.Conv1d(4, 2, 3, padding=1)))

    legacy = build(lambda m: _legacy(nn.utils.weight_norm, m), lambda m: _legacy(nn.utils.spectral_norm, m))
    legacy.train()
    legacy(torch.randn(1, 1, 20))  # one power iteration updates u, v so they are not the init values
    legacy.eval()
    sd = legacy.state_dict()
    assert {"0.weight_orig", "0.weight_u", "0.weight_v", "1.weight_g", "1.weight_v"} <= set(sd)
    ours = build(lambda m: apply_weight_norm(m), lambda m: apply_spectral_norm(m)).eval()
    new = convert_legacy_weight_norm_keys(sd)
    assert "0.parametrizations.weight.0._v" in new and "1.parametrizations.weight.original1" in new
    ours.load_state_dict(new, strict=True)
    x = torch.randn(2, 1, 20)
    # Eval: both use the stored u, v (no power iteration) and the same sigma formula; rounding only.
    assert torch.allclose(ours(x), legacy(x), atol=1e-6)
