"""audiozoo.nn.mamba: selective scan vs a plain loop, MambaMixer vs transformers' MambaMixer, streaming,
bidirectional padding."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from audiozoo.errors import ConfigError
from audiozoo.nn.mamba import BiMambaMixer, MambaBlock, MambaMixer, reverse_padded, selective_scan


def _loop_scan(u, delta, A, B, C, D, z, delta_bias, h0=None):
    """mamba_ssm's selective_scan_ref semantics, one channel, one state dim and one step at a time (float64).
    B/C: (D, N) or (B, N, L) or (B, G, N, L)."""
    bsz, dim, length = u.shape
    n = A.shape[1]
    u, delta, A, B, C = (t.double() for t in (u, delta, A, B, C))
    delta = F.softplus(delta + delta_bias.double()[:, None])
    out = torch.zeros(bsz, dim, length, dtype=torch.float64)
    last = torch.zeros(bsz, dim, n, dtype=torch.float64)

    def coef(m, b, d, t, i):
        if m.ndim == 2:
            return m[d, i]
        if m.ndim == 3:
            return m[b, i, t]
        return m[b, d // (dim // m.shape[1]), i, t]

    for b in range(bsz):
        for d in range(dim):
            h = [0.0 if h0 is None else float(h0[b, d, i]) for i in range(n)]
            for t in range(length):
                y = 0.0
                for i in range(n):
                    dt = delta[b, d, t]
                    h[i] = torch.exp(dt * A[d, i]) * h[i] + dt * coef(B, b, d, t, i) * u[b, d, t]
                    y = y + h[i] * coef(C, b, d, t, i)
                y = y + D[d] * u[b, d, t]
                out[b, d, t] = y * F.silu(z[b, d, t].double())
            last[b, d] = torch.tensor([float(v) for v in h])
    return out, last


@pytest.mark.parametrize("layout", ["shared", "selective", "grouped"])
@pytest.mark.parametrize("mode", ["fused", "sequential", "parallel"])
def test_selective_scan_matches_loop(layout, mode):
    g = torch.Generator().manual_seed(0)
    bsz, dim, length, n = 2, 4, 9, 3
    u, delta, z = (torch.randn(bsz, dim, length, generator=g) for _ in range(3))
    A = -torch.rand(dim, n, generator=g) * 3
    shape = {"shared": (dim, n), "selective": (bsz, n, length), "grouped": (bsz, 2, n, length)}[layout]
    B, C = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    D, bias = torch.randn(dim, generator=g), torch.randn(dim, generator=g)
    h0 = torch.randn(bsz, dim, n, generator=g)
    y, last = selective_scan(u, delta, A, B, C, D, z, bias, delta_softplus=True, return_last_state=True,
                             initial_state=h0, mode=mode)
    y_ref, last_ref = _loop_scan(u, delta, A, B, C, D, z, bias, h0)
    assert (y.double() - y_ref).abs().max() <= 1e-5
    assert (last.double() - last_ref).abs().max() <= 1e-5


@pytest.mark.parity
@pytest.mark.parametrize("mode", ["fused", "sequential"])
@pytest.mark.parametrize("masked", [False, True])
def test_mixer_matches_transformers_mamba_mixer(masked, mode):
    hf = pytest.importorskip("transformers.models.mamba.modeling_mamba")
    from transformers import MambaConfig

    torch.manual_seed(0)
    dim, n, k = 16, 8, 4
    cfg = MambaConfig(hidden_size=dim, state_size=n, conv_kernel=k, expand=2, time_step_rank=3,
                      num_hidden_layers=1, use_conv_bias=True, use_bias=False, use_mambapy=False)
    ref = hf.MambaBlock(cfg, layer_idx=0).eval()
    ours = MambaBlock(dim, d_state=n, d_conv=k, dt_rank=3, eps=cfg.layer_norm_epsilon, scan_mode=mode).eval()
    with torch.no_grad():  # random A_log/D/norm so no parameter keeps its structured init
        for p in ours.parameters():
            p.normal_(0, 0.3)
        ours.mixer.A_log.copy_(torch.randn_like(ours.mixer.A_log).clamp(-2, 1))
    missing = ref.load_state_dict(ours.state_dict(), strict=True)  # same keys, no mapping
    assert not missing.missing_keys and not missing.unexpected_keys
    x = torch.randn(3, 13, dim)
    mask = torch.ones(3, 13, dtype=torch.bool)
    mask[1, 9:] = False
    mask[2, 4:] = False
    with torch.no_grad():
        y_ref = ref(x, attention_mask=mask.long() if masked else None)
        y = ours(x, padding_mask=~mask if masked else None)
        y_mix = ours.mixer(ours.norm(x))
        y_mix_ref = ref.mixer(ref.norm(x))
    assert (y - y_ref).abs().max() <= 1e-5
    assert (y_mix - y_mix_ref).abs().max() <= 1e-5


@pytest.mark.parametrize("mode", ["fused", "sequential", "parallel"])
def test_streaming_chunks_and_steps_equal_full_forward(mode):
    torch.manual_seed(1)
    mixer = MambaMixer(8, d_state=4, d_conv=3, scan_mode=mode).eval()
    x = torch.randn(2, 10, 8)
    with torch.no_grad():
        full = mixer(x)
        y1, st = mixer(x[:, :6], return_state=True)
        y2, st = mixer(x[:, 6:], state=st, return_state=True)
        assert torch.allclose(torch.cat([y1, y2], 1), full, atol=1e-5)
        state = mixer.init_state(2)
        steps = []
        for t in range(10):
            y_t, state = mixer.step(x[:, t], state)
            steps.append(y_t)
        assert torch.allclose(torch.stack(steps, 1), full, atol=1e-5)
        assert torch.allclose(state.ssm, st.ssm, atol=1e-5) and torch.allclose(state.conv, st.conv)


def _scan_case(layout, length, scale, seed=0):
    """Random scan inputs (all requiring grad); ``scale`` multiplies ``A`` (large |delta A|: decays near 0)."""
    g = torch.Generator().manual_seed(seed)
    bsz, dim, n = 2, 6, 4
    u, delta, z = (torch.randn(bsz, dim, length, generator=g) for _ in range(3))
    A = -torch.rand(dim, n, generator=g) * scale
    shape = {"shared": (dim, n), "selective": (bsz, n, length), "grouped": (bsz, 2, n, length)}[layout]
    B, C = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    D, bias = torch.randn(dim, generator=g), torch.randn(dim, generator=g) + 1.0
    h0 = torch.randn(bsz, dim, n, generator=g)
    return [t.requires_grad_() for t in (u, delta, A, B, C, D, z, bias, h0)]


@pytest.mark.parametrize("layout", ["shared", "selective", "grouped"])
@pytest.mark.parametrize(("length", "scale"), [(300, 3.0), (300, 200.0), (5, 1.0), (1, 1.0)])
def test_fused_scan_equals_sequential_with_gradients(layout, length, scale):
    """The fused mode's outputs, last state and every input gradient equal the autograd loop's (1e-5 relative);
    scale 200 drives ``delta * A`` to about -600 (exp underflows to 0: no overflow, no NaN)."""
    ins = _scan_case(layout, length, scale)
    results = {}
    for mode in ("sequential", "fused"):
        y, last = selective_scan(*ins[:8], delta_softplus=True, return_last_state=True, initial_state=ins[8],
                                 mode=mode)
        g = torch.Generator().manual_seed(1)
        loss = (y * torch.randn(y.shape, generator=g)).sum() + (last * torch.randn(last.shape, generator=g)).sum()
        results[mode] = [y, last, *torch.autograd.grad(loss, ins)]
    for name, a, b in zip(["y", "last", "u", "delta", "A", "B", "C", "D", "z", "bias", "h0"], results["fused"],
                          results["sequential"]):
        assert torch.isfinite(a).all(), name
        assert (a - b).abs().max() <= 1e-5 * b.abs().max().clamp_min(1e-6), name


def test_fused_scan_trains_under_bf16_autocast():
    """Under ``torch.autocast("cpu", bfloat16)`` the scan stays float32 (as documented), so the fused mode's
    backward runs (its readout matmul used to come out bf16 and the backward failed on the dtype) and its
    outputs and gradients equal the sequential loop's under the same autocast."""
    results = {}
    for mode in ("sequential", "fused"):
        ins = _scan_case("selective", 40, 3.0)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = selective_scan(*ins[:8], delta_softplus=True, initial_state=ins[8], mode=mode)
            loss = (y.float() * torch.linspace(-1, 1, y.shape[-1])).sum()
        results[mode] = [y, *torch.autograd.grad(loss, ins)]
    assert results["fused"][0].dtype == torch.float32
    for a, b in zip(results["fused"], results["sequential"]):
        assert torch.isfinite(a).all() and (a - b).abs().max() <= 1e-5 * b.abs().max().clamp_min(1e-6)


