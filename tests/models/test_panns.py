"""PANNs CNN14 / MobileNetV1: parity with panns_inference, converter, lengths and short inputs."""

from __future__ import annotations

import pytest
import torch

import audiozoo
from audiozoo.models.classify.panns import PANNsConfig, PANNsFrontend, checkpoint_filter_fn
from audiozoo.testing import import_panns_inference_offline

SR = 32000


@pytest.fixture(scope="module")
def panns_models(tmp_path_factory):
    """``panns_inference.models``, imported with a local label CSV.

    ``panns_inference.config`` reads ``~/panns_data/class_labels_indices.csv`` at import and wgets it when
    missing; we point HOME at a temporary folder holding a 527-row CSV of the same layout.
    """
    return import_panns_inference_offline(tmp_path_factory.mktemp("home"))


def _randomise_(model: torch.nn.Module, seed: int) -> None:
    """Random weights everywhere, and BatchNorm running stats / affine far from identity so they matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "extractor" in name:  # frozen torchlibrosa DFT / mel constants
                continue
            fan = p[0].numel() if p.ndim > 1 else 1
            p.copy_(torch.randn(p.shape, generator=g) / fan**0.5)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
        if hasattr(model, "bn0"):
            # bn0 sees log-mel dB values (~ -100..20): give it statistics of that scale.
            model.bn0.running_mean.copy_(-40 + 10 * torch.randn(model.bn0.running_mean.shape, generator=g))
            model.bn0.running_var.copy_(200 + 100 * torch.rand(model.bn0.running_var.shape, generator=g))


def _wave(seconds: float, batch: int = 2, seed: int = 0) -> torch.Tensor:
    # Harmonics + noise: a spectrum spanning ~60 dB so quiet and loud mel bins both matter.
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(SR * seconds)) / SR
    tones = sum(torch.sin(2 * torch.pi * f * t) / k for k, f in enumerate((220.0, 660.0, 1500.0, 5200.0), 1))
    return 0.3 * tones + 0.05 * torch.randn(batch, t.numel(), generator=g)


def _pair(panns_models, name: str, ref_cls: str):
    ref = getattr(panns_models, ref_cls)(SR, 1024, 320, 64, 50, 14000, 527).eval()
    _randomise_(ref, seed=1)
    ours = audiozoo.create_model(name).eval()
    ours.load_state_dict(checkpoint_filter_fn(ref.state_dict(), ours))
    return ref, ours


@pytest.mark.parity
def test_frontend_matches_torchlibrosa():
    # The reference front-end exactly as panns_inference.models.Cnn14 builds it (torchlibrosa modules).
    from torchlibrosa.stft import LogmelFilterBank, Spectrogram

    spec = Spectrogram(n_fft=1024, hop_length=320, win_length=1024, window="hann", center=True,
                       pad_mode="reflect", freeze_parameters=True)
    logmel = LogmelFilterBank(sr=SR, n_fft=1024, n_mels=64, fmin=50, fmax=14000, ref=1.0, amin=1e-10,
                              top_db=None, freeze_parameters=True)
    ours = PANNsFrontend(PANNsConfig())
    wav = _wave(1.3)
    with torch.no_grad():
        expected = logmel(spec(wav))[:, 0].transpose(1, 2)  # (B, 1, L, 64) -> (B, 64, L)
        feats, lengths = ours(wav)
    assert feats.shape == expected.shape
    assert lengths.tolist() == [expected.shape[-1]] * 2
    # dB values span ~ -30..+20 here; both sides are float32 (torchlibrosa: DFT as a conv; ours: rfft), so
    # quiet mel bins carry ~1e-5 relative power error = ~5e-5 dB; measured max 8.2e-5 dB. 5e-4 dB leaves
    # room for other BLAS/FFT summation orders while still catching any convention error (window, padding,
    # mel normalisation and ref/amin all move values by > 1e-2 dB).
    err = (feats - expected).abs().max().item()
    assert err < 5e-4, f"log-mel max abs error {err:.3g} dB"


@pytest.mark.parity
@pytest.mark.slow  # two 80.8M-parameter models (~5 s on 2 cores)
@pytest.mark.parametrize(("name", "ref_cls"), [("panns_cnn14", "Cnn14")])
def test_clipwise_output_parity(panns_models, name, ref_cls):
    ref, ours = _pair(panns_models, name, ref_cls)
    wav = _wave(1.2)
    with torch.no_grad():
        expected = ref(wav)["clipwise_output"]
        feats, lengths = ours.frontend(wav)
        got = torch.sigmoid(ours(feats))
        got_len = torch.sigmoid(ours(feats, lengths))  # full lengths must not change anything
    # Brief's bar: 1e-4 absolute on probabilities; measured max 4e-7 (float32 accumulation order only).
    err = (got - expected).abs().max().item()
    assert err < 1e-4, f"{name}: clipwise_output max abs error {err:.3g}"
    assert torch.allclose(got_len, got, atol=1e-6)
    assert expected.std() > 1e-3, "degenerate test: the reference outputs do not vary"


def test_converter_drops_frontend_and_prefix():
    model = audiozoo.create_model("panns_mobilenetv1", **audiozoo.model_info("panns_mobilenetv1").tiny)
    sd = {f"module.{k}": v for k, v in model.state_dict().items()}
    sd["module.logmel_extractor.melW"] = torch.zeros(513, 32)
    sd["module.spectrogram_extractor.stft.conv_real.weight"] = torch.zeros(513, 1, 1024)
    out = checkpoint_filter_fn({"model": sd, "iteration": 0}, model)
    assert set(out) == set(model.state_dict())
    model.load_state_dict(out)


@pytest.mark.parametrize("name", ["panns_cnn14", "panns_mobilenetv1"])
def test_lengths_pool_only_valid_frames(name):
    # A clip zero-padded in a batch: silence is -100 dB in the log-mel, far from the clip's frames, so
    # pooling over all frames (the official behaviour, lengths=None) moves the output a lot; pooling over
    # the valid frames leaves only the conv receptive field at the boundary to differ from the lone clip.
    info = audiozoo.model_info(name)
    model = audiozoo.create_model(name, **info.tiny).eval()
    wav = _wave(1.0, batch=1)
    padded = torch.nn.functional.pad(wav, (0, SR))
    with torch.no_grad():
        alone = model(model.frontend(wav)[0])
        feats, lengths = model.frontend(padded, torch.tensor([wav.shape[-1]]))
        masked = model(feats, lengths)
        unmasked = model(feats)
    assert lengths.tolist() == [wav.shape[-1] // 320 + 1]
    err_masked = (masked - alone).abs().max()
    err_all = (unmasked - alone).abs().max()
    assert err_masked < 0.5 * err_all, (err_masked, err_all)


def test_short_input_and_bad_shapes():
    model = audiozoo.create_model("panns_cnn14", **audiozoo.model_info("panns_cnn14").tiny).eval()
    with torch.no_grad():
        out = model(torch.randn(2, model.config.n_mels, 2))  # fewer frames than the 4x time downsampling
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    with pytest.raises(audiozoo.errors.AudioError):
        model(torch.randn(2, model.config.n_mels + 1, 40))
    with pytest.raises(audiozoo.errors.AudioError):
        model.frontend(torch.randn(2, 100))


def test_reset_classifier():
    model = audiozoo.create_model("panns_mobilenetv1", **audiozoo.model_info("panns_mobilenetv1").tiny)
    model.reset_classifier(3)
    assert model(torch.randn(2, model.config.n_mels, 40)).shape == (2, 3)
    assert model.config.num_classes == 3


def test_time_segments_pool_each_part_of_the_valid_frames():
    """``time_segments=s``: max + mean over s equal parts of the valid (downsampled) frames, concatenated; s=1 is
    PANNs' clip pooling; padding beyond ``lengths`` is ignored; shorter clips than s frames still pool."""
    tiny = audiozoo.model_info("panns_cnn14").tiny
    torch.manual_seed(0)
    one = audiozoo.create_model("panns_cnn14", **tiny).eval()
    three = audiozoo.create_model("panns_cnn14", **{**tiny, "time_segments": 3}).eval()
    assert three.embed_dim == 3 * one.embed_dim and three.fc1.in_features == 3 * three.fc1.out_features
    feats = torch.randn(2, tiny["n_mels"], 48)
    lengths = torch.tensor([48, 25])
    with torch.no_grad():
        emb = three.forward_features(feats, lengths)
        body = three._body(three.bn0(feats.transpose(1, 2)[:, None].transpose(1, 3)).transpose(1, 3), None).mean(3)
    assert emb.shape == (2, 3 * one.embed_dim)
    # item 1: 25 // 4 = 6 valid frames -> segments [0, 2), [2, 4), [4, 6)
    want = torch.cat([body[1, :, a:b].amax(1) + body[1, :, a:b].mean(1) for a, b in ((0, 2), (2, 4), (4, 6))])
    torch.testing.assert_close(emb[1], want)
    with torch.no_grad():  # the padding does not matter
        cut = three.forward_features(feats[1:, :, :25], lengths[1:])
    assert (cut[0] - emb[1]).abs().max() < (emb[1] - emb[0]).abs().max()
    with torch.no_grad():
        short = three(torch.randn(1, tiny["n_mels"], 5), torch.tensor([5]))  # 1 frame after downsampling
    assert torch.isfinite(short).all()
    three.reset_classifier(4)
    assert three(feats, lengths).shape == (2, 4)
    with pytest.raises(audiozoo.errors.ConfigError):
        audiozoo.create_model("panns_cnn14", **{**tiny, "time_segments": 0})
