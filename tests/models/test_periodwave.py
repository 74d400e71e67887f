"""PeriodWave (arXiv:2408.07547): architecture counts, periodify, FreeU, sampler NFE, DWT path, variants,
checkpoint converter, ONNX export of the estimator."""

from __future__ import annotations

import pytest
import torch

import audiozoo
from audiozoo.dsp.wavelet import haar_dwt, haar_idwt
from audiozoo.errors import AudioError, ConfigError
from audiozoo.models.vocoder.periodwave import (
    PeriodWave,
    PeriodWaveConfig,
    checkpoint_filter_fn,
    periodify,
    unperiodify,
)
from audiozoo.train.losses.flow_matching import flow_matching_loss


def _tiny(**kw) -> PeriodWave:
    return audiozoo.create_model("periodwave_base", **{**audiozoo.model_info("periodwave_base").tiny, **kw})


def _mel(m: PeriodWave, frames: int = 12, batch: int = 2, seed: int = 0) -> torch.Tensor:
    # a plausible log-mel (speech-like level), so the energy prior is not pinned at its floor
    return torch.randn(batch, m.n_mels, frames, generator=torch.Generator().manual_seed(seed)) - 4.0


# --------------------------------------------------------------------------- architecture
def test_canonical_config_and_parameter_split_on_meta():
    with torch.device("meta"):
        m = audiozoo.create_model("periodwave_base")
    c = m.config
    assert (c.sample_rate, c.n_mels, c.hop_length, c.hidden_dim, c.periods) == (24000, 100, 256, 512, (1, 2, 3, 5, 7))
    assert c.mel_upsample == 4 and (c.steps, c.solver, c.temperature) == (16, "midpoint", 0.667)
    e = m.estimator

    def count(mod):
        return sum(p.numel() for p in mod.parameters())

    # Counted from the official periodwave.FlowMatch(100, [1,2,3,5,7], 0.5, 32, 512) (legacy weight norm g + v)
    assert count(e.mel_cond) == 20_921_088
    assert count(e.mlp) == 2_099_712
    assert count(e.period_emb) == 1_280
    assert count(e.unet) == 6_763_904  # ONE U-Net shared by the five periods
    assert count(e.proj) == 19_041
    assert count(m) == 29_805_025


def test_variants_multi_period_and_dwt_on_meta():
    with torch.device("meta"):
        multi = audiozoo.create_model("periodwave_base", estimator="multi")
        dwt = audiozoo.create_model("periodwave_base", dwt_levels=1)
    assert len(multi.estimator.unets) == 5 and not hasattr(multi.estimator, "period_emb")
    assert not hasattr(multi.estimator, "unet")
    assert dwt.config.mel_upsample == 2  # the bottleneck runs at 2 x 64 samples per step on the sub-bands
    assert dwt.estimator.unet.downs[0].down.parametrizations.weight.original1.shape[1] == 2  # 2 bands in
    assert dwt.estimator.proj.final_layer.parametrizations.weight.original1.shape[0] == 2  # 2 bands out


def test_config_errors():
    with pytest.raises(ConfigError, match="multiple"):
        PeriodWaveConfig(hop_length=200)  # not a multiple of the 64-sample bottleneck
    with pytest.raises(ConfigError, match="multiple"):
        PeriodWaveConfig(dwt_levels=3)  # 2^3 * 64 = 512 > hop 256
    with pytest.raises(ConfigError, match="solver"):
        PeriodWaveConfig(solver="rk4")
    with pytest.raises(ConfigError, match="estimator"):
        PeriodWaveConfig(estimator="separate")
    with pytest.raises(ConfigError, match="periods"):
        PeriodWaveConfig(periods=(2, 2))
    with pytest.raises(ConfigError, match="energy_max"):
        PeriodWaveConfig(energy_min=5.0, energy_max=1.0)


# --------------------------------------------------------------------------- periodify
@pytest.mark.parametrize("period", [1, 2, 3, 5, 7])
@pytest.mark.parametrize("mode", ["reflect", "constant"])
def test_periodify_round_trip(period: int, mode: str):
    x = torch.randn(2, 3, 1001)
    y = periodify(x, period, multiple=4, mode=mode)
    assert y.shape[:2] == (2, 3) and y.shape[-1] == period and y.shape[2] % 4 == 0
    assert y.shape[2] * period >= 1001 and (y.shape[2] - 4) * period < 1001  # the smallest padding
    for j in range(period):  # column j is the polyphase component x[j::p] (HiFi-GAN MPD layout)
        col = x[..., j::period]
        assert torch.equal(y[..., : col.shape[-1], j], col)
    assert torch.equal(unperiodify(y, 1001), x)
    if mode == "constant" and y.shape[2] * period > 1001:
        assert (y.reshape(2, 3, -1)[..., 1001:] == 0).all()


