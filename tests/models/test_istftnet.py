"""iSTFTNet: parameter counts, the iSTFT head against torch.istft, output lengths, checkpoint layout, learning."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import audiozoo
from audiozoo.errors import ConfigError
from audiozoo.models.vocoder import istftnet
from audiozoo.nn.vocoder import trunk_to_official_keys

NAMES = ["istftnet_c8c8i", "istftnet_c8c8c2i", "istftnet_c8c1i", "istftnet_c8i"]
TINY = audiozoo.model_info("istftnet_c8c8i").tiny
HIFIGAN_V1 = 13_926_017  # weights + biases of HiFi-GAN V1 (official config)


def count_without_gains(model: nn.Module) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if not n.endswith("parametrizations.weight.original0"))


@pytest.mark.parametrize("name", NAMES)
def test_parameter_counts_and_hop(name):
    with torch.device("meta"):
        model = audiozoo.create_model(name)
    assert count_without_gains(model) == audiozoo.model_info(name).params
    assert model.hop_length == 256 and model.sample_rate == 22050
    assert count_without_gains(model) < HIFIGAN_V1 or name == "istftnet_c8c8c2i"
    if name == "istftnet_c8c8i":  # rishikksh20 config_v1.json: n_fft 16, hop 4, output conv to 18 channels
        assert model.conv_post.out_channels == 18 and (model.istft.n_fft, model.istft.hop_length) == (16, 4)
        assert round(count_without_gains(model) / 1e6, 2) == 13.25


@pytest.mark.parametrize("name", NAMES)
def test_output_is_mel_frames_times_256(name):
    # canonical up-sampling structure, narrow channels so that it runs fast
    model = audiozoo.create_model(name, upsample_initial_channel=16, resblock_kernel_sizes=(3,),
                                  resblock_dilation_sizes=((1, 3, 5),)).eval()
    with torch.no_grad():
        wav, lengths = model(torch.randn(2, 80, 7), torch.tensor([7, 5]))
    assert wav.shape == (2, 7 * 256) and lengths.tolist() == [7 * 256, 5 * 256]
    assert torch.isfinite(wav).all() and wav[1, 5 * 256:].abs().max() == 0


def test_istft_head_equals_torch_istft():
    """The waveform is torch.istft (the reference TorchSTFT.inverse) of exp-magnitude and sin-phase."""
    model = audiozoo.create_model("istftnet_c8c8i", **TINY).eval()
    mel = torch.randn(2, TINY["n_mels"], 19)
    with torch.no_grad():
        mag, phase = model.forward_spectrum(mel)
        wav, _ = model(mel)
        n_fft, hop = TINY["istft_n_fft"], TINY["istft_hop"]
        ref = torch.istft(mag * torch.exp(phase * 1j), n_fft, hop, n_fft, window=torch.hann_window(n_fft))
    assert mag.shape == phase.shape == (2, n_fft // 2 + 1, 19 * 4 + 1)  # one reflection-padded extra frame
    assert phase.abs().max() <= 1 and (mag > 0).all()
    assert ref.shape == wav.shape == (2, 19 * model.hop_length)
    # Same float32 maths in another order: measured max abs error ~6e-8 on outputs of magnitude ~1.
    assert (wav - ref).abs().max() < 1e-5


def test_reference_checkpoint_layout_loads():
    src = audiozoo.create_model("istftnet_c8c8i", **TINY).eval()
    sd = trunk_to_official_keys(src.state_dict(), len(TINY["resblock_kernel_sizes"]))
    legacy = {k.replace("parametrizations.weight.original0", "weight_g")
               .replace("parametrizations.weight.original1", "weight_v"): v.clone() for k, v in sd.items()}
    assert "resblocks.1.convs1.0.weight_g" in legacy
    dst = audiozoo.create_model("istftnet_c8c8i", pretrained={"generator": legacy}, **TINY).eval()
    mel = torch.randn(1, TINY["n_mels"], 9)
    with torch.no_grad():
        assert torch.equal(src(mel)[0], dst(mel)[0])


def test_config_errors():
    with pytest.raises(ConfigError, match="iSTFT"):
        audiozoo.create_model("istftnet_c8c8i", istft_n_fft=3, istft_hop=4)
    with pytest.raises(ConfigError):
        istftnet.ISTFTNet(istftnet.ISTFTNetConfig(resblock_kernel_sizes=(3, 7)))


@pytest.mark.slow
def test_tiny_istftnet_learns_a_real_clip(shared_data):
    """50 Adam steps of mel-L1 on 0.5 s of LibriSpeech speech (librosa's example, 22.05 kHz)."""
    from audiozoo.dsp import load_audio

    wav, _ = load_audio(shared_data / "librosa" / "198-209-0000.ogg", sample_rate=22050, offset=1.0, duration=0.5)
    wav = wav[: wav.shape[-1] // 256 * 256][None]
    torch.manual_seed(0)
    model = audiozoo.create_model("istftnet_c8c8i", upsample_initial_channel=32, resblock="2",
                                  resblock_kernel_sizes=(3, 5), resblock_dilation_sizes=((1, 2), (2, 6)))
    mel, _ = model.frontend(wav)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3, betas=(0.8, 0.99))

    def mel_l1() -> torch.Tensor:
        return (model.frontend(model(mel)[0])[0] - mel).abs().mean()

    with torch.no_grad():
        start = mel_l1().item()
    for _ in range(50):
        loss = mel_l1()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        end = mel_l1().item()
    # Measured: 1.71 -> 0.61 (x0.36). Require the L1 to fall below 60 % of the untrained model's.
    assert end < 0.6 * start, (start, end)


def test_onnx_export_matches_pytorch(tmp_path):
    """The iSTFT head is an overlap-add convolution (no FFT), so the whole generator exports to ONNX."""
    from audiozoo.export import check_onnx, export_onnx

    torch.manual_seed(0)
    m = audiozoo.create_model("istftnet_c8c8i", **TINY).eval()
    mel = torch.randn(2, m.n_mels, 23)
    lengths = torch.tensor([23, 17])
    path = export_onnx(m, tmp_path / "istftnet.onnx", (mel, lengths), ["mel", "lengths"], ["wav", "wav_lengths"],
                       dynamic_axes={"mel": {0: "batch", 2: "frames"}, "lengths": {0: "batch"},
                                     "wav": {0: "batch", 1: "samples"}, "wav_lengths": {0: "batch"}})
    errs = [check_onnx(m, path, (mel, lengths), atol=1e-4),
            check_onnx(m, path, (torch.randn(3, m.n_mels, 31), torch.tensor([31, 30, 9])), atol=1e-4)]
    assert max(errs) < 1e-4, errs  # measured 5.2e-8 at both shapes
