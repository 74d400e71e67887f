"""HiFi-GAN generator: official parameter counts, SpeechT5 parity, checkpoint layouts, ONNX, a tiny one learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import audiozoo
from audiozoo.errors import AudioError, CheckpointError, ConfigError
from audiozoo.models.vocoder import hifigan
from audiozoo.nn.vocoder import trunk_to_official_keys

TINY = audiozoo.model_info("hifigan_v1").tiny


def count_without_gains(model: nn.Module) -> int:
    """Weights + biases with each weight-normed weight once (its gain ``g`` = ``original0`` left out)."""
    return sum(p.numel() for n, p in model.named_parameters() if not n.endswith("parametrizations.weight.original0"))


# Acceptance numbers: the official configs' weights + biases (brief / paper Table 1: 13.92M, 0.92M, 1.46M).
@pytest.mark.parametrize("name,expected", [("hifigan_v1", 13_926_017), ("hifigan_v2", 925_985),
                                           ("hifigan_v3", 1_462_273)])
def test_official_parameter_counts(name, expected):
    assert audiozoo.model_info(name).params == expected
    with torch.device("meta"):
        model = audiozoo.create_model(name)
        assert count_without_gains(model) == expected
        # the same number once weight norm is folded away, as the official inference model has it
        model.remove_weight_norm()
        assert sum(p.numel() for p in model.parameters()) == expected
    assert model.hop_length == 256 and model.sample_rate == 22050 and model.n_mels == 80


@pytest.mark.parity
def test_speecht5_parameter_count_matches_transformers():
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

    with torch.device("meta"):
        ref = SpeechT5HifiGan(SpeechT5HifiGanConfig())
        ours = audiozoo.create_model("hifigan_speecht5")
    n_ref = sum(p.numel() for p in ref.parameters())
    assert count_without_gains(ours) == n_ref == audiozoo.model_info("hifigan_speecht5").params
    assert ours.hop_length == 256 and ours.sample_rate == 16000


def _random_reference(kind: str, channels: int, seed: int = 0):
    """A seeded HF HiFi-GAN: SpeechT5's (16 kHz, 4-4-4-4, mean/scale) or FastSpeech2-Conformer's (= V1)."""
    from transformers import (
        FastSpeech2ConformerHifiGan,
        FastSpeech2ConformerHifiGanConfig,
        SpeechT5HifiGan,
        SpeechT5HifiGanConfig,
    )

    torch.manual_seed(seed)
    if kind == "speecht5":
        ref = SpeechT5HifiGan(SpeechT5HifiGanConfig(upsample_initial_channel=channels))
    else:
        ref = FastSpeech2ConformerHifiGan(FastSpeech2ConformerHifiGanConfig(upsample_initial_channel=channels,
                                                                            normalize_before=False))
    ref.eval()
    with torch.no_grad():
        # PyTorch default conv init x1.5 gives a waveform of std ~0.05 (max ~0.3): far from both 0 and tanh
        # saturation, so a wrong layer or slope would show. HF's own init (normal 0.01) gives ~1e-4 outputs.
        for m in ref.modules():
            if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)):
                m.reset_parameters()
                m.weight.mul_(1.5)
        if kind == "speecht5":
            ref.mean.normal_()
            ref.scale.uniform_(0.5, 2.0)
    return ref


@pytest.mark.parity
@pytest.mark.parametrize("kind,name,hop", [("speecht5", "hifigan_speecht5", 256),
                                           ("fastspeech2_conformer", "hifigan_v1", 256)])
def test_hf_hifigan_parity(kind, name, hop):
    ref = _random_reference(kind, channels=32)
    model = audiozoo.create_model(name, upsample_initial_channel=32,
                                  pretrained=ref.state_dict()).eval()  # converter: plain weights -> (g, v)
    mel = torch.randn(2, 80, 23, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = ref(mel.transpose(1, 2))  # HF takes (B, L, n_mels)
        wav, lengths = model(mel)
        assert expected.std() > 0.01  # a meaningful signal, not ~0
        # Measured max abs error 1.5e-7 (SpeechT5) / 1.2e-7 (FastSpeech2-Conformer, V1 layout): float32
        # reassociation + the g/v reconstruction of each weight. 1e-4 is the project's parity bar.
        assert wav.shape == expected.shape == (2, 23 * hop)
        assert (wav - expected).abs().max() < 1e-4
        assert lengths.tolist() == [23 * hop] * 2
        model.remove_weight_norm()  # folding weight norm back gives the same function
        assert (model(mel)[0] - expected).abs().max() < 1e-4


@pytest.mark.parity
def test_converter_refuses_a_non_identity_normalisation():
    ref = _random_reference("speecht5", channels=16)
    with pytest.raises(CheckpointError, match="normalize_before"):
        audiozoo.create_model("hifigan_v1", upsample_initial_channel=16, upsample_rates=(4, 4, 4, 4),
                              upsample_kernel_sizes=(8, 8, 8, 8), pretrained=ref.state_dict())


@pytest.mark.parity
def test_speecht5_frontend_matches_feature_extractor():
    from transformers import SpeechT5FeatureExtractor

    t = np.arange(16000) / 16000
    x = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)
    ref = SpeechT5FeatureExtractor()(audio_target=x, sampling_rate=16000, return_tensors="np")["input_values"][0]
    with torch.no_grad():
        mel, frames = audiozoo.create_model("hifigan_speecht5").frontend.double()(torch.from_numpy(x).double()[None])
    assert mel.shape == (1, 80, ref.shape[0]) and frames.tolist() == [ref.shape[0]]
    # log10 values up to ~2.6; measured max abs error 1.3e-7 (the reference computes in float32).
    assert np.abs(mel[0].T.numpy() - ref).max() < 1e-4


def _legacy_official_state(model: hifigan.HiFiGAN) -> dict[str, torch.Tensor]:
    """Our state dict written in the official jik876 layout (flat resblocks, legacy weight_g / weight_v)."""
    sd = trunk_to_official_keys(model.state_dict(), len(model.config.resblock_kernel_sizes))
    out = {}
    for k, v in sd.items():
        k = k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1",
                                                                             "weight_v")
        out[k] = v.clone()
    return out


def test_official_checkpoint_layout_loads():
    src = audiozoo.create_model("hifigan_v1", **TINY).eval()
    official = _legacy_official_state(src)
    assert "resblocks.3.convs1.0.weight_g" in official and "ups.1.weight_v" in official  # 2 stages x 2 kernels
    dst = audiozoo.create_model("hifigan_v1", pretrained={"generator": official}, **TINY).eval()
    mel = torch.randn(1, TINY["n_mels"], 11)
    with torch.no_grad():
        assert torch.equal(src(mel)[0], dst(mel)[0])


def test_shapes_lengths_and_errors():
    model = audiozoo.create_model("hifigan_v3", **audiozoo.model_info("hifigan_v3").tiny).eval()
    mel = torch.randn(2, model.n_mels, 37)
    with torch.no_grad():
        wav, lengths = model(mel, torch.tensor([37, 30]))
    assert wav.shape == (2, 37 * model.hop_length)
    assert lengths.tolist() == [37 * model.hop_length, 30 * model.hop_length]
    assert wav[1, 30 * model.hop_length:].abs().max() == 0 and wav[1, : 30 * model.hop_length].abs().max() > 0
    with pytest.raises(AudioError, match="log-mel"):
        model(torch.randn(2, model.n_mels + 1, 13))
    with pytest.raises(ConfigError, match="kernel"):
        audiozoo.create_model("hifigan_v1", upsample_rates=(8, 8, 2, 2), upsample_kernel_sizes=(16, 15, 4, 4))
    # the front-end gives T // hop frames, so mel -> wav -> mel keeps the frame count
    feats, frames = model.frontend(wav, lengths)
    assert feats.shape == (2, model.n_mels, 37) and frames.tolist() == [37, 30]


def test_remove_weight_norm_keeps_output():
    model = audiozoo.create_model("hifigan_v2", **TINY).eval()
    mel = torch.randn(1, TINY["n_mels"], 9)
    with torch.no_grad():
        before = model(mel)[0]
        model.remove_weight_norm()
        after = model(mel)[0]
    assert not any("parametrizations" in k for k in model.state_dict())
    assert (before - after).abs().max() < 1e-6  # float32 rounding of g * v / ||v|| folded into one tensor


@pytest.mark.parity
def test_onnx_export_tiny_generator(tmp_path):
    pytest.importorskip("onnxruntime")
    from audiozoo.export import check_onnx, export_onnx

    model = audiozoo.create_model("hifigan_v1", **TINY).eval()
    model.remove_weight_norm()  # inference form, as deployed
    mel = torch.randn(2, TINY["n_mels"], 17)
    path = export_onnx(model, tmp_path / "hifigan.onnx", (mel,), ["mel"], ["wav", "lengths"],
                       {"mel": {0: "batch", 2: "frames"}, "wav": {0: "batch", 1: "samples"}, "lengths": {0: "batch"}})
    # float32 op-by-op differences (measured 6e-8 and 9e-8); a second batch/length proves the dynamic axes.
    assert check_onnx(model, path, (mel,), atol=1e-4) < 1e-4
    assert check_onnx(model, path, (torch.randn(3, TINY["n_mels"], 29),), atol=1e-4) < 1e-4


@pytest.mark.slow
def test_tiny_hifigan_learns_a_real_clip(shared_data):
    """50 Adam steps of mel-L1 on 0.5 s of LibriSpeech speech (librosa's example, 22.05 kHz)."""
    from audiozoo.dsp import load_audio

    wav, _ = load_audio(shared_data / "librosa" / "198-209-0000.ogg", sample_rate=22050, offset=1.0, duration=0.5)
    wav = wav[: wav.shape[-1] // 256 * 256][None]
    torch.manual_seed(0)
    model = audiozoo.create_model("hifigan_v1", upsample_initial_channel=32, upsample_rates=(8, 8, 4),
                                  upsample_kernel_sizes=(16, 16, 8), resblock="2", resblock_kernel_sizes=(3, 5),
                                  resblock_dilation_sizes=((1, 2), (2, 6)))
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
    # Measured: 1.64 -> 0.69 (x0.42). Untrained output is near-silence; require the L1 to fall below 60 %.
    assert end < 0.6 * start, (start, end)