def test_periodify_short_signal_falls_back_to_zeros_and_errors():
    x = torch.randn(1, 1, 5)
    y = periodify(x, 7, multiple=2)  # 9 samples of padding > 5: reflect impossible, zeros instead
    assert y.shape == (1, 1, 2, 7) and torch.equal(unperiodify(y, 5), x)
    with pytest.raises(AudioError):
        periodify(torch.randn(10), 2)
    with pytest.raises(ConfigError):
        periodify(x, 2, mode="circular")


# --------------------------------------------------------------------------- forward / sampler
def test_forward_shapes_lengths_and_determinism():
    m = _tiny().eval()
    mel = _mel(m, 12)
    with torch.no_grad():
        wav, wl = m(mel, torch.tensor([12, 7]))
        again, _ = m(mel, torch.tensor([12, 7]))
    assert wav.shape == (2, 12 * m.hop_length) and wl.tolist() == [12 * 64, 7 * 64]
    assert (wav[1, 7 * 64:] == 0).all() and wav[1, : 7 * 64].abs().sum() > 0
    assert torch.equal(wav, again)  # forward uses the fixed config.seed
    with pytest.raises(AudioError, match="mel spectrogram"):
        m(torch.randn(1, m.n_mels + 1, 5))


@pytest.mark.parametrize("solver,per_step", [("euler", 1), ("midpoint", 2)])
def test_sampler_honours_steps_and_nfe(solver: str, per_step: int):
    m = _tiny().eval()
    calls = []
    inner = m.estimator.vector_field

    def counting(*a, **k):
        calls.append(1)
        return inner(*a, **k)

    m.estimator.vector_field = counting
    with torch.no_grad():
        for steps in (1, 3):
            calls.clear()
            m.sample(_mel(m, 6, 1), steps=steps, solver=solver)
            assert len(calls) == steps * per_step == m.last_nfe
    with pytest.raises(ConfigError):
        m.sample(_mel(m, 6, 1), steps=0)


def test_sampler_solvers_agree_with_many_steps():
    """Euler and midpoint integrate the same ODE: with more steps they converge to the same waveform."""
    torch.manual_seed(0)
    m = _tiny().eval()
    mel = _mel(m, 6, 1)
    with torch.no_grad():
        e8 = m.sample(mel, steps=8, solver="euler")[0]
        e64 = m.sample(mel, steps=64, solver="euler")[0]
        mid8 = m.sample(mel, steps=8, solver="midpoint")[0]
    # midpoint (2nd order) at 8 steps is closer to the fine Euler solution than Euler (1st order) at 8 steps
    assert (mid8 - e64).abs().max() < (e8 - e64).abs().max()