def test_fused_scan_refuses_a_second_backward():
    ins = _scan_case("selective", 4, 1.0)
    y = selective_scan(*ins[:8], delta_softplus=True, mode="fused")
    y.sum().backward(retain_graph=True)
    with pytest.raises(ConfigError, match="one backward"):
        y.sum().backward()


def test_bidirectional_padding_does_not_leak_and_gradients_flow():
    torch.manual_seed(2)
    block = MambaBlock(8, bidirectional=True, d_state=4, scan_mode="parallel").eval()
    lengths = [7, 4]
    x = torch.randn(2, 7, 8)
    x[1, 4:] = 100.0  # garbage in the padding
    pad = torch.arange(7)[None] >= torch.tensor(lengths)[:, None]
    with torch.no_grad():
        y = block(x, padding_mask=pad)
        for b, n in enumerate(lengths):
            alone = block(x[b:b + 1, :n])
            assert torch.allclose(y[b, :n], alone[0], atol=1e-5)
        # the backward direction matters: changing the last valid frame changes the first output
        x2 = x.clone()
        x2[1, 3] += 1.0
        assert not torch.allclose(block(x2, padding_mask=pad)[1, 0], y[1, 0])
    block.train()
    block(torch.randn(2, 5, 8)).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())
    assert {"mixer.conv1d_b.weight", "mixer.A_b_log", "mixer.D_b", "mixer.dt_proj_b.bias"} <= set(block.state_dict())


def test_reverse_padded_and_errors():
    x = torch.arange(10.0).view(2, 5)
    assert reverse_padded(x, torch.tensor([5, 3])).tolist() == [[4, 3, 2, 1, 0], [7, 6, 5, 8, 9]]
    mixer = MambaMixer(4)
    with pytest.raises(ConfigError, match="padding_mask"):
        mixer(torch.randn(1, 3, 4), padding_mask=torch.zeros(1, 3, dtype=torch.bool), return_state=True)
    with pytest.raises(ConfigError, match="mode"):
        MambaMixer(4, scan_mode="fast")
    with pytest.raises(ConfigError, match="right padding"):
        BiMambaMixer(4)(torch.randn(1, 3, 4), padding_mask=torch.tensor([[True, False, False]]))
