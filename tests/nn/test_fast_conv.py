"""The fused oneDNN inference path (audiozoo.nn.fast_conv) computes the same function as the eager modules."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import audiozoo
from audiozoo.errors import AudioError, ConfigError
from audiozoo.nn.fast_conv import FusedHiFiGANTrunk, PackedConv1d, fast_conv_available
from audiozoo.nn.vocoder import HiFiGANTrunk

pytestmark = pytest.mark.skipif(not fast_conv_available(), reason="PyTorch built without oneDNN fused conv ops")


def _nwc(x: torch.Tensor) -> torch.Tensor:
    return x.unsqueeze(2).contiguous(memory_format=torch.channels_last)


def _back(y: torch.Tensor) -> torch.Tensor:
    return y.squeeze(2)


@pytest.mark.parametrize("conv", [nn.Conv1d(8, 12, 7, dilation=3, padding=9), nn.Conv1d(8, 12, 3, padding=1),
                                  nn.ConvTranspose1d(8, 4, 16, stride=8, padding=4),
                                  nn.ConvTranspose1d(8, 4, 4, stride=2, padding=1)])
def test_packed_conv_matches_torch(conv):
    torch.manual_seed(0)
    x = torch.randn(2, 8, 29)
    with torch.no_grad():
        ref = conv(x)
        x4 = _nwc(x)
        pc = PackedConv1d(conv)
        # fp32 reassociation inside oneDNN's kernels vs PyTorch's NCW path; measured <= 5e-7 on values ~1.
        assert (_back(pc(x4)) - ref).abs().max() < 1e-5
        assert (_back(pc(x4, "leaky_relu", 0.1)) - F.leaky_relu(ref, 0.1)).abs().max() < 1e-5
        assert (_back(pc(x4, "tanh")) - torch.tanh(ref)).abs().max() < 1e-5
        assert (_back(PackedConv1d(conv, scale=0.5)(x4)) - (ref - conv.bias[:, None]) * 0.5
                - conv.bias[:, None]).abs().max() < 1e-5  # the scale applies to the weight, not the bias


def test_packed_conv_residual_add_out_of_place_and_in_place():
    torch.manual_seed(0)
    conv = nn.Conv1d(16, 16, 5, dilation=2, padding=4)
    x, r = torch.randn(1, 16, 40), torch.randn(1, 16, 40)
    with torch.no_grad():
        expected = conv(x) + r
        pc, r4 = PackedConv1d(conv), _nwc(r)
        out = pc.add(_nwc(x), r4)
        assert (_back(out) - expected).abs().max() < 1e-5 and torch.equal(_back(r4), r)  # residual untouched
        acc = r4.clone()
        ret = pc.add_(_nwc(x), acc)
        assert ret.data_ptr() == acc.data_ptr()  # written in place: no new activation buffer
        assert (_back(acc) - expected).abs().max() < 1e-5


def test_packed_conv_refuses_unsupported_layers():
    with pytest.raises(ConfigError, match="ungrouped"):
        PackedConv1d(nn.Conv1d(8, 8, 3, groups=2))
    with pytest.raises(ConfigError, match="zero padding"):
        PackedConv1d(nn.Conv1d(8, 8, 3, padding=1, padding_mode="reflect"))


@pytest.mark.parametrize("resblock,kernels,dilations", [("1", (3, 7), ((1, 3, 5), (1, 3, 5))),
                                                        ("2", (3, 5), ((1, 2), (2, 6)))])
def test_fused_trunk_matches_eager_trunk(resblock, kernels, dilations):
    torch.manual_seed(0)
    trunk = HiFiGANTrunk(20, 32, (4, 2), (8, 4), resblock, kernels, dilations).eval()  # weight-normed
    mel = torch.randn(2, 20, 19)
    with torch.no_grad():
        expected = trunk.trunk(mel)
        got = FusedHiFiGANTrunk(trunk, head=None)(mel)
    assert got.shape == expected.shape == (2, 8, 19 * 8)
    # the MRF mean is folded into the next layer: rounding differs by reassociation only (measured ~2e-7
    # on values of magnitude ~1, i.e. a few float32 ulps)
    assert (got - expected).abs().max() < 1e-5 * expected.abs().max()


@pytest.mark.parametrize("name,extra", [("hifigan_v1", {}), ("hifigan_v3", {}), ("hifigan_speecht5", {})])
def test_fuse_for_inference_equals_the_plain_forward(name, extra):
    torch.manual_seed(0)
    model = audiozoo.create_model(name, **audiozoo.model_info(name).tiny, **extra).eval()
    if model.config.normalize_before:
        model.mean.normal_()
        model.scale.uniform_(0.5, 2.0)
    keys = list(model.state_dict())
    fused = model.fuse_for_inference()
    mel, lengths = torch.randn(2, model.n_mels, 37), torch.tensor([37, 30])
    with torch.no_grad():
        wav, out_len = model(mel, lengths)
        wav_f, out_len_f = fused(mel, lengths)
    assert wav.abs().max() > 0.05  # a real signal, not ~0 (tiny default-init models give ~0.2)
    # float32 reassociation (folded MRF mean, fused post-ops): measured <= 1.5e-7; the parity bar is 1e-4
    assert (wav_f - wav).abs().max() < 1e-5
    assert torch.equal(out_len_f, out_len) and wav_f[1, 30 * model.hop_length:].abs().max() == 0
    # the original keeps its weight norm, keys and forward; the copy is a plain inference module
    assert list(model.state_dict()) == keys and any("parametrizations" in k for k in keys)
    assert not any("parametrizations" in k for k in fused.state_dict())
    assert fused.sample_rate == model.sample_rate and fused.hop_length == model.hop_length
    with torch.no_grad():
        assert torch.equal(model(mel, lengths)[0], wav)


def test_fuse_for_inference_from_a_folded_model_and_errors():
    model = audiozoo.create_model("hifigan_v1", **audiozoo.model_info("hifigan_v1").tiny).eval()
    model.remove_weight_norm()
    fused = model.fuse_for_inference()
    mel = torch.randn(1, model.n_mels, 13)
    with torch.no_grad():
        assert (fused(mel)[0] - model(mel)[0]).abs().max() < 1e-5
    probe = mel.clone().requires_grad_(True)  # a gradient probe falls back to the plain (autograd) path
    fused(probe)[0].sum().backward()
    assert probe.grad is not None and probe.grad.abs().sum() > 0
    with pytest.raises(AudioError, match="log-mel"):
        fused(torch.randn(1, model.n_mels + 1, 13))
    with pytest.raises(AudioError, match="float32"):
        fused._fused(mel.double())
    # a bf16 mel (an acoustic model under bf16 autocast, as `eval_fastspeech2_piper.py --bf16` runs the tts
    # pipeline) takes the plain path instead of failing in the float32-only fused trunk
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        wav_bf16 = fused(mel.bfloat16())[0]
    assert wav_bf16.shape == fused(mel)[0].shape
    assert (wav_bf16.float() - model(mel)[0]).abs().max() < 0.05


@pytest.mark.parity
@pytest.mark.slow  # importing transformers' FastSpeech2-Conformer module dominates (~10-35 s on a loaded CPU)
def test_fused_v1_matches_transformers_fastspeech2_conformer_hifigan():
    from transformers import FastSpeech2ConformerHifiGan, FastSpeech2ConformerHifiGanConfig

    torch.manual_seed(0)
    ref = FastSpeech2ConformerHifiGan(FastSpeech2ConformerHifiGanConfig(upsample_initial_channel=32,
                                                                        normalize_before=False)).eval()
    with torch.no_grad():
        for m in ref.modules():  # PyTorch default init x1.5: outputs of std ~0.05, as tests/models/test_hifigan.py
            if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)):
                m.reset_parameters()
                m.weight.mul_(1.5)
    model = audiozoo.create_model("hifigan_v1", upsample_initial_channel=32, pretrained=ref.state_dict()).eval()
    fused = model.fuse_for_inference()
    mel = torch.randn(2, 80, 23, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = ref(mel.transpose(1, 2))
        wav = fused(mel)[0]
    assert expected.std() > 0.01
    # measured max abs error 1.5e-7 here (full-size V1 on 10 s of speech: 9.0e-7, benchmarks/results/
    # hifigan_cpu_main.json); 1e-4 is the project's parity bar
    assert (wav - expected).abs().max() < 1e-4
