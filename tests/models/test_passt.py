"""PaSST: parity with hear21passt's PaSST (eval and patchout), front-end parity, grid, converter, ONNX."""

from __future__ import annotations

import sys
import types
import warnings

import numpy as np
import pytest
import torch

import audiozoo
from audiozoo.errors import AudioError, CheckpointError
from audiozoo.hub import load_into
from audiozoo.models.classify.passt import checkpoint_filter_fn

SR = 32000


def _reference_passt_class():
    """hear21passt's network class, importable without timm.

    ``hear21passt/models/helpers/vit_helpers.py`` imports ``timm.models._hub.download_cached_file`` at
    module level, only to download pretrained weights. timm is not installable here (it needs
    torchvision), and the tests never download, so a stub module whose function raises stands in for it.
    """
    added = []
    if "hear21passt.models.passt" not in sys.modules and "timm.models._hub" not in sys.modules:
        def download_cached_file(*args, **kwargs):
            raise RuntimeError("timm stub: downloads are disabled in the tests")

        for name in ("timm", "timm.models", "timm.models._hub"):
            if name not in sys.modules:
                sys.modules[name] = types.ModuleType(name)
                added.append(name)
        sys.modules["timm.models._hub"].download_cached_file = download_cached_file
    try:
        import hear21passt.models.passt as ref
    finally:
        # the stubs leave sys.modules again: other packages in this process (transformers, diffusers) probe
        # for timm with importlib.util.find_spec, which fails on a stub without __spec__
        for name in added:
            sys.modules.pop(name, None)

    ref.first_RUN = False  # the reference prints shapes on its first forward
    return ref.PaSST


def _pair(embed_dim=64, depth=2, num_heads=4, max_length=200, num_classes=7, **patchout):
    """Reference PaSST (seeded random weights, every tensor randomised) and ours with the converted weights."""
    PaSST = _reference_passt_class()
    torch.manual_seed(0)
    ref = PaSST(img_size=(128, max_length), patch_size=16, stride=(10, 10), in_chans=1, num_classes=num_classes,
                embed_dim=embed_dim, depth=depth, num_heads=num_heads, distilled=True, **patchout)
    with torch.no_grad():  # LayerNorms start at 1/0 and biases at 0: randomise so parity covers them
        for p in ref.parameters():
            p.copy_(torch.randn_like(p) * 0.05 + (1.0 if p.ndim == 1 and p.shape[0] == embed_dim else 0.0))
    ours = audiozoo.create_model("passt_s_p16_s10", embed_dim=embed_dim, depth=depth, num_heads=num_heads,
                                 max_length=max_length, num_classes=num_classes,
                                 **{"s_patchout_t": 0, "s_patchout_f": 0, "u_patchout": 0, **patchout})
    load_into(ours, ref.state_dict(), converter=checkpoint_filter_fn)
    return ref, ours


def _ref_forward(ref, feats):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Input image size doesn't match model" for shorter inputs
        return ref(feats.unsqueeze(1))


@pytest.mark.parity
def test_passt_small_config_matches_hear21passt():
    ref, ours = _pair()
    ref.eval(), ours.eval()
    errs = []
    for shape in ((3, 128, 200), (2, 128, 150)):  # native length, and a shorter one (time embeddings cropped)
        x = torch.randn(*shape)
        with torch.no_grad():
            ref_logits, ref_emb = _ref_forward(ref, x)
            tokens = ours.forward_features(x)
            logits, emb = ours.forward_head(tokens), ours.pool(tokens)
        # DESIGN's parity bound is 1e-4 relative; measured max 4.6e-7 (float32 SDPA vs explicit softmax).
        errs.append(float((logits - ref_logits).abs().max() / ref_logits.abs().max()))
        assert errs[-1] < 1e-4, f"relative logit error {errs[-1]:.2e} at {shape}"
        assert torch.allclose(emb, ref_emb, rtol=1e-4, atol=1e-5)


@pytest.mark.parity
def test_passt_patchout_matches_hear21passt_in_training():
    """Same seed -> the same rows/columns/patches dropped -> the same logits (dropout rates are 0)."""
    ref, ours = _pair(s_patchout_t=5, s_patchout_f=3, u_patchout=7)
    ref.train(), ours.train()
    x = torch.randn(2, 128, 200)
    torch.manual_seed(123)
    ref_logits = _ref_forward(ref, x)[0].detach()
    torch.manual_seed(123)
    logits = ours(x).detach()
    # float32 noise only (measured 2.3e-7); a different patch selection would differ by O(1).
    assert float((logits - ref_logits).abs().max() / ref_logits.abs().max()) < 1e-4
    assert ours.patch_tokens(x).shape[1] == (12 - 3) * (19 - 5) - 7


