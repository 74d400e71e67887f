"""Conv-TasNet (``conv_tasnet_speech``, ``conv_tasnet_music``): parameter counts, the TCN blocks, parity with
asteroid 0.7.0's ``ConvTasNet`` given the same weights, and the Demucs v2 ``tasnet.py`` key layout."""

from __future__ import annotations

import pytest
import torch

import audiozoo
from audiozoo.errors import AudioError, CheckpointError, ConfigError
from audiozoo.models.separate import conv_tasnet as ct
from audiozoo.nn.tcn import ChannelwiseLayerNorm, GlobalLayerNorm, TemporalConvNet

#: max |difference| allowed against asteroid (measured: ~1e-7 on outputs of magnitude ~0.3)
BOUND = 1e-5
#: the shipped speech separator, and its least mean SI-SDRi on the real SiSEC pairs below (measured 2.44 dB)
WEIGHTS = "conv_tasnet_speech.voices_8k"
# shipped speech weight set -> bound on its mean SI-SDRi over 4 real SiSEC pairs (about half the measured value)
BOUND_REAL = {WEIGHTS: 1.2, "conv_tasnet_speech.voices_medium_8k": 1.9, "conv_tasnet_speech.voices_medium_s2_8k": 2.3}


def _asteroid():
    return pytest.importorskip("asteroid.models", reason="pip install --no-deps asteroid==0.7.0 asteroid-filterbanks")


def _randomise(m: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial values everywhere (norm gains/biases and PReLU slopes too) so every mapped key matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))


def test_speech_param_count_matches_asteroid():
    am = _asteroid()
    ref = am.ConvTasNet(n_src=2)
    with torch.device("meta"):
        ours = audiozoo.create_model("conv_tasnet_speech")
    n = sum(p.numel() for p in ref.parameters())
    unused = sum(p.numel() for p in ref.masker.TCN[-1].res_conv.parameters())  # not built here (no gradient)
    assert sum(p.numel() for p in ours.parameters()) == n - unused == audiozoo.model_info("conv_tasnet_speech").params


@pytest.mark.parity
@pytest.mark.parametrize("kw", [
    dict(),  # the paper / asteroid defaults at a small size
    dict(skip_chan=0, mask_act="relu", norm_type="cLN"),
    dict(causal=True, norm_type="cLN", mask_act="softmax", encoder_activation="relu"),
])
def test_parity_with_asteroid(kw):
    am = _asteroid()
    torch.manual_seed(0)
    size = dict(n_filters=32, kernel_size=16, stride=8, bn_chan=16, hid_chan=24, n_blocks=3, n_repeats=2)
    kw = {"skip_chan": 12, **kw}
    ref = am.ConvTasNet(n_src=3, **size, **kw).eval()
    _randomise(ref)
    ours = audiozoo.create_model(
        "conv_tasnet_speech", sources=("a", "b", "c"), n_filters=32, kernel_size=16, bn_chan=16, hid_chan=24,
        skip_chan=kw["skip_chan"], n_blocks=3, n_repeats=2, norm=kw.get("norm_type", "gLN"),
        mask_act=kw.get("mask_act", "sigmoid"), causal=kw.get("causal", False),
        encoder_relu=kw.get("encoder_activation") == "relu")
    audiozoo.hub.load_into(ours, {"model_name": "ConvTasNet", "state_dict": ref.state_dict()},
                           converter=ct.checkpoint_filter_fn)
    ours.eval()
    x = 0.3 * torch.randn(2, 1, 1203)
    with torch.no_grad():
        a, b = ref(x), ours(x)
    assert b.shape == (2, 3, 1, 1203) and a.shape == (2, 3, 1203)
    err = (a - b[:, :, 0]).abs().max().item()
    assert err < BOUND * max(1.0, a.abs().max().item()), err


