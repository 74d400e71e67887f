"""DDPM/DDIM (audiozoo.nn.diffusion): schedules and steps against diffusers' DDPMScheduler / DDIMScheduler,
prediction conversions, forward noising, batched timesteps, the reverse chain with an oracle model."""

from __future__ import annotations

import pytest
import torch

from audiozoo.errors import ConfigError
from audiozoo.nn.diffusion import NoiseSchedule, beta_schedule, convert_prediction, rescale_zero_terminal_snr

SCHEDULES = [("linear", "linear", 1e-4, 0.02), ("scaled_linear", "scaled_linear", 0.00085, 0.012),
             ("cosine", "squaredcos_cap_v2", 1e-4, 0.02)]


def _data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, 40, generator=g), torch.randn(2, 3, 40, generator=g)


@pytest.mark.parity
@pytest.mark.parametrize("ours,theirs,b0,b1", SCHEDULES)
@pytest.mark.parametrize("pred", ["epsilon", "v_prediction", "sample"])
def test_matches_diffusers_schedulers(ours: str, theirs: str, b0: float, b1: float, pred: str):
    diffusers = pytest.importorskip("diffusers")
    ddpm = diffusers.DDPMScheduler(1000, b0, b1, theirs, prediction_type=pred, clip_sample=False)
    s = NoiseSchedule(ours, 1000, b0, b1, prediction_type=pred)
    # same float32 arithmetic in the same order: measured max |diff| 0.0 for every table and step below
    torch.testing.assert_close(s.alphas_cumprod, ddpm.alphas_cumprod, rtol=0, atol=1e-6)
    x, out = _data()
    for t in (999, 500, 1, 0):
        ref = ddpm.step(out, t, x, generator=torch.Generator().manual_seed(3)).prev_sample
        got = s.ddpm_step(out, t, x, generator=torch.Generator().manual_seed(3))[0]
        torch.testing.assert_close(got, ref, rtol=0, atol=1e-6)
    ddim = diffusers.DDIMScheduler(1000, b0, b1, theirs, prediction_type=pred, clip_sample=False)
    ddim.set_timesteps(50)
    for t in ddim.timesteps[[0, 25, 49]].tolist():
        for eta in (0.0, 1.0):
            ref = ddim.step(out, t, x, eta=eta, generator=torch.Generator().manual_seed(4)).prev_sample
            got = s.ddim_step(out, t, x, t - 20, eta=eta, generator=torch.Generator().manual_seed(4))[0]
            torch.testing.assert_close(got, ref, rtol=0, atol=1e-6)
    noise = torch.randn_like(x)
    tt = torch.tensor([10, 900])
    torch.testing.assert_close(s.q_sample(x, tt, noise), ddpm.add_noise(x, noise, tt), rtol=0, atol=1e-6)
    torch.testing.assert_close(s.velocity(x, tt, noise), ddpm.get_velocity(x, noise, tt), rtol=0, atol=1e-6)


@pytest.mark.parity
@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_timesteps_and_clipping_match_diffusers(spacing: str):
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.DDIMScheduler(1000, timestep_spacing=spacing, steps_offset=0)
    for n in (1, 7, 50, 1000):
        ref.set_timesteps(n)
        assert NoiseSchedule().timesteps(n, spacing).tolist() == ref.timesteps.tolist()
    ddim = diffusers.DDIMScheduler(1000, clip_sample=True, timestep_spacing=spacing)  # x0_hat clamped to [-1, 1]
    ddim.set_timesteps(10)
    x, out = _data(1)
    t = int(ddim.timesteps[0])
    for use_clipped in (False, True):
        ref = ddim.step(out, t, x, use_clipped_model_output=use_clipped).prev_sample
        got = NoiseSchedule(clip_sample=1.0).ddim_step(out, t, x, t - 100, use_clipped_model_output=use_clipped)[0]
        torch.testing.assert_close(got, ref, rtol=0, atol=1e-6)