@pytest.mark.parity
@pytest.mark.slow
def test_passt_s_canonical_matches_hear21passt():
    """PaSST-S as hear21passt.base builds it (128 x 998, stride 10, 527 classes): count, keys and logits."""
    PaSST = _reference_passt_class()
    torch.manual_seed(0)
    ref = PaSST(img_size=(128, 998), patch_size=16, stride=(10, 10), in_chans=1, num_classes=527, embed_dim=768,
                depth=12, num_heads=12, distilled=True).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    with torch.device("meta"):  # skip our (slow) random init of 86M weights: all of them are loaded below
        ours = audiozoo.create_model("passt_s_p16_s10")
    ours = ours.to_empty(device="cpu").eval()
    n_ref = sum(p.numel() for p in ref.parameters())
    n_dist = sum(p.numel() for p in ref.head_dist.parameters())
    assert n_ref == 86_153_758 and sum(p.numel() for p in ours.parameters()) == n_ref - n_dist
    load_into(ours, ref.state_dict(), converter=checkpoint_filter_fn)
    x = torch.randn(1, 128, 200)
    with torch.no_grad():
        ref_logits, _ = _ref_forward(ref, x)
        logits = ours(x)
    # 12 layers of 768-d in float32: measured relative error 6.7e-7 (7.9e-7 at 998 frames); DESIGN's bound is 1e-4.
    assert float((logits - ref_logits).abs().max() / ref_logits.abs().max()) < 1e-4