def _demucs_tasnet_state(model: ct.ConvTasNet) -> dict[str, torch.Tensor]:
    """Our state written in Demucs v2 tasnet.py's layout (TemporalBlock.net = [conv1x1, prelu, norm,
    DepthwiseSeparableConv.net = [depthwise, prelu, norm, pointwise]], norms with (1, C, 1) gains)."""
    cfg, sd = model.config, model.state_dict()
    c, n, ell = cfg.audio_channels, cfg.n_filters, cfg.kernel_size
    out = {"encoder.conv1d_U.weight": sd["encoder.weight"],
           "decoder.basis_signals.weight": sd["decoder.weight"].permute(1, 2, 0).reshape(c * ell, n),
           "separator.network.0.gamma": sd["masker.norm.gamma"].view(1, -1, 1),
           "separator.network.0.beta": sd["masker.norm.beta"].view(1, -1, 1),
           "separator.network.1.weight": sd["masker.bottleneck.weight"],
           "separator.network.3.weight": sd["masker.mask_conv.weight"]}
    for i in range(cfg.n_blocks * cfg.n_repeats):
        r, x = divmod(i, cfg.n_blocks)
        p, q = f"separator.network.2.{r}.{x}.net", f"masker.blocks.{i}"
        out[f"{p}.0.weight"] = sd[f"{q}.in_conv.weight"]
        out[f"{p}.1.weight"] = sd[f"{q}.act1.weight"]
        out[f"{p}.3.net.0.weight"] = sd[f"{q}.depth_conv.weight"]
        out[f"{p}.3.net.1.weight"] = sd[f"{q}.act2.weight"]
        out[f"{p}.3.net.3.weight"] = sd[f"{q}.res_conv.weight"]
        for j, norm in (("2", "norm1"), ("3.net.2", "norm2")):
            out[f"{p}.{j}.gamma"] = sd[f"{q}.{norm}.gamma"].view(1, -1, 1)
            out[f"{p}.{j}.beta"] = sd[f"{q}.{norm}.beta"].view(1, -1, 1)
    return out


def test_demucs_tasnet_layout_round_trip():
    info = audiozoo.model_info("conv_tasnet_music")
    m = audiozoo.create_model("conv_tasnet_music", **info.tiny)
    _randomise(m, 3)
    other = audiozoo.create_model("conv_tasnet_music", pretrained=_demucs_tasnet_state(m), **info.tiny)
    x = 0.1 * torch.randn(1, 2, 500)
    with torch.no_grad():
        assert torch.equal(m.eval()(x), other.eval()(x))
    with pytest.raises(CheckpointError, match="not an asteroid or Demucs"):
        ct.checkpoint_filter_fn({"foo": torch.zeros(1)}, m)


def test_music_config_is_demucs_tasnet():
    m = audiozoo.create_model("conv_tasnet_music", **audiozoo.model_info("conv_tasnet_music").tiny)
    assert m.sources == ["drums", "bass", "other", "vocals"] and m.audio_channels == 2 and m.sample_rate == 44100
    assert isinstance(m.masker.norm, ChannelwiseLayerNorm) and isinstance(m.masker.blocks[0].norm1, GlobalLayerNorm)
    assert m.masker.mask_prelu is None and m.masker.blocks[0].skip_conv is None
    assert all(mod.bias is None for mod in m.modules() if isinstance(mod, torch.nn.Conv1d))


def test_decoder_is_overlap_add_of_masked_bases():
    """With all-one masks the output is the transposed conv of the encoder output (Fig. 1A), and samples past
    the last whole frame are zero."""
    m = audiozoo.create_model("conv_tasnet_speech", **audiozoo.model_info("conv_tasnet_speech").tiny).eval()
    x = torch.randn(1, 1, 100)  # L=8, hop 4: frames cover 100 samples exactly
    with torch.no_grad():
        w = m.encode(x)
        full = torch.nn.functional.conv_transpose1d(w, m.decoder.weight, stride=4)
        masks = m.masker(w)
        y = m(x)
    assert torch.allclose(y[0, 0, 0], torch.nn.functional.conv_transpose1d(w * masks[:, 0], m.decoder.weight,
                                                                             stride=4)[0, 0], atol=1e-6)
    assert full.shape[-1] == 100
    y2 = m(torch.randn(1, 1, 103))
    assert y2.shape == (1, 2, 1, 103) and torch.all(y2[..., 100:] == 0)


