"""Melception and VGGish-ish (SpecVQGAN's classifiers) and their front end, dsp.SpecVQGANMel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import audiozoo
from audiozoo.dsp import SpecVQGANMel, mel_filterbank, specvqgan_mel_stats
from audiozoo.errors import AudioError, ConfigError
from audiozoo.models.classify.melception import checkpoint_filter_fn


def _close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-5) -> bool:
    """Equal up to ``rel`` of ``b``'s largest value (random-weight activations can be tiny)."""
    return bool((a - b).abs().max() <= rel * b.abs().max())


def _tone(seconds: float = 0.6, sr: int = 22050) -> torch.Tensor:
    t = torch.arange(int(seconds * sr), dtype=torch.float64) / sr
    return 0.4 * torch.sin(2 * np.pi * 440 * t) * torch.exp(-2 * t) + 0.01 * torch.sin(2 * np.pi * 3000 * t)


def test_mel_matches_specvqgan_transforms():
    # SpecVQGAN's TRANSFORMS, written out in numpy: |STFT| of reflect-padded centred Hann frames (librosa 0.8's
    # stft default), Slaney mel 125-7600 Hz (librosa.filters.mel = audiozoo's mel_filterbank, tested in
    # tests/dsp), 20 log10(max(., 1e-5)) - 20, (x + 100) / 100, clip to [0, 1]
    x = _tone().numpy()
    padded = np.pad(x, 512, mode="reflect")
    n = 1 + (len(padded) - 1024) // 256
    frames = np.stack([padded[k * 256:k * 256 + 1024] for k in range(n)], 1)
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(1024) / 1024)  # periodic Hann
    spec = np.abs(np.fft.rfft(frames * win[:, None], axis=0))
    fb = mel_filterbank(22050, 1024, 80, 125.0, 7600.0, dtype=torch.float64).numpy()
    want = np.clip((20 * np.log10(np.maximum(1e-5, fb @ spec)) - 20 + 100) / 100, 0, 1)
    got, length = SpecVQGANMel().double()(torch.from_numpy(x))
    assert got.shape == (1, 80, n) and int(length) == n
    assert np.abs(got[0].numpy() - want).max() < 1e-9


def test_mel_standardisation_and_stats():
    x = _tone().float()
    raw = SpecVQGANMel()(x)[0][0]
    means, stds = specvqgan_mel_stats([raw, raw[:, :10]])
    assert len(means) == len(stds) == 80 and min(stds) >= 1e-4
    want_m = (raw.double().mean(-1) + raw[:, :10].double().mean(-1)) / 2
    assert np.allclose(means, want_m.numpy(), atol=1e-7)
    norm = SpecVQGANMel(means=means, stds=stds)(x)[0][0]
    assert torch.allclose(norm, (raw - torch.tensor(means)[:, None].float()) / torch.tensor(stds)[:, None].float(),
                          atol=1e-5)
    with pytest.raises(ConfigError, match="both"):
        SpecVQGANMel(means=means)
    with pytest.raises(ConfigError, match="80 values"):
        SpecVQGANMel(means=means[:3], stds=stds[:3])
    with pytest.raises(AudioError, match="too short"):
        SpecVQGANMel()(torch.zeros(100))


def test_paper_parameter_counts_match_torchvision():
    # torchvision's inception_v3 (1000 classes, AuxLogits) has 27,161,264 parameters; SpecVQGAN's 1-channel
    # Conv2d_1a_3x3 removes 2 * 9 * 32 = 576 of them
    with torch.device("meta"):
        m = audiozoo.create_model("melception", num_classes=1000, aux_logits=True)
    assert sum(p.numel() for p in m.parameters()) == 27_161_264 - 576
    with torch.device("meta"):
        m = audiozoo.create_model("melception")
    assert m.embed_dim == 2048 and m.num_classes == 309 and m.config.n_mels == 80


def test_lengths_and_short_inputs():
    torch.manual_seed(0)
    m = audiozoo.create_model("melception", **audiozoo.model_info("melception").tiny).eval()
    x = torch.randn(2, 32, 60)
    with torch.no_grad():
        full = m.forward_features(x)
        assert _close(m.forward_features(x, torch.tensor([60, 60])), full)
        # a padded item pools over its own frames only
        part = m.forward_features(x, torch.tensor([60, 40]))
        assert _close(part[0], full[0]) and not _close(part[1], full[1], 1e-2)
        assert torch.isfinite(m(torch.randn(1, 32, 5))).all()  # padded to 23 frames
    with pytest.raises(AudioError, match="log-mels"):
        m(torch.randn(1, 40, 60))
    with pytest.raises(ConfigError, match="n_mels"):
        audiozoo.create_model("melception", n_mels=16, width=0.1)