# --------------------------------------------------------------------------- front-end
def _reference_logmel(wav: np.ndarray, fmin: float = 0.0, fmax: float = 15000.0, sr: int = SR, n_fft: int = 1024,
                      win: int = 800, hop: int = 320, n_mels: int = 128) -> np.ndarray:
    """AugmentMelSTFT (eval) re-derived with numpy/librosa: (n_mels, L) for one waveform."""
    import librosa

    x = wav[1:].astype(np.float64) - 0.97 * wav[:-1].astype(np.float64)  # conv1d with [-0.97, 1]
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / (win - 1))  # torch.hann_window(periodic=False)
    # torch.stft(center=True) pads reflectively and centres the shorter window in the FFT frame, as librosa.
    power = np.abs(librosa.stft(x, n_fft=n_fft, hop_length=hop, win_length=win, window=w, center=True,
                                pad_mode="reflect")) ** 2
    # torchaudio.compliance.kaldi.get_mel_banks (no VTLN warp): triangles equally spaced on 1127 ln(1 + f/700)
    # between fmin and fmax, evaluated at FFT bins 0..n_fft/2-1, then a zero column for the Nyquist bin.
    mel = lambda f: 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)  # noqa: E731
    lo, hi = mel(fmin), mel(fmax)
    delta = (hi - lo) / (n_mels + 1)
    b = np.arange(n_mels)[:, None]
    left, center, right = lo + b * delta, lo + (b + 1) * delta, lo + (b + 2) * delta
    m = mel(np.arange(n_fft // 2) * sr / n_fft)[None, :]
    banks = np.maximum(0.0, np.minimum((m - left) / (center - left), (right - m) / (right - center)))
    banks = np.pad(banks, ((0, 0), (0, 1)))
    return (np.log(banks @ power + 1e-5) + 4.5) / 5.0


def _test_signal(seconds: float = 0.7, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    chirp = np.sin(2 * np.pi * (200 * t + 4000 * t**2))
    noise = 0.05 * np.random.default_rng(seed).standard_normal(t.size)
    return (0.4 * chirp * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t)) + noise).astype(np.float32)


@pytest.mark.parity
def test_passt_frontend_matches_numpy_rederivation():
    m = audiozoo.create_model("passt_tiny").eval()
    wav = _test_signal()
    feats, lengths = m.frontend(torch.from_numpy(wav))
    ref = _reference_logmel(wav)
    assert feats.shape == (1, 128, ref.shape[1]) and int(lengths[0]) == ref.shape[1] == 1 + (wav.size - 1) // 320
    # Both float64 inside; ours is returned as float32 (values ~|3|): measured max abs diff 1.2e-7.
    assert np.abs(feats[0].double().numpy() - ref).max() < 1e-5


@pytest.mark.parity
def test_passt_frontend_training_jitters_mel_range_like_reference():
    """Train mode draws fmin/fmax exactly as AugmentMelSTFT (same global RNG draws, same ranges)."""
    m = audiozoo.create_model("passt_tiny").train()
    wav = _test_signal(0.3, seed=1)
    torch.manual_seed(7)
    feats, _ = m.frontend(torch.from_numpy(wav))
    torch.manual_seed(7)
    fmin = 0.0 + torch.randint(10, (1,)).item()
    fmax = 15000 + 2000 // 2 - torch.randint(2000, (1,)).item()
    ref = _reference_logmel(wav, fmin=fmin, fmax=fmax)
    assert np.abs(feats[0].double().numpy() - ref).max() < 1e-5  # float32 output rounding, as above (measured 1.0e-7)
    assert np.abs(feats[0].double().numpy() - _reference_logmel(wav)).max() > 1e-3  # and it did jitter


@pytest.mark.parity
def test_passt_frontend_on_real_recording(shared_data):
    from audiozoo.dsp.io import load_audio

    wav, _ = load_audio(shared_data / "speech_sources/cmu_arctic/cmu_arctic_us_aew_a0001.wav", sample_rate=SR)
    m = audiozoo.create_model("passt_tiny").eval()
    feats, _ = m.frontend(wav)
    # as above: measured 1.2e-7 on this recording
    assert np.abs(feats[0].double().numpy() - _reference_logmel(wav.numpy().reshape(-1))).max() < 1e-5


def test_passt_frontend_batch_padding_is_silence():
    m = audiozoo.create_model("passt_tiny").eval()
    wav = torch.from_numpy(_test_signal(0.5))
    batch = torch.zeros(2, wav.numel())
    batch[0], batch[1, :8000] = wav, wav[:8000]
    feats, lengths = m.frontend(batch, torch.tensor([wav.numel(), 8000]))
    single, single_len = m.frontend(wav[:8000])
    assert lengths.tolist() == [50, 25] and int(single_len[0]) == 25
    assert torch.allclose(feats[1, :, 25:], torch.full_like(feats[1, :, 25:], (np.log(1e-5) + 4.5) / 5))
    # frames away from the item's end see the same samples (the last two see zeros vs reflection)
    assert torch.allclose(feats[1, :, :23], single[0, :, :23], atol=1e-6)


# --------------------------------------------------------------------------- architecture
def test_passt_s_grid_and_embeddings_match_reference_shapes():
    with torch.device("meta"):
        m = audiozoo.create_model("passt_s_p16_s10")
    assert m.patch_embed.grid_size == (12, 99)  # 128 x 998 at stride 10 (hear21passt input_size (1, 128, 998))
    assert m.freq_pos_embed.shape == (1, 768, 12, 1) and m.time_pos_embed.shape == (1, 768, 1, 99)
    assert m.prefix_pos_embed.shape == (1, 2, 768)


def test_passt_patchout_only_in_training_and_too_long_input_raises():
    m = audiozoo.create_model("passt_tiny")
    x = torch.randn(2, 128, 100)
    assert m.eval().patch_tokens(x).shape[1] == 12 * 9
    assert m.train().patch_tokens(x).shape[1] == (12 - 4) * (9 - 3)
    m2 = audiozoo.create_model("passt_tiny", u_patchout=10, s_patchout_t=0, s_patchout_f=0).train()
    assert m2.patch_tokens(x).shape[1] == 12 * 9 - 10
    with pytest.raises(AudioError, match="time position embeddings"):
        m.eval()(torch.randn(1, 128, 120))


def _to_reference_layout(sd: dict) -> dict:
    """Our keys -> hear21passt PaSST keys (the inverse of the converter, written out independently)."""
    names = {"prefix_pos_embed": "new_pos_embed", "freq_pos_embed": "freq_new_pos_embed",
             "time_pos_embed": "time_new_pos_embed"}
    out = {}
    for k, v in sd.items():
        if k in names:
            k = names[k]
        elif k.startswith("encoder."):
            k = k[len("encoder."):]
        elif k.startswith("head_norm."):
            k = "head.0." + k[len("head_norm."):]
        elif k.startswith("head."):
            k = "head.1." + k[len("head."):]
        out[k] = v
    return out


def test_passt_converter_handles_wrapper_layout():
    """PasstBasicWrapper state (net./mel. prefixes) and the unused head_dist load into our model."""
    m = audiozoo.create_model("passt_tiny", depth=1, embed_dim=32, num_heads=2).eval()
    wrapped = {"device_proxy": torch.zeros(1), "mel.window": torch.ones(800)}
    wrapped.update({"net." + k: v for k, v in _to_reference_layout(m.state_dict()).items()})
    wrapped["net.head_dist.weight"], wrapped["net.head_dist.bias"] = torch.zeros(10, 32), torch.zeros(10)
    # a reference-sized time grid (100 // 10 = 10 columns) is cropped to the conv's 9
    wrapped["net.time_new_pos_embed"] = torch.cat([m.time_pos_embed.detach(), torch.ones(1, 32, 1, 1)], dim=-1)
    m2 = audiozoo.create_model("passt_tiny", depth=1, embed_dim=32, num_heads=2, pretrained=wrapped).eval()
    x = torch.randn(1, 128, 100)
    with torch.no_grad():
        assert torch.equal(m(x), m2(x))
    with pytest.raises(CheckpointError, match="ImageNet"):
        checkpoint_filter_fn({"pos_embed": torch.zeros(1, 3, 4)}, m)


@pytest.mark.parity
def test_passt_tiny_onnx_export(tmp_path):
    from audiozoo.export import check_onnx, export_onnx

    m = audiozoo.create_model("passt_tiny", depth=2).eval()
    x = torch.randn(2, 128, 100)
    path = export_onnx(m, tmp_path / "passt_tiny.onnx", (x,), ["features"], ["logits"],
                       {"features": {0: "batch", 2: "time"}, "logits": {0: "batch"}})
    # float32 op-by-op differences between ONNX Runtime and PyTorch: measured 3.3e-7 and 3.9e-7; 1e-4 is the parity bar.
    errs = [check_onnx(m, path, (x,), atol=1e-4), check_onnx(m, path, (torch.randn(3, 128, 61),), atol=1e-4)]
    assert max(errs) < 1e-4