@pytest.mark.parity
def test_zero_terminal_snr_matches_diffusers():
    ddpm = pytest.importorskip("diffusers.schedulers.scheduling_ddpm")
    betas = beta_schedule("scaled_linear", 1000, 0.00085, 0.012)
    torch.testing.assert_close(rescale_zero_terminal_snr(betas), ddpm.rescale_zero_terminal_snr(betas),
                               rtol=0, atol=1e-6)
    s = NoiseSchedule("scaled_linear", 1000, 0.00085, 0.012, zero_terminal_snr=True)
    assert float(s.alphas_cumprod[-1]) < 1e-8 and float(s.alphas_cumprod[0]) == pytest.approx(1 - 0.00085)


def test_prediction_conversions_round_trip():
    x0, eps = _data(2)
    s = NoiseSchedule("cosine")
    t = torch.tensor([50, 700])
    a = s.alpha_bar(t)
    xt = s.q_sample(x0, t, eps)
    v = s.velocity(x0, t, eps)
    outs = {"epsilon": eps, "sample": x0, "v_prediction": v}
    for src, o in outs.items():
        for dst, want in outs.items():
            torch.testing.assert_close(convert_prediction(o, xt, a, src, dst), want, rtol=1e-4, atol=1e-4)
    with pytest.raises(ConfigError):
        convert_prediction(eps, xt, a, "epsilon", "score")


def test_batched_timesteps_equal_per_item_steps():
    s = NoiseSchedule("linear", prediction_type="v_prediction")
    x, out = _data(3)
    noise = torch.randn_like(x)
    t = torch.tensor([400, 0])
    batched = s.ddpm_step(out, t, x, noise=noise)[0]
    for i in range(2):
        single = s.ddpm_step(out[i:i + 1], int(t[i]), x[i:i + 1], noise=noise[i:i + 1])[0]
        torch.testing.assert_close(batched[i:i + 1], single, rtol=0, atol=1e-6)
    d = s.ddim_step(out, t, x, t - 100, eta=0.5, noise=noise)[0]
    for i in range(2):
        single = s.ddim_step(out[i:i + 1], int(t[i]), x[i:i + 1], int(t[i]) - 100, eta=0.5, noise=noise[i:i + 1])[0]
        torch.testing.assert_close(d[i:i + 1], single, rtol=0, atol=1e-6)


@pytest.mark.parametrize("method,eta", [("ddim", 0.0), ("ddim", 1.0), ("ddpm", 0.0)])
def test_reverse_chain_with_an_oracle_recovers_the_data(method: str, eta: float):
    """A model that knows x0 predicts eps = (x_t - sqrt(a) x0) / sqrt(1 - a): every chain lands on x0."""
    x0 = torch.rand(2, 1, 30) * 1.6 - 0.8
    s = NoiseSchedule("linear")

    def oracle(x_t, t):
        a = s.alpha_bar(t)[:, None, None]
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    out = s.sample(oracle, torch.randn(2, 1, 30, generator=torch.Generator().manual_seed(0)),
                   50 if method == "ddim" else None, method=method, eta=eta,
                   generator=torch.Generator().manual_seed(1))
    # the last step has a_prev = 1: x_prev = x0_hat up to float32 rounding (measured 0 for DDIM, 5e-10 DDPM)
    torch.testing.assert_close(out, x0, rtol=0, atol=2e-5)


def test_diffusion_errors():
    with pytest.raises(ConfigError, match="schedule"):
        NoiseSchedule("sigmoid_v3")
    with pytest.raises(ConfigError, match="prediction"):
        NoiseSchedule(prediction_type="score")
    s = NoiseSchedule()
    x, out = _data()
    with pytest.raises(ConfigError, match="timesteps"):
        s.ddpm_step(out, 1000, x)
    with pytest.raises(ConfigError, match="timesteps"):
        s.q_sample(x, torch.tensor([0.5, 0.2]), out)
    with pytest.raises(ConfigError, match="spacing"):
        s.timesteps(10, "karras")
    with pytest.raises(ConfigError, match="num_steps"):
        s.timesteps(1001)
    with pytest.raises(ConfigError, match="noise"):
        s.ddpm_step(out, 5, x, noise=torch.zeros(1))
    with pytest.raises(ConfigError, match="betas"):
        NoiseSchedule(torch.tensor([0.1, 1.5]))
