"""Generative losses (audiozoo.train.losses.{flow_matching, diffusion, quantize}) against their defining formulas:
OT-CFM path and PriorGrad weighting, PeriodWave's batch through the loss, DDPM simple loss and Min-SNR weights,
VQ-VAE commitment / codebook terms with masks and quantizer dropout."""

from __future__ import annotations

import pytest
import torch

import audiozoo
from audiozoo.errors import ConfigError
from audiozoo.nn.diffusion import NoiseSchedule
from audiozoo.nn.quantize import ResidualVQ, VectorQuantizer, VQOutput
from audiozoo.train.losses.diffusion import diffusion_loss, min_snr_weight
from audiozoo.train.losses.flow_matching import cfm_loss, flow_matching_loss, ot_cfm_path
from audiozoo.train.losses.quantize import codebook_loss, commitment_loss, vq_losses


# --------------------------------------------------------------------------- flow matching
def test_ot_cfm_path_endpoints_and_target():
    x0, x1 = torch.randn(2, 1, 8), torch.randn(2, 1, 8)
    xt, u = ot_cfm_path(x0, x1, torch.zeros(2, 1, 1), sigma_min=1e-4)
    assert torch.equal(xt, x0) and torch.allclose(u, x1 - (1 - 1e-4) * x0)
    xt, _ = ot_cfm_path(x0, x1, torch.ones(2, 1, 1), sigma_min=1e-4)
    torch.testing.assert_close(xt, 1e-4 * x0 + x1)  # Lipman et al. eq. 20 at t = 1: N(x1, sigma_min^2)
    # the target is d x_t / dt (straight path)
    t, h = torch.full((2, 1, 1), 0.3), 1e-3
    fd = (ot_cfm_path(x0, x1, t + h, 1e-4)[0] - ot_cfm_path(x0, x1, t - h, 1e-4)[0]) / (2 * h)
    torch.testing.assert_close(fd, u, rtol=1e-3, atol=1e-3)


