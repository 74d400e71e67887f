"""SpecTTTra (SONICS): tokenizer arithmetic, parameter counts, front-end, converter, learning, ONNX."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import audiozoo
from audiozoo.export import check_onnx, export_onnx
from audiozoo.models.classify.spectttra import SpecTTTra, SpecTTTraConfig, num_clips

VARIANTS = {"spectttra_alpha": (1, 3), "spectttra_beta": (3, 5), "spectttra_gamma": (5, 7)}  # (f_clip, t_clip)


@pytest.mark.parametrize(("frames", "expected"), [
    # 120 s: 128 x 3744 -> T/t + F/f tokens (the paper's alpha: 1248 + 128), vs ViT 16x16: 8 x 234 = 1872
    (3744, {"spectttra_alpha": 1248 + 128, "spectttra_beta": 748 + 42, "spectttra_gamma": 534 + 25}),
    # 5 s: 128 x 128
    (128, {"spectttra_alpha": 42 + 128, "spectttra_beta": 25 + 42, "spectttra_gamma": 18 + 25}),
])
def test_token_counts(frames, expected):
    for name, (f, t) in VARIANTS.items():
        with torch.device("meta"):
            model = audiozoo.create_model(name, n_frames=frames)
        tok = model.st_tokenizer
        assert (tok.num_temporal_tokens, tok.num_spectral_tokens) == (num_clips(frames, t), num_clips(128, f))
        assert model.num_tokens == expected[name]


def _expected_params(c: SpecTTTraConfig) -> int:
    d, h = c.embed_dim, int(c.embed_dim * c.mlp_ratio)
    block = 2 * d + d * 3 * d + (d * d + d) + 2 * d + (d * h + h) + (h * d + d)  # no qkv bias
    nt, nf = num_clips(c.n_frames, c.t_clip), num_clips(c.n_mels, c.f_clip)
    tokenizers = c.n_mels * d * c.t_clip + c.n_frames * d * c.f_clip + (nt + nf) * d + 2 * 2 * d  # no conv bias
    return c.depth * block + tokenizers + d * c.num_classes + c.num_classes


@pytest.mark.parametrize(("frames", "readme_m"), [(3744, {"spectttra_alpha": 19, "spectttra_beta": 21,
                                                          "spectttra_gamma": 24}),
                                                  (128, dict.fromkeys(VARIANTS, 17))])
def test_param_counts_match_formula_and_readme(frames, readme_m):
    for name in VARIANTS:
        with torch.device("meta"):
            model = audiozoo.create_model(name, n_frames=frames)
        n = sum(p.numel() for p in model.parameters())
        assert n == _expected_params(model.config)
        assert round(n / 1e6) == readme_m[name], (name, n)  # README rounds to whole millions
        if frames == 3744:
            assert n == audiozoo.model_info(name).params


def test_forward_shapes_and_resize():
    tiny = audiozoo.model_info("spectttra_beta").tiny
    model = audiozoo.create_model("spectttra_beta", **tiny).eval()
    for length in (20, 48, 97):  # any L is resized to n_frames (48), as the official AudioClassifier
        x = torch.randn(2, tiny["n_mels"], length)
        with torch.no_grad():
            tokens = model.forward_features(x)
            logits = model(x)
        assert tokens.shape == (2, num_clips(48, 5) + num_clips(32, 3), 32) == (2, 9 + 10, 32)
        assert logits.shape == (2, tiny["num_classes"])
    with pytest.raises(audiozoo.errors.AudioError, match="expects features"):
        model(torch.randn(2, 64, 48))


@pytest.mark.parity
def test_frontend_matches_librosa():
    import librosa

    model = audiozoo.create_model("spectttra_alpha", **audiozoo.model_info("spectttra_alpha").tiny,
                                  clip_seconds=0.0)  # no 120 s crop/pad: compare on the 2 s clip itself
    model.frontend.config.n_mels = 128
    model.frontend.__init__(model.frontend.config)
    wav = (np.random.default_rng(0).standard_normal(16000 * 2) * 0.05).astype(np.float32)
    feats, lens = model.frontend(torch.from_numpy(wav)[None])
    y = wav.astype(np.float64) / wav.std()
    mel = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=2048, hop_length=512, win_length=2048,
                                         window="hann", center=True, pad_mode="reflect", power=2.0, n_mels=128,
                                         fmin=20, fmax=8000, htk=True, norm=None)
    db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=80.0)
    ref = (db - db.mean()) / (db.std(ddof=1) + 1e-6)
    assert feats.shape == (1, 128, 32000 // 512 + 1) and lens.tolist() == [63]
    err = float(np.abs(feats[0].numpy() - ref).max())
    # normalised units (~1 std); float32 STFT vs float64 librosa: measured ~1e-5; 1e-4 = parity bar.
    assert err < 1e-4, err


def test_frontend_fixed_duration_crop_and_pad():
    model = audiozoo.create_model("spectttra_alpha", **audiozoo.model_info("spectttra_alpha").tiny,
                                  clip_seconds=1.0)
    wav = torch.randn(2, 24000)
    feats, lens = model.frontend(wav, torch.tensor([24000, 8000]))
    assert feats.shape == (2, 32, 16000 // 512 + 1) and lens.tolist() == [32, 32]


def test_converter_loads_official_layout():
    tiny = audiozoo.model_info("spectttra_alpha").tiny
    src = audiozoo.create_model("spectttra_alpha", **tiny).eval()
    dst = audiozoo.create_model("spectttra_alpha", **tiny).eval()
    official = {}
    for k, v in src.state_dict().items():
        k = k.replace("pos_embed", "pos_encoder.pe")
        official[k if k.startswith("classifier") else "encoder." + k] = v
    official["ft_extractor.audio2melspec.mel_scale.fb"] = torch.zeros(1)  # torchaudio buffer, dropped
    dst.load_state_dict(audiozoo.model_info("spectttra_alpha").converter(official, dst), strict=True)
    x = torch.randn(2, tiny["n_mels"], 48)
    with torch.no_grad():
        assert torch.equal(dst(x), src(x))


@pytest.mark.slow
def test_tiny_spectttra_learns_a_toy_task():
    # Two classes: a stationary spectral peak in the low vs the high mel bins. Chance is 50%.
    torch.manual_seed(0)
    model = SpecTTTra(SpecTTTraConfig(**{**audiozoo.model_info("spectttra_alpha").tiny, "pos_drop_rate": 0.0,
                                         "attn_drop_rate": 0.0}))
    y = torch.arange(32) % 2
    x = torch.randn(32, 32, 48)
    x[y == 0, 4:8] += 2.0
    x[y == 1, 24:28] += 2.0
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(-1) == y).float().mean().item()
    assert acc >= 0.95, acc


@pytest.mark.parity
@pytest.mark.parametrize("name", list(VARIANTS))
def test_onnx_export_tiny(name, tmp_path):
    model = audiozoo.create_model(name, **audiozoo.model_info(name).tiny).eval()
    x = torch.randn(2, 32, 40)
    path = export_onnx(model, tmp_path / f"{name}.onnx", (x,), ["features"], ["logits"],
                       {"features": {0: "batch", 2: "time"}, "logits": {0: "batch"}})
    # float32 ONNX Runtime vs PyTorch: measured ~1e-7; 1e-4 is the project's parity bar. The bilinear
    # resize to n_frames keeps the time axis dynamic (another length goes through the same graph).
    assert check_onnx(model, path, (x,), 1e-4) <= 1e-4
    assert check_onnx(model, path, (torch.randn(3, 32, 57),), 1e-4) <= 1e-4