def test_freeu_only_at_inference_and_only_when_enabled():
    torch.manual_seed(0)
    m = _tiny()
    with torch.no_grad():  # random (non-zero) weights everywhere so the U-Net's skips carry signal
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    mel = _mel(m, 10)
    wav = 0.1 * torch.randn(2, 10 * m.hop_length, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        m.eval()
        plain = m.sample(mel, freeu=False)[0]
        freeu = m.sample(mel, freeu=True)[0]
        assert torch.equal(m(mel)[0], plain)  # config.freeu is off by default
        assert (freeu - plain).abs().max() > 1e-3  # measured 0.014 (peak 0.48)
        m.config.freeu = True
        assert torch.equal(m(mel)[0], freeu)  # enabled by config -> forward applies it
        m.train()  # training mode: FreeU is never applied (sampling or loss)
        assert torch.equal(m.sample(mel, freeu=True)[0], plain)
        loss_on = flow_matching_loss(m, wav, generator=torch.Generator().manual_seed(1))
        m.config.freeu = False
        loss_off = flow_matching_loss(m, wav, generator=torch.Generator().manual_seed(1))
        assert torch.equal(loss_on, loss_off)


def test_time_and_period_conditioning():
    m = _tiny().eval()
    temb = m.estimator.time_condition(torch.tensor([0.2, 0.9]))
    assert temb.shape == (2, 5, m.config.hidden_dim)
    assert (temb[:, 0] - temb[:, 1]).abs().max() > 1e-4  # periods get different conditioning vectors
    assert (temb[0] - temb[1]).abs().max() > 1e-4  # and times too


def test_dwt_path_is_a_subband_estimator():
    torch.manual_seed(0)
    m = _tiny(dwt_levels=1, hop_length=128, periods=(1, 2, 3)).eval()  # 2 x 64-sample bottleneck
    mel = _mel(m, 8, 1)
    cond = torch.cat([mel, m.frame_std(mel)[:, None]], 1)
    conds = m.estimator.encode_condition(cond)
    x = torch.randn(1, 1, 8 * m.hop_length)
    t = torch.tensor([0.4])
    with torch.no_grad():
        v = m.velocity(x, t, conds)
        bands = m.estimator.vector_field(haar_dwt(x[:, 0], 1), t, conds)
    assert bands.shape == (1, 2, 4 * m.hop_length)
    torch.testing.assert_close(v[:, 0], haar_idwt(bands, 1), rtol=0, atol=0)
    with torch.no_grad():
        wav, _ = m(mel)
    assert wav.shape == (1, 8 * m.hop_length) and torch.isfinite(wav).all()


def test_multi_period_estimator_runs_and_learns_per_period_weights():
    m = _tiny(estimator="multi", periods=(1, 2))
    loss = flow_matching_loss(m, 0.1 * torch.randn(2, 8 * 64), generator=torch.Generator().manual_seed(0))
    loss.backward()
    for unet in m.estimator.unets:  # each period's U-Net gets its own gradient
        assert unet.ups[-1].mlp[1].weight.grad.abs().sum() > 0


def test_cfm_loss_errors():
    m = _tiny()
    with pytest.raises(AudioError, match="multiple of hop"):
        flow_matching_loss(m, torch.randn(2, 1000))


# --------------------------------------------------------------------------- checkpoints / export
def test_official_checkpoint_keys_are_converted():
    m = _tiny()
    official = {}
    for k, v in m.state_dict().items():  # rebuild the official FlowMatch layout (legacy weight norm)
        k = (k.replace("estimator.mel_cond.", "estimator.MelCond.").replace("estimator.unet.", "estimator.mpg.mpg.")
             .replace("estimator.proj.", "estimator.proj_layer.").replace(".res_blocks.", ".ResBlocks."))
        k = k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1",
                                                                                 "weight_v")
        official["module." + k] = v.clone()
    fresh = _tiny()
    fresh.load_state_dict(checkpoint_filter_fn({"model": official}, fresh), strict=True)
    for (k, a), b in zip(m.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), k
    assert audiozoo.model_info("periodwave_base").converter is checkpoint_filter_fn


def test_remove_weight_norm_keeps_outputs():
    m = _tiny().eval()
    mel = _mel(m, 6, 1)
    with torch.no_grad():
        ref = m(mel)[0]
        m.remove_weight_norm()
        out = m(mel)[0]
    # folding g * v / ||v|| into one weight may reorder float32 products (measured: identical here, 0.0);
    # 1e-5 absolute leaves room for other platforms
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_onnx_export_of_the_estimator(tmp_path):
    pytest.importorskip("onnxruntime")
    from audiozoo.export import check_onnx, export_onnx

    m = _tiny().eval()
    mel = _mel(m, 8)
    cond = torch.cat([mel, m.frame_std(mel)[:, None]], 1)
    x = 0.1 * torch.randn(2, 1, 8 * m.hop_length)
    t = torch.tensor([0.25, 0.75])
    path = export_onnx(m.estimator, tmp_path / "periodwave_estimator.onnx", (x, t, cond), ["x_t", "t", "cond"],
                       ["v"], dynamic_axes={"x_t": {0: "batch"}, "t": {0: "batch"}, "cond": {0: "batch"},
                                            "v": {0: "batch"}})
    # fixed time axis (the periodify padding is traced as constants); float32 ONNX Runtime vs PyTorch: measured
    # 2.3e-7 (outputs up to 0.28); 1e-4 as the other vocoder exports
    err = check_onnx(m.estimator, path, (x, t, cond), atol=1e-4)
    err3 = check_onnx(m.estimator, path, (x.repeat(2, 1, 1)[:3], t.repeat(2)[:3], cond.repeat(2, 1, 1)[:3]),
                      atol=1e-4)
    assert max(err, err3) < 1e-4