def test_global_layer_norm_is_eq_12_13():
    """gLN (fused as a one-group GroupNorm) equals the paper's formula with per-channel gain and bias."""
    from audiozoo.nn import GlobalLayerNorm

    torch.manual_seed(0)
    n = GlobalLayerNorm(6)
    with torch.no_grad():
        n.gamma.uniform_(0.5, 1.5)
        n.beta.uniform_(-1, 1)
    x = 3 * torch.randn(2, 6, 50) + 1
    mean = x.mean(dim=(1, 2), keepdim=True)
    var = (x - mean).pow(2).mean(dim=(1, 2), keepdim=True)
    want = n.gamma[:, None] * (x - mean) / torch.sqrt(var + n.eps) + n.beta[:, None]
    assert torch.allclose(n(x), want, atol=1e-5)


def test_errors():
    m = audiozoo.create_model("conv_tasnet_speech", **audiozoo.model_info("conv_tasnet_speech").tiny)
    with pytest.raises(AudioError, match="at least one filter"):
        m(torch.zeros(1, 1, 4))
    with pytest.raises(AudioError, match=r"\(B, 1, T\)"):
        m(torch.zeros(1, 2, 100))
    with pytest.raises(ConfigError, match="mask_act"):
        audiozoo.create_model("conv_tasnet_speech", mask_act="tanh")
    with pytest.raises(ConfigError):
        TemporalConvNet(8, 2, norm="batch")


def _real_pair(root, a: str, b: str, seconds: float = 2.0, offset: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two SiSEC 2011 speakers (never trained on) at 8 kHz and equal power: ``(mixture (T,), sources (2, T))``."""
    from audiozoo.dsp.io import load_audio

    d = root / "speech_sources" / "sisec2011_speech"
    src = torch.stack([load_audio(d / f"dev1_{n}.wav", sample_rate=8000, offset=offset, duration=seconds)[0]
                       for n in (a, b)])
    src = src / src.pow(2).mean(-1, keepdim=True).sqrt() * 0.05
    return src.sum(0), src


@pytest.mark.parametrize("name", list(BOUND_REAL))
def test_shipped_speech_separator_beats_the_mixture_on_real_voices(name, shared_data):
    """The shipped weights separate real two-speaker mixtures of people they never heard (SiSEC 2011) better than
    the unprocessed mixture (measured: mean SI-SDRi 2.44 dB (voices_8k) / 3.76 dB (voices_medium_8k) / 4.57 dB
    (voices_medium_s2_8k) on these pairs; bound: about half of it)."""
    from audiozoo.eval.separation import pit_si_sdr, si_sdr

    m = audiozoo.resolve_model(name, family="separate").eval()
    gains = []
    for k in (1, 2, 3, 4):
        mix, src = _real_pair(shared_data, f"female4_src_{k}", f"male4_src_{k % 4 + 1}")
        with torch.no_grad():
            est = m(mix[None, None])[0, :, 0]
        gains.append(float(pit_si_sdr(est, src)[0].mean() - si_sdr(mix[None].expand_as(src), src).mean()))
    assert sum(gains) / len(gains) > BOUND_REAL[name], gains


@pytest.mark.parametrize("name", ["conv_tasnet_music.music4", "demucs_small.music4"])
def test_shipped_music_separators_keep_a_real_drum_and_bass_clip_out_of_vocals(name, shared_data):
    """A real drum + bass recording (librosa's example, no singing; never trained on): the shipped 4-stem separators
    send most of it to drums + bass and little to vocals (measured on these first 8 s: vocals 5.4 % / 2.8 % of the
    output energy, drums + bass 65 % / 54 %). Untrained weights spread it over the four stems (vocals 26 %)."""
    from audiozoo.dsp.io import load_audio

    m = audiozoo.resolve_model(name, family="separate").eval()
    wav, _ = load_audio(shared_data / "librosa" / "admiralbob77_-_Choice_-_Drum-bass.ogg",
                        sample_rate=int(m.sample_rate), duration=8.0)
    with torch.no_grad():
        est = m(wav.reshape(1, 1, -1))[0, :, 0]  # (4 stems, T) in the MUSDB order
    share = dict(zip(("drums", "bass", "other", "vocals"), (est.pow(2).sum(-1) / est.pow(2).sum()).tolist()))
    assert share["vocals"] < 0.12 and share["drums"] + share["bass"] > 0.45, share