def test_cfm_loss_formula_with_prior_mask_and_priorgrad():
    g = torch.Generator().manual_seed(0)
    x1 = torch.randn(3, 1, 20, generator=g)
    std = 0.2 + torch.rand(3, 1, 20, generator=g)
    mask = (torch.arange(20)[None, None] < torch.tensor([20, 12, 5])[:, None, None]).float()
    t, noise = torch.tensor([0.1, 0.5, 0.9]), torch.randn(3, 1, 20, generator=g)
    seen = {}

    def field(x, tt):
        seen["t"] = tt
        return 0.5 * x

    loss = cfm_loss(field, x1 * mask, prior_std=std, noise_scale=0.5, sigma_min=1e-4, mask=mask, t=t, noise=noise)
    x0 = noise * 0.5 * std * mask
    tt = t.view(3, 1, 1)
    xt = (1 - (1 - 1e-4) * tt) * x0 + tt * x1 * mask
    err = ((0.5 * xt - (x1 * mask - (1 - 1e-4) * x0)) / std) ** 2 * mask
    torch.testing.assert_close(loss, err.sum() / mask.sum())
    assert torch.equal(seen["t"], t)
    plain = cfm_loss(field, x1, t=t, noise=noise)  # standard Gaussian prior, no weighting: the plain mean
    xt = (1 - tt) * noise + tt * x1
    torch.testing.assert_close(plain, ((0.5 * xt - (x1 - noise)) ** 2).mean())
    # generator draws t first, then the noise (PeriodWave's order)
    a = cfm_loss(field, x1, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    t5 = torch.rand(3, 1, 1, generator=g)
    n5 = torch.randn(3, 1, 20, generator=g)
    torch.testing.assert_close(a, cfm_loss(field, x1, t=t5.view(3), noise=n5))
    with pytest.raises(ConfigError):
        cfm_loss(field, x1, t=torch.zeros(2))


def test_flow_matching_loss_on_periodwave():
    info = audiozoo.model_info("periodwave_base")
    m = audiozoo.create_model("periodwave_base", **info.tiny)
    wav = 0.1 * torch.randn(2, 6 * m.hop_length, generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([6 * m.hop_length, 4 * m.hop_length - 10])
    fb = m.flow_matching_batch(wav, lengths)
    assert fb.x1.shape == (2, 1, wav.shape[-1]) and fb.mask[1, 0, 4 * m.hop_length - 10:].sum() == 0
    assert (fb.x1 * (1 - fb.mask)).abs().sum() == 0 and fb.sigma_min == m.config.sigma_min
    loss = flow_matching_loss(m, wav, lengths, generator=torch.Generator().manual_seed(1))
    again = flow_matching_loss(m, wav, lengths, generator=torch.Generator().manual_seed(1))
    assert torch.equal(loss, again) and torch.isfinite(loss)
    loss.backward()
    assert m.estimator.proj.final_layer.parametrizations.weight.original1.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="flow_matching_batch"):
        flow_matching_loss(torch.nn.Linear(2, 2), wav)


# --------------------------------------------------------------------------- diffusion
@pytest.mark.parametrize("pred", ["epsilon", "v_prediction", "sample"])
def test_diffusion_loss_targets(pred: str):
    s = NoiseSchedule("cosine", 100, prediction_type=pred)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(4, 2, 16, generator=g), torch.randn(4, 2, 16, generator=g)
    t = torch.tensor([0, 10, 50, 99])
    target = {"epsilon": noise, "sample": x0, "v_prediction": s.velocity(x0, t, noise)}[pred]
    # a perfect model has zero loss; a zero model has the target's energy
    perfect = diffusion_loss(lambda x, tt: target, x0, s, t=t, noise=noise)
    zero = diffusion_loss(lambda x, tt: torch.zeros_like(x), x0, s, t=t, noise=noise)
    assert float(perfect) == 0.0
    torch.testing.assert_close(zero, target.square().mean())
    mask = torch.ones(4, 1, 16)
    mask[:, :, 10:] = 0
    masked = diffusion_loss(lambda x, tt: torch.zeros_like(x), x0, s, t=t, noise=noise, mask=mask)
    torch.testing.assert_close(masked, target[..., :10].square().mean())
    w = min_snr_weight(s, t, 5.0)
    snr = s.snr(t)
    want = {"epsilon": snr.clamp(max=5) / snr, "v_prediction": snr.clamp(max=5) / (snr + 1),
            "sample": snr.clamp(max=5)}[pred]
    torch.testing.assert_close(w, want)
    weighted = diffusion_loss(lambda x, tt: torch.zeros_like(x), x0, s, t=t, noise=noise, min_snr_gamma=5.0)
    torch.testing.assert_close(weighted, (target.square().mean((1, 2)) * want).mean())
    drawn = diffusion_loss(lambda x, tt: torch.zeros_like(x), x0, s, generator=torch.Generator().manual_seed(3))
    assert torch.isfinite(drawn)


# --------------------------------------------------------------------------- quantisation
def test_commitment_and_codebook_terms():
    torch.manual_seed(0)
    vq = VectorQuantizer(4, 8, ema=False, kmeans_init=False, dead_code_threshold=0.0)
    x = torch.randn(2, 4, 6, requires_grad=True)
    out = vq(x)
    z, e = out.inputs[0], out.codewords[0]
    losses = vq_losses(out, commitment_weight=0.25)
    torch.testing.assert_close(losses["commitment"], (z - e).square().mean())
    torch.testing.assert_close(losses["codebook"], (z - e).square().mean())
    torch.testing.assert_close(losses["vq"], 1.25 * (z - e).square().mean())
    commitment_loss(out).backward()  # moves the encoder side only
    assert x.grad.abs().sum() > 0 and vq.embed.grad is None
    x.grad = None
    codebook_loss(out).backward()  # moves the codebook only
    assert x.grad is None and vq.embed.grad.abs().sum() > 0
    mask = torch.tensor([[True] * 6, [True] * 2 + [False] * 4])
    sel = torch.cat([(z - e)[0], (z - e)[1, :, :2]], -1)
    torch.testing.assert_close(commitment_loss(out, mask), sel.square().mean())


def test_quantizer_dropout_terms_count_active_codebooks_only():
    z = [torch.ones(2, 3, 4), torch.ones(2, 3, 4)]
    e = [torch.zeros(2, 3, 4), torch.full((2, 3, 4), 3.0)]
    active = torch.tensor([[True, True], [True, False]])
    out = VQOutput(torch.zeros(2, 3, 4), torch.zeros(2, 2, 4, dtype=torch.long), z, e, active)
    # layer 0: both items, error 1; layer 1: item 0 only, error 4 -> mean over codebooks (1 + 4) / 2
    assert float(commitment_loss(out)) == pytest.approx(2.5)
    rvq = ResidualVQ(3, 2, 4, quantizer_dropout=1.0).train()
    assert torch.isfinite(vq_losses(rvq(torch.randn(4, 3, 5)), codebook_weight=0.0)["vq"])
    with pytest.raises(ConfigError):
        commitment_loss(VQOutput(torch.zeros(1), torch.zeros(1), [], []))
