"""AST: parity with transformers' ASTForAudioClassification, front-end parity, grid arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import audiozoo
from audiozoo.hub import load_into
from audiozoo.models.classify.ast import checkpoint_filter_fn


def _hf_pair(**cfg):
    from transformers import ASTConfig, ASTForAudioClassification

    hf_cfg = ASTConfig(
        hidden_size=cfg.get("embed_dim", 768), num_hidden_layers=cfg.get("depth", 12),
        num_attention_heads=cfg.get("num_heads", 12), intermediate_size=4 * cfg.get("embed_dim", 768),
        max_length=cfg.get("max_length", 1024), num_mel_bins=128, frequency_stride=10, time_stride=10,
        patch_size=16, num_labels=cfg.get("num_classes", 527),
    )
    torch.manual_seed(0)
    hf = ASTForAudioClassification(hf_cfg).eval()
    # HF initialises the cls/dist/position embeddings to zeros; randomise every tensor so parity covers them.
    with torch.no_grad():
        for p in hf.parameters():
            p.copy_(torch.randn_like(p) * 0.05)
    ours = audiozoo.create_model("ast_base_p16", **cfg).eval()
    load_into(ours, hf.state_dict(), converter=checkpoint_filter_fn)
    return hf, ours


@pytest.mark.parity
@pytest.mark.slow
def test_ast_base_matches_transformers_end_to_end(speechlike):
    """waveform -> HF ASTFeatureExtractor -> HF logits == waveform -> model.frontend -> model."""
    from transformers import ASTFeatureExtractor

    hf, ours = _hf_pair()
    wav2 = np.roll(speechlike, 4000) * 0.5
    fe = ASTFeatureExtractor()
    hf_in = fe([speechlike, wav2], sampling_rate=16000, return_tensors="pt")["input_values"]  # (B, 1024, 128)
    with torch.no_grad():
        hf_logits = hf(hf_in).logits
        batch = torch.from_numpy(np.stack([speechlike, wav2]))
        feats, lengths = ours.frontend(batch)
        logits = ours(feats, lengths)
    assert feats.shape == (2, 128, 1024)
    # Front-end: HF's numpy Kaldi path vs ours (computed in float64, returned as float32): measured max abs
    # diff ~1.2e-7 on normalised features (one float32 ulp); 1e-5 leaves room for BLAS/FFT differences.
    assert torch.allclose(feats, hf_in.transpose(1, 2), atol=1e-5)
    # Model: same weights -> same logits; DESIGN's parity bound is 1e-4 relative. Measured ~1e-6.
    rel = (logits - hf_logits).abs().max() / hf_logits.abs().max()
    assert rel < 1e-4, f"relative logit error {rel:.2e}"
    # And on identical inputs the transformer alone agrees to float32 rounding.
    with torch.no_grad():
        same = ours(hf_in.transpose(1, 2))
    assert ((same - hf_logits).abs().max() / hf_logits.abs().max()) < 1e-5


@pytest.mark.parity
@pytest.mark.shared_data
def test_ast_frontend_matches_transformers_on_real_recordings(shared_data):
    """Real music and speech: our front-end equals HF ASTFeatureExtractor (measured max diff 1.2e-7)."""
    from transformers import ASTFeatureExtractor

    from audiozoo.dsp.io import load_audio

    m = audiozoo.create_model("ast_tiny", max_length=1024)
    fe = ASTFeatureExtractor()
    for rel in ("librosa/sorohanro_-_solo-trumpet-06.ogg", "speech_sources/cmu_arctic/cmu_arctic_us_aew_a0001.wav"):
        wav, _ = load_audio(shared_data / rel, sample_rate=16000)
        ref = fe(wav.numpy(), sampling_rate=16000, return_tensors="pt")["input_values"][0].T
        feats, _ = m.frontend(wav)
        assert (feats[0] - ref).abs().max() < 1e-5, rel


@pytest.mark.parity
def test_ast_small_config_matches_transformers_on_features():
    """A 2-layer, 64-frame configuration: same weights through the converter give the same logits."""
    hf, ours = _hf_pair(embed_dim=64, depth=2, num_heads=4, max_length=64, num_classes=7)
    x = torch.randn(3, 64, 128)  # HF layout (B, L, F)
    with torch.no_grad():
        ref = hf(x).logits
        out = ours(x.transpose(1, 2))
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-5), (out - ref).abs().max()


def test_ast_patch_grid_matches_paper():
    with torch.device("meta"):
        m = audiozoo.create_model("ast_base_p16")
    assert m.patch_embed.grid_size == (12, 101)  # Sec. 2.1: 1212 patches for 1024 x 128 at stride 10
    assert m.pos_embed.shape == (1, 1214, 768)


def test_ast_frontend_batch_equals_single(speechlike):
    m = audiozoo.create_model("ast_tiny")
    short = speechlike[:9000]
    batch = torch.zeros(2, speechlike.size)
    batch[0] = torch.from_numpy(speechlike)
    batch[1, : short.size] = torch.from_numpy(short)
    feats, lengths = m.frontend(batch, torch.tensor([speechlike.size, short.size]))
    single, single_len = m.frontend(torch.from_numpy(short))
    assert int(lengths[1]) == int(single_len[0]) == 54
    assert torch.allclose(feats[1], single[0], atol=1e-6)


def test_ast_other_lengths_resample_position_grid():
    m = audiozoo.create_model("ast_base_p16", depth=1, num_classes=3).eval()
    for frames in (300, 1024, 1500):
        with torch.no_grad():
            out = m(torch.randn(1, 128, frames))
        assert out.shape == (1, 3) and torch.isfinite(out).all()


def test_ast_converter_accepts_official_layout():
    """The official checkpoint layout (timm DeiT under module.v.) maps onto audiozoo keys."""
    m = audiozoo.create_model("ast_base_p16", depth=2, embed_dim=64, num_heads=4, num_classes=5)
    sd = m.state_dict()
    official = {}
    for k, v in sd.items():
        if k.startswith("encoder.blocks."):
            official["module.v.blocks." + k[len("encoder.blocks."):]] = v
        elif k.startswith("encoder.norm."):
            official["module.v.norm." + k[len("encoder.norm."):]] = v
        elif k.startswith("head_norm."):
            official["module.mlp_head.0." + k[len("head_norm."):]] = v
        elif k.startswith("head."):
            official["module.mlp_head.1." + k[len("head."):]] = v
        else:
            official["module.v." + k] = v
    official["module.v.head.weight"] = torch.zeros(1000, 64)  # DeiT's unused ImageNet head
    m2 = audiozoo.create_model("ast_base_p16", depth=2, embed_dim=64, num_heads=4, num_classes=5,
                               pretrained=official)
    x = torch.randn(1, 128, 1024)
    with torch.no_grad():
        assert torch.equal(m.eval()(x), m2.eval()(x))
