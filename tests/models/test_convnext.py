"""ConvNeXt-Tiny-AT (Pellegrini et al. 2023; CoNeTTE's encoder): counts, shapes, converter, learning, ONNX."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import audiozoo
from audiozoo.export import check_onnx, export_onnx
from audiozoo.models.classify.convnext import ConvNeXtAT, ConvNeXtATConfig


def _block_params(d: int, k: int = 7, r: int = 4) -> int:
    # dwconv k*k*d + d, LayerNorm 2d, pwconv1 d*rd + rd, pwconv2 rd*d + d, gamma d
    return k * k * d + d + 2 * d + d * r * d + r * d + r * d * d + d + d


def _expected_params(c: ConvNeXtATConfig) -> int:
    n = 2 * c.n_mels  # bn0
    n += c.dims[0] * c.stem_kernel[0] * c.stem_kernel[1] + c.dims[0] + 2 * c.dims[0]  # stem conv + LayerNorm
    for a, b in zip(c.dims[:-1], c.dims[1:]):
        n += 2 * a + a * b * 4 + b  # LayerNorm + 2x2 conv
    n += sum(depth * _block_params(d) for depth, d in zip(c.depths, c.dims))
    n += 2 * c.dims[-1] + c.dims[-1] * c.num_classes + c.num_classes  # final norm + head
    return n


def test_canonical_count_from_architecture():
    with torch.device("meta"):
        model = audiozoo.create_model("convnext_tiny_at")
    n = sum(p.numel() for p in model.parameters())
    assert n == _expected_params(model.config) == audiozoo.model_info("convnext_tiny_at").params
    # The ImageNet ConvNeXt-T (3-channel 4x4 stem, no bn0, 1000 classes) is 28.59M; check the formula on it.
    img = ConvNeXtATConfig(n_mels=0, stem_kernel=(4, 4), num_classes=1000)
    assert _expected_params(img) + 96 * 4 * 4 * 2 == 28_589_128  # +2 input channels of the RGB stem


def test_frame_and_clip_embeddings_shapes():
    # canonical front-end geometry and stem, narrow stages (keeps the test fast)
    model = audiozoo.create_model("convnext_tiny_at", depths=(1, 1, 1, 1), dims=(8, 16, 24, 32)).eval()
    x = torch.randn(2, 224, 1001)  # 10 s at 32 kHz, hop 320
    with torch.no_grad():
        frames, lens = model.forward_frames(x, torch.tensor([1001, 501]))
        emb = model.forward_features(x)
        full = model.forward_features(x, torch.tensor([1001, 1001]))
    # stem: 1001 // 18 + 1 = 56 frames, then three 2x downsamplings -> 7; 224 mels -> 56 -> 7 (averaged)
    assert frames.shape == (2, 32, 7) and emb.shape == (2, 32)
    assert lens.tolist() == [7, 4]  # CoNeTTE rule: round(501 / (1001 // 7)) = round(3.5) = 4
    torch.testing.assert_close(full, emb, rtol=0, atol=1e-6)  # full lengths = no mask (float32 sum order)


def test_short_input_is_padded_not_crashing():
    model = audiozoo.create_model("convnext_tiny_at", depths=(1, 1, 1, 1), dims=(8, 16, 24, 32)).eval()
    assert model.min_frames == 126  # 7 * 18 + 18 - 2 * 9
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(1, 224, 20))).all()


@pytest.mark.parity
def test_frontend_matches_librosa():
    import librosa

    model = audiozoo.create_model("convnext_tiny_at", **audiozoo.model_info("convnext_tiny_at").tiny)
    model.frontend.config.n_mels = 224  # the canonical front-end on a tiny body
    model.frontend.__init__(model.frontend.config)
    wav = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    feats, lens = model.frontend(torch.from_numpy(wav)[None])
    ref = librosa.power_to_db(librosa.feature.melspectrogram(
        y=wav.astype(np.float64), sr=32000, n_fft=1024, hop_length=320, win_length=1024, window="hann",
        center=True, pad_mode="reflect", power=2.0, n_mels=224, fmin=50, fmax=14000, htk=False, norm="slaney"),
        ref=1.0, amin=1e-10, top_db=None)
    assert feats.shape == (1, 224, 51) and lens.tolist() == [51]
    err = float(np.abs(feats[0].numpy() - ref).max())
    # float32 STFT vs librosa float64: measured ~2e-4 dB on the quietest bins; 2e-3 dB is far below any
    # audible/learnable difference and above float32 noise.
    assert err < 2e-3, err


def test_converter_loads_official_and_conette_layouts():
    tiny = audiozoo.model_info("convnext_tiny_at").tiny
    src = audiozoo.create_model("convnext_tiny_at", **tiny).eval()
    dst = audiozoo.create_model("convnext_tiny_at", **tiny).eval()
    sd = src.state_dict()
    conette = {"encoder." + k.replace(".gamma", ".scale_layer"): v for k, v in sd.items()}
    conette["encoder.logmel_extractor.melW"] = torch.zeros(1)  # frozen torchlibrosa tensor, dropped
    official = {"model": {"module." + k: v for k, v in sd.items()}}
    x = torch.randn(2, tiny["n_mels"], 40)
    for state in (conette, official):
        dst.load_state_dict(src_conv := audiozoo.model_info("convnext_tiny_at").converter(state, dst), strict=True)
        assert set(src_conv) == set(sd)
        with torch.no_grad():
            assert torch.equal(dst(x), src(x))


@pytest.mark.slow
def test_tiny_convnext_learns_a_toy_task():
    # Two classes of log-mel "images": energy in the low vs the high half of the mel axis. Chance is 50%.
    torch.manual_seed(0)
    model = audiozoo.create_model("convnext_tiny_at", **{**audiozoo.model_info("convnext_tiny_at").tiny,
                                                          "num_classes": 2, "drop_path_rate": 0.0})
    y = torch.arange(16) % 2
    x = torch.randn(16, 32, 28)
    x[y == 0, :16] += 2.0
    x[y == 1, 16:] += 2.0
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(25):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(-1) == y).float().mean().item()
    assert acc >= 0.95, acc


@pytest.mark.parity
def test_onnx_export_tiny_dynamic_batch_and_time(tmp_path):
    model = audiozoo.create_model("convnext_tiny_at", **audiozoo.model_info("convnext_tiny_at").tiny).eval()
    x = torch.randn(2, 32, 48)
    path = export_onnx(model, tmp_path / "convnext.onnx", (x,), ["features"], ["logits"],
                       {"features": {0: "batch", 2: "time"}, "logits": {0: "batch"}})
    # float32 ONNX Runtime vs PyTorch: measured ~1e-7; 1e-4 is the project's parity bar.
    assert check_onnx(model, path, (x,), 1e-4) <= 1e-4
    assert check_onnx(model, path, (torch.randn(3, 32, 61),), 1e-4) <= 1e-4


def test_wrong_feature_shape_is_a_clear_error():
    model = ConvNeXtAT(ConvNeXtATConfig(**audiozoo.model_info("convnext_tiny_at").tiny))
    with pytest.raises(audiozoo.errors.AudioError, match="expects log-mel features"):
        model(torch.randn(1, 64, 40))
