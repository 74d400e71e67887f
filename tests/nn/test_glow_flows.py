"""Flows (audiozoo.nn.glow), the gated WaveNet (audiozoo.nn.wavenet) and windowed relative attention
(audiozoo.nn.rel_transformer): invertibility, exact log-determinants, grouped sharing, the attention formula."""

from __future__ import annotations

import torch

from audiozoo.nn.glow import Glow, ResidualCouplingFlow, squeeze, unsqueeze
from audiozoo.nn.rel_transformer import WindowedRelPosAttention
from audiozoo.nn.wavenet import WN


def _perturb(m: torch.nn.Module, s: float = 0.1) -> torch.nn.Module:
    torch.manual_seed(1)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * s)
    return m


def test_squeeze_roundtrip():
    x = torch.randn(2, 3, 8)
    y, m = squeeze(x, torch.ones(2, 1, 8))
    assert y.shape == (2, 6, 4) and m.shape == (2, 1, 4)
    torch.testing.assert_close(unsqueeze(y, m)[0], x)


def test_glow_is_invertible_and_its_logdet_is_exact():
    torch.manual_seed(0)
    glow = _perturb(Glow(4, 8, 3, 1, n_blocks=2, n_layers=2, cond_channels=3, share_wn_layers=2)).double()
    x, g = torch.randn(1, 4, 4, dtype=torch.float64), torch.randn(1, 3, 4, dtype=torch.float64)
    z, logdet = glow(x, None, g)
    back, _ = glow(z, None, g, reverse=True)
    torch.testing.assert_close(back, x)
    jac = torch.autograd.functional.jacobian(lambda v: glow(v.view(1, 4, 4), None, g)[0].reshape(-1), x.reshape(-1))
    torch.testing.assert_close(logdet[0], torch.linalg.slogdet(jac)[1])


def test_grouped_sharing_ties_the_coupling_wavenets():
    glow = Glow(4, 8, 3, 1, n_blocks=4, n_layers=2, cond_channels=3, share_wn_layers=2)
    couplings = [f for f in glow.flows if hasattr(f, "wn")]
    assert couplings[0].wn.in_layers is couplings[1].wn.in_layers
    assert couplings[1].wn.in_layers is not couplings[2].wn.in_layers
    assert couplings[0].wn.cond_layer is not couplings[1].wn.cond_layer  # own condition projections


def test_residual_coupling_flow_preserves_volume():
    torch.manual_seed(0)
    flow = _perturb(ResidualCouplingFlow(4, 8, 3, 2, 3, cond_channels=2)).double()
    x, g = torch.randn(1, 4, 5, dtype=torch.float64), torch.randn(1, 2, 5, dtype=torch.float64)
    mask = torch.ones(1, 1, 5, dtype=torch.float64)
    z = flow(x, mask, g)
    torch.testing.assert_close(flow(z, mask, g, reverse=True), x)
    jac = torch.autograd.functional.jacobian(lambda v: flow(v.view(1, 4, 5), mask, g).reshape(-1), x.reshape(-1))
    torch.testing.assert_close(torch.linalg.slogdet(jac)[1], torch.zeros((), dtype=torch.float64), atol=1e-9, rtol=0)


def test_wavenet_masks_and_conditions():
    torch.manual_seed(0)
    wn = _perturb(WN(8, 3, 1, 3, cond_channels=4))
    x, c = torch.randn(2, 8, 10), torch.randn(2, 4, 10)
    mask = torch.ones(2, 1, 10)
    mask[1, :, 6:] = 0
    y = wn(x * mask, mask, c)
    assert y.shape == x.shape and bool((y[1, :, 6:] == 0).all())
    assert not torch.allclose(y, wn(x * mask, mask, c + 1))


def test_windowed_relative_attention_matches_the_formula():
    """logits_ij = (q_i.k_j + q_i.E_k[j-i]) / sqrt(d), out_i = sum_j p_ij (v_j + E_v[j-i]), only |j - i| <= w."""
    torch.manual_seed(0)
    a = WindowedRelPosAttention(8, 8, heads=2, window=2).eval()
    x = torch.randn(1, 8, 6)
    y = a(x)
    q, k, v = (p(x).view(1, 2, 4, 6) for p in (a.conv_q, a.conv_k, a.conv_v))
    out = torch.zeros(1, 2, 4, 6)
    for h in range(2):
        logits = torch.zeros(6, 6)
        for i in range(6):
            for j in range(6):
                r = q[0, h, :, i] @ k[0, h, :, j]
                if abs(j - i) <= 2:
                    r = r + q[0, h, :, i] @ a.emb_rel_k[0, j - i + 2]
                logits[i, j] = r / 2.0
        p = torch.softmax(logits, -1)
        for i in range(6):
            o = sum(p[i, j] * (v[0, h, :, j] + (a.emb_rel_v[0, j - i + 2] if abs(j - i) <= 2 else 0))
                    for j in range(6))
            out[0, h, :, i] = o
    torch.testing.assert_close(y, a.conv_o(out.reshape(1, 8, 6)), atol=1e-5, rtol=1e-5)
