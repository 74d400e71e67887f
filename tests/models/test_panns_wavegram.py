"""Wavegram-Logmel-CNN14 (PANNs, Kong et al. 2020): count, waveform packing, branch alignment, ONNX."""

from __future__ import annotations

import pytest
import torch

import audiozoo
from audiozoo.export import check_onnx, export_onnx
from audiozoo.hub import save_pretrained
from audiozoo.models.classify.panns import pack_waveform, unpack_waveform
from audiozoo.registry import from_pretrained

NAME = "panns_wavegram_logmel_cnn14"


def _tiny():
    return audiozoo.create_model(NAME, **audiozoo.model_info(NAME).tiny)


def _pre_wav_block(cin: int, cout: int) -> int:
    return 3 * cin * cout + 3 * cout * cout + 4 * cout  # two bias-free convs (k3) + two BatchNorms


def test_count_is_cnn14_plus_wavegram_branch():
    with torch.device("meta"):
        model = audiozoo.create_model(NAME)
        cnn14 = audiozoo.create_model("panns_cnn14")
    n = sum(p.numel() for p in model.parameters())
    n14 = sum(p.numel() for p in cnn14.parameters())
    wavegram = (64 * 11 + 2 * 64  # pre_conv0 (k11, no bias) + pre_bn0
                + _pre_wav_block(64, 64) + _pre_wav_block(64, 128) + _pre_wav_block(128, 128)
                + 9 * 4 * 64 + 9 * 64 * 64 + 4 * 64)  # pre_block4: ConvBlock(4 -> 64)
    extra_in = 9 * 64 * 128  # conv_block2 takes 64 log-mel + 64 Wavegram channels instead of 64
    assert n == n14 + wavegram + extra_in == audiozoo.model_info(NAME).params == 81_065_487


def test_pack_unpack_is_lossless():
    wav = torch.randn(2, 1000)
    packed = pack_waveform(wav, 320, 4)
    assert packed.shape == (2, 320, 4)
    assert torch.equal(packed[:, :, 1], wav[:, 320:640])
    assert torch.equal(unpack_waveform(packed)[:, :1000], wav)
    assert not unpack_waveform(packed)[:, 1000:].any()


def test_frontend_rows_are_logmel_then_waveform():
    model = _tiny()
    cnn14 = audiozoo.create_model("panns_cnn14", n_mels=32)
    wav = torch.randn(2, 32000) * 0.1
    feats, lens = model.frontend(wav)
    assert feats.shape == (2, 32 + 320, 101) == (2, model.feature_dim, 101) and lens.tolist() == [101, 101]
    assert torch.equal(feats[:, :32], cnn14.frontend(wav)[0])
    assert torch.equal(unpack_waveform(feats[:, 32:])[:, :32000], wav)


def test_branches_align_on_whole_second_clips():
    model = _tiny().eval()
    wav = torch.randn(1, 32000 * 10) * 0.1  # 10 s: 1001 frames; both branches give 500 frames
    feats, _ = model.frontend(wav)
    x = unpack_waveform(feats[:, 32:])[:, : (feats.shape[-1] - 1) * 320]
    assert torch.equal(x, wav)  # exactly the clip reaches the Wavegram branch
    with torch.no_grad():
        assert model._wavegram(x).shape[2] == 1001 // 2 == 500


def test_contract_checks_on_packed_features(tmp_path):
    # What tests/models/test_all_models.py checks, on (B, feature_dim, L) inputs (its example_inputs feeds
    # config.n_mels rows; see the report asking for `feature_dim` there).
    model = _tiny()
    model.train()
    x = torch.randn(2, model.feature_dim, 64)
    model(x, torch.tensor([64, 61])).pow(2).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not missing
    model.eval()
    for length in (37, 53, 64):
        with torch.no_grad():
            assert torch.isfinite(model(torch.randn(2, model.feature_dim, length))).all()
    save_pretrained(model, tmp_path / "m")
    loaded = from_pretrained(tmp_path / "m").eval()
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    with pytest.raises(audiozoo.errors.AudioError, match="packed waveform"):
        model(torch.randn(2, 32, 64))


@pytest.mark.parity
def test_onnx_export_tiny(tmp_path):
    model = _tiny().eval()
    x = torch.randn(2, model.feature_dim, 41)
    path = export_onnx(model, tmp_path / "wg.onnx", (x,), ["features"], ["logits"],
                       {"features": {0: "batch", 2: "time"}, "logits": {0: "batch"}})
    # float32 ONNX Runtime vs PyTorch: measured ~1e-8 (as CNN14); 1e-4 is the project's parity bar.
    assert check_onnx(model, path, (x,), 1e-4) <= 1e-4
    assert check_onnx(model, path, (torch.randn(3, model.feature_dim, 57),), 1e-4) <= 1e-4