def test_official_checkpoint_layout_loads():
    # the official file is {"model": Inception3 state dict} with AuxLogits; our default drops that head
    torch.manual_seed(0)
    # 80 mels x 100 frames: the auxiliary head's 5x5/3 pooling + 5x5 conv need >= 17 steps at Mixed_6e
    tiny = {**audiozoo.model_info("melception").tiny, "n_mels": 80}
    src = audiozoo.create_model("melception", aux_logits=True, **tiny).eval()
    state = {"model": {f"module.{k}": v for k, v in src.state_dict().items()}}
    dst = audiozoo.create_model("melception", pretrained=state, **tiny).eval()
    assert dst.AuxLogits is None
    x = torch.randn(2, 80, 100)
    with torch.no_grad():
        assert torch.equal(dst(x), src(x))
        assert src.aux_forward(x).shape == (2, 5)
    with pytest.raises(ConfigError, match="auxiliary"):
        dst.aux_forward(x)
    assert not any(k.startswith("AuxLogits") for k in checkpoint_filter_fn(state, dst))


def test_vggishish_stages_for_lpaps():
    with torch.device("meta"):
        m = audiozoo.create_model("vggishish")
    # VGG-16 stages end at features.3/8/15/22/29: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (LPAPS slices)
    assert m.stage_ends == [3, 8, 15, 22, 29] and m.embed_dim == 512 * 5 * 10
    torch.manual_seed(0)
    small = audiozoo.create_model("vggishish_small", norm_means=None, norm_stds=None).eval()
    x = torch.randn(2, 80, 48)
    with torch.no_grad():
        maps = small.feature_maps(x)
        assert [tuple(f.shape[1:]) for f in maps] == [(16, 80, 48), (32, 40, 24), (64, 20, 12), (128, 10, 6),
                                                       (128, 5, 3)]
        full = small.forward_features(x)
        assert _close(small.forward_features(x, torch.tensor([48, 48])), full)
        part = small.forward_features(x, torch.tensor([48, 32]))
        assert _close(part[0], full[0]) and not _close(part[1], full[1], 1e-2)
    with pytest.raises(ConfigError, match="'MP'"):
        audiozoo.create_model("vggishish", conv_layers=("MP", 8))


@pytest.mark.parity
def test_melception_equals_specvqgan_inception3():
    # SpecVQGAN's Melception = torchvision Inception3 with a 1-channel stem and identity max-pools
    models = pytest.importorskip("torchvision.models.inception")
    torch.manual_seed(0)
    ref = models.Inception3(num_classes=7, aux_logits=True, init_weights=True)
    ref.Conv2d_1a_3x3 = models.BasicConv2d(1, 32, kernel_size=3, stride=2)
    ref.maxpool1 = ref.maxpool2 = torch.nn.Identity()
    ref.eval()
    ours = audiozoo.create_model("melception", num_classes=7, pretrained={"model": ref.state_dict()},
                                 norm_means=None, norm_stds=None).eval()
    pooled = {}
    ref.avgpool.register_forward_hook(lambda mod, i, o: pooled.setdefault("x", o.flatten(1)))
    x = torch.randn(2, 80, 64)
    with torch.no_grad():
        want = ref(x.unsqueeze(1))
        assert torch.allclose(ours.forward_features(x), pooled["x"], atol=1e-5)
        assert torch.allclose(ours(x), want, atol=1e-4)


@pytest.mark.parametrize("name", ["melception_small.project8", "vggishish_small.project8"])
def test_shipped_weights_tell_tones_from_noise(name):
    # the shipped 8-class weights (recipes/classify/{melception,vggishish}_small.yaml): a decaying harmonic tone
    # and white noise, neither seen in training, land in tonal / noise classes; FID/MKL of identical sets is 0
    from audiozoo.eval.generation import DEFAULT_MELCEPTION, classifier_outputs, melception_scores
    from audiozoo.resolve import resolve_model

    assert DEFAULT_MELCEPTION == "melception_small.project8"
    model = resolve_model(name, "classify", trained=True).eval()
    labels = model.pretrained_metadata["labels"]
    sr, t = 22050, torch.arange(22050) / 22050
    tone = sum(torch.sin(2 * np.pi * h * 262.0 * t) / h for h in range(1, 6)) * 0.3 * torch.exp(-2 * t)
    noise = 0.3 * torch.randn(22050, generator=torch.Generator().manual_seed(0))
    _, logits = classifier_outputs(model, [tone, noise], sample_rate=sr)
    got = [labels[int(i)] for i in logits.argmax(-1)]
    # Melception says "tones"; VGGish-ish (74.8 % held out) calls this harmonic note a solo instrument part
    assert got[0] in (("tones",) if name.startswith("melception") else ("tones", "music_solo")), got
    assert got[1] == "noise", got
    if name.startswith("melception"):  # (VGGish-ish features are 6400-d: a Frechet distance there takes minutes)
        out = melception_scores([tone, noise, 0.5 * tone], [tone, noise, 0.5 * tone], model=model, sample_rate=sr)
        assert out["fid"] < 1e-6 and abs(out["mkl"]) < 1e-5 and out["classifier"] == name
