"""audiozoo.nn.gla: recurrent and chunk forms vs the quadratic definition and each other; the layer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from audiozoo.errors import ConfigError
from audiozoo.nn.gla import GatedLinearAttention, gla_chunk, gla_recurrent


def _quadratic(q, k, v, g, scale, s0):
    """o_t = scale * sum_{s<=t} sum_i q[t,i] k[s,i] prod_{r=s+1..t} alpha[r,i] v_s + scale * (q_t * prod_{r<=t}
    alpha_r) S_0, written with explicit loops over t and s (float64)."""
    q, k, v, g, s0 = (x.double() for x in (q, k, v, g, s0))
    length = q.shape[2]
    out = torch.zeros(*q.shape[:3], v.shape[-1], dtype=torch.float64)
    for t in range(length):
        acc = (q[:, :, t] * g[:, :, : t + 1].sum(2).exp()).unsqueeze(-2) @ s0
        acc = acc.squeeze(-2)
        for s in range(t + 1):
            decay = g[:, :, s + 1: t + 1].sum(2).exp()  # empty product = 1 when s == t
            w = (q[:, :, t] * k[:, :, s] * decay).sum(-1, keepdim=True)
            acc = acc + w * v[:, :, s]
        out[:, :, t] = scale * acc
    return out


def _inputs(b=2, h=2, length=11, dk=4, dv=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q, k = torch.randn(b, h, length, dk, generator=gen), torch.randn(b, h, length, dk, generator=gen)
    v = torch.randn(b, h, length, dv, generator=gen)
    g = F.logsigmoid(torch.randn(b, h, length, dk, generator=gen) * 2)  # strong and weak decays
    s0 = torch.randn(b, h, dk, dv, generator=gen)
    return q, k, v, g, s0


@pytest.mark.parametrize("chunk", [1, 4, 5, 16])
def test_recurrent_and_chunk_agree_with_quadratic_definition(chunk):
    q, k, v, g, s0 = _inputs()
    ref = _quadratic(q, k, v, g, 0.5, s0)
    o_r, s_r = gla_recurrent(q, k, v, g, scale=0.5, initial_state=s0)
    o_c, s_c = gla_chunk(q, k, v, g, chunk_size=chunk, scale=0.5, initial_state=s0)
    assert (o_r.double() - ref).abs().max() <= 1e-5
    assert (o_c - o_r).abs().max() <= 1e-5
    assert (s_c - s_r).abs().max() <= 1e-5


def test_chunk_gradients_equal_recurrent_and_very_small_gates_stay_finite():
    q, k, v, g, _ = _inputs(length=19, seed=1)
    g = g * 20  # log-gates down to about -100 over a chunk: a naive exp(-cumsum) would overflow
    leaves = [t.clone().requires_grad_() for t in (q, k, v, g)]
    o, _ = gla_chunk(*leaves, chunk_size=8)
    o.square().sum().backward()
    grads_c = [t.grad for t in leaves]
    leaves = [t.clone().requires_grad_() for t in (q, k, v, g)]
    o_r, _ = gla_recurrent(*leaves)
    o_r.square().sum().backward()
    assert torch.isfinite(o).all() and (o - o_r).abs().max() <= 1e-5
    for a, b in zip(grads_c, (t.grad for t in leaves)):
        assert torch.isfinite(a).all() and (a - b).abs().max() <= 1e-4


def test_layer_causal_streaming_and_padding():
    torch.manual_seed(0)
    layer = GatedLinearAttention(16, num_heads=2, chunk_size=4).eval()
    rec = GatedLinearAttention(16, num_heads=2, mode="recurrent").eval()
    rec.load_state_dict(layer.state_dict())
    x = torch.randn(2, 10, 16)
    with torch.no_grad():
        y = layer(x)
        assert torch.allclose(rec(x), y, atol=1e-5)
        x2 = x.clone()
        x2[:, 6:] += 1.0  # the future does not change the past
        y2 = layer(x2)
        assert torch.allclose(y2[:, :6], y[:, :6], atol=1e-6) and not torch.allclose(y2[:, 6:], y[:, 6:])
        y1, st = layer(x[:, :7], return_state=True)
        y3, st = layer(x[:, 7:], state=st, return_state=True)
        assert torch.allclose(torch.cat([y1, y3], 1), y, atol=1e-5)
        state = layer.init_state(2)
        steps = []
        for t in range(10):
            out, state = layer.step(x[:, t], state)
            steps.append(out)
        assert torch.allclose(torch.stack(steps, 1), y, atol=1e-5)
        # padding: the returned state is the one after the last valid frame
        pad = torch.zeros(2, 10, dtype=torch.bool)
        pad[1, 7:] = True
        yp, sp = layer(x, padding_mask=pad, return_state=True)
        _, s7 = layer(x[1:, :7], return_state=True)
        assert torch.allclose(yp[1, :7], y[1, :7], atol=1e-6) and torch.allclose(sp[1], s7[0], atol=1e-5)
    with pytest.raises(ConfigError, match="divisible"):
        GatedLinearAttention(10, num_heads=3)
    with pytest.raises(ConfigError, match="initial_state"):
        gla_chunk(*_inputs()[:4], initial_state=torch.zeros(1, 1, 1, 1))
