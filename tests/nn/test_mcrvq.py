"""MaskedChannelRVQ (Language-Codec's MCRVQ): channel masking of the first three quantizers, the residual stage's
input, encode/decode consistency, straight-through gradients, and the official algorithm's codes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from audiozoo.errors import ConfigError
from audiozoo.nn import MaskedChannelRVQ, ResidualVQ
from audiozoo.train.losses.quantize import commitment_loss

D, K, NQ = 13, 16, 5  # 13 channels: uneven groups 0:4, 4:8, 8:13 (bounds k * D // 3, as the official code)


def _trained(seed: int = 0, **kw) -> tuple[MaskedChannelRVQ, torch.Tensor]:
    """A quantiser whose codebooks were k-means initialised and EMA-updated on one batch; eval mode."""
    torch.manual_seed(seed)
    q = MaskedChannelRVQ(D, NQ, K, kmeans_iters=3, **kw)
    x = torch.randn(3, D, 20)
    q.train()
    q(x)
    return q.eval(), x


def test_groups_follow_the_official_split():
    q = MaskedChannelRVQ(128, 8, 1024)
    assert q.bounds == [0, 42, 85, 128]  # D // 3, 2 D // 3 (core_vq.py shape1, shape2)
    assert [q.codebook_width(k) for k in range(8)] == [42, 43, 43] + [128] * 5
    assert [q.layers[k].embed.shape[1] for k in range(4)] == [42, 43, 43, 128]
    assert q.bitrate(75.0) == 6000.0  # 8 x log2(1024) x 75: the true rate of the "6.6 kbps" model


def test_masked_contribution_is_zero_outside_its_group():
    q, x = _trained()
    codes = q.encode(x)
    for k in range(3):
        lo, hi = q.group(k)
        contrib = q.decode(codes[:, : k + 1]) - (q.decode(codes[:, :k]) if k else 0)
        outside = torch.cat([contrib[:, :lo], contrib[:, hi:]], 1)
        assert outside.abs().max() == 0
        assert contrib[:, lo:hi].abs().max() > 0


def test_masked_code_ignores_channels_outside_its_group():
    q, x = _trained()
    codes = q.encode(x)
    for k in range(3):
        lo, hi = q.group(k)
        y = x.clone()
        y[:, :lo] = 10 * torch.randn_like(y[:, :lo])
        y[:, hi:] = 10 * torch.randn_like(y[:, hi:])
        assert torch.equal(q.encode(y)[:, k], codes[:, k])
        z = x.clone()
        z[:, lo:hi] = 10 * torch.randn_like(z[:, lo:hi])  # its own channels do change its codes
        assert not torch.equal(q.encode(z)[:, k], codes[:, k])


def test_residual_stage_sees_x_minus_the_masked_sum():
    q, x = _trained()
    seen = {}
    hooks = [q.layers[k].register_forward_pre_hook(lambda m, a, k=k: seen.__setitem__(k, a[0].clone()))
             for k in (3, 4)]
    out = q(x)
    for h in hooks:
        h.remove()
    expected = x - q.decode(out.codes[:, :3])
    torch.testing.assert_close(seen[3], expected, rtol=0, atol=1e-6)
    # and the next stage the ordinary RVQ residual
    torch.testing.assert_close(seen[4], expected - q.layers[3].decode(out.codes[:, 3]), rtol=0, atol=1e-6)


def test_encode_decode_equals_forward():
    q, x = _trained()
    for n_q in (1, 2, 3, 4, NQ):
        out = q(x, n_q=n_q)
        codes = q.encode(x, n_q)
        assert codes.shape == (3, n_q, 20) and codes.dtype == torch.int64
        assert torch.equal(codes, out.codes)
        torch.testing.assert_close(q.decode(codes), out.quantized, rtol=0, atol=1e-6)
    # fewer than three codebooks: the uncoded groups decode to zero
    q1 = q.decode(q.encode(x, 1))
    assert q1[:, q.group(0)[1]:].abs().max() == 0


def _official_codes(q: MaskedChannelRVQ, x: torch.Tensor, masked_input: bool) -> torch.Tensor:
    """Language-Codec's algorithm with full-width codebooks (zero outside the group, as training leaves them):
    ``masked_input`` True = its ``forward`` (zeroed inputs), False = its ``encode`` (plain RVQ, no mask)."""
    books = [F.pad(q.layers[k].embed, (q.group(k)[0], D - q.group(k)[1])) for k in range(NQ)]

    def nearest(v, e):  # v (B, D, T), e (K, D)
        return torch.cdist(v.transpose(1, 2), e[None].expand(v.shape[0], -1, -1)).argmin(-1)

    codes, qs, residual = [], [], x
    for k in range(NQ):
        if masked_input and k < 3:
            lo, hi = q.group(k)
            inp = torch.zeros_like(x)
            inp[:, lo:hi] = x[:, lo:hi]
        elif masked_input and k == 3:
            inp = x - sum(qs)
        else:
            inp = residual
        c = nearest(inp, books[k])
        v = F.embedding(c, books[k]).transpose(1, 2)
        codes.append(c)
        qs.append(v)
        residual = (inp if masked_input and k >= 3 else residual) - v
    return torch.stack(codes, 1)


def test_codes_match_the_official_algorithm_and_its_unmasked_encode():
    q, x = _trained(1)
    ours = q.encode(x)
    assert torch.equal(_official_codes(q, x, masked_input=True), ours)
    # the official ``encode`` forgets the mask; with codebooks zero outside their groups it gives the same codes
    assert torch.equal(_official_codes(q, x, masked_input=False), ours)


def test_straight_through_gradients():
    q, x = _trained()
    for n_q in (2, 3, NQ):
        xg = x.clone().requires_grad_(True)
        w = torch.randn_like(x)
        (q(xg, n_q=n_q).quantized * w).sum().backward()
        # official gradient path: once through the masked sum, once per residual stage (EnCodec's RVQ)
        torch.testing.assert_close(xg.grad, w * (1 + max(n_q - 3, 0)) if n_q >= 3 else
                                   w * (torch.arange(D) < q.group(n_q - 1)[1]).float()[None, :, None])


def test_training_draws_n_q_and_commitment_matches_official_scale():
    torch.manual_seed(0)
    q = MaskedChannelRVQ(D, NQ, K, kmeans_iters=2, train_n_q=(3, 4))
    q.train()
    x = torch.randn(2, D, 9)
    seen = {q(x).codes.shape[1] for _ in range(12)}
    assert seen == {3, 4}
    q.eval()
    out = q(x)
    assert out.codes.shape[1] == NQ  # eval: all codebooks
    # official penalty: mean over codebooks of MSE(sg(q_k), input_k) with the masked input zero-padded to D
    ref = []
    for k in range(NQ):
        lo, hi = q.group(k)
        ref.append(F.mse_loss(out.codewords[k], out.inputs[k]))
        assert out.inputs[k].shape == (2, D, 9)
        if k < 3:
            assert out.inputs[k][:, :lo].abs().sum() == 0 and out.inputs[k][:, hi:].abs().sum() == 0
    torch.testing.assert_close(commitment_loss(out), torch.stack(ref).mean())


def test_first_codebook_carries_less_than_plain_rvq():
    """MCRVQ's aim: the first code stream alone describes less of the latent than RVQ's first codebook."""
    torch.manual_seed(0)
    x = torch.randn(4, D, 64)
    m = MaskedChannelRVQ(D, NQ, K, kmeans_iters=5).train()
    r = ResidualVQ(D, NQ, K, kmeans_iters=5).train()
    m(x), r(x)
    m.eval(), r.eval()
    err_m = (m.decode(m.encode(x, 1)) - x).pow(2).mean()
    err_r = (r.decode(r.encode(x, 1)) - x).pow(2).mean()
    assert err_m > err_r


def test_projected_codebooks():
    """``codebook_dim`` (an extension, as DAC): each group is projected to the code space; masking still holds."""
    torch.manual_seed(0)
    q = MaskedChannelRVQ(D, NQ, K, codebook_dim=2, kmeans_iters=2)
    assert [q.layers[k].project_in.in_channels for k in range(4)] == [4, 4, 5, 13]
    x = torch.randn(2, D, 11)
    out = q.train()(x)
    assert [t.shape[1] for t in out.inputs] == [2] * NQ
    q.eval()
    codes = q.encode(x)
    torch.testing.assert_close(q.decode(codes), q(x).quantized, rtol=0, atol=1e-6)
    y = x.clone()
    y[:, 4:] = torch.randn_like(y[:, 4:])
    assert torch.equal(q.encode(y)[:, 0], codes[:, 0])
    assert q.decode(codes[:, :1])[:, 4:].abs().max() == 0


def test_bad_inputs():
    with pytest.raises(ConfigError):
        MaskedChannelRVQ(2, 4, 8)  # fewer channels than masked groups
    with pytest.raises(ConfigError):
        MaskedChannelRVQ(D, 4, 8, train_n_q=(3, 5))
    q = MaskedChannelRVQ(D, 4, 8)
    with pytest.raises(ConfigError):
        q(torch.randn(1, D + 1, 5))
    with pytest.raises(ConfigError):
        q.encode(torch.randn(1, D, 5), n_q=5)
    with pytest.raises(ConfigError):
        q.decode(torch.zeros(1, 5, 3, dtype=torch.long))
