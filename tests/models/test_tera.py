"""TERA: parity with s3prl's Mockingjay/TERA TransformerModel + TransformerSpecPredictionHead, the s3prl front end
(against librosa), the alterations (against s3prl's generator, in distribution), chunking, converter."""

from __future__ import annotations

import functools
import importlib.util
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

import audiozoo
from audiozoo.errors import AudioError, ConfigError
from audiozoo.hub import load_into
from audiozoo.models.ssl.tera import TERAConfig, TERAFrontend, checkpoint_filter_fn, sinusoid_table


@functools.cache
def _s3prl_file(rel: str, name: str):
    """A module of s3prl 0.4.18 loaded by file path (its packages import torchaudio; these files do not)."""
    s3prl = pytest.importorskip("s3prl")
    spec = importlib.util.spec_from_file_location(name, Path(s3prl.__file__).parent / rel)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _reference(hidden=64, layers=2, heads=4, ffn=128, n_mels=80):
    mj = _s3prl_file("upstream/mockingjay/model.py", "_mockingjay_model")
    cfg = mj.TransformerConfig({
        "hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads, "hidden_act": "gelu",
        "intermediate_size": ffn, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02, "layer_norm_eps": 1e-12, "share_layer": False, "pre_layer_norm": False})
    torch.manual_seed(0)
    net, head = mj.TransformerModel(cfg, n_mels), mj.TransformerSpecPredictionHead(cfg, n_mels)
    with torch.no_grad():  # LayerNorms start at 1/0 and biases at 0: randomise every tensor
        for m in (net, head):
            for name, p in m.named_parameters():
                p.copy_((1.0 if "LayerNorm.weight" in name else 0.0) + 0.05 * torch.randn_like(p))
    ours = audiozoo.create_model("tera_base", n_mels=n_mels, embed_dim=hidden, depth=layers, num_heads=heads,
                                 intermediate_size=ffn)
    load_into(ours, {"Transformer": net.state_dict(), "SpecHead": head.state_dict()}, converter=checkpoint_filter_fn)
    return net.eval(), head.eval(), ours.eval()


@pytest.mark.parity
def test_network_matches_s3prl():
    net, head, ours = _reference()
    task = _s3prl_file("pretrain/mockingjay/task.py", "_mockingjay_task")
    x = torch.randn(2, 120, 80)
    lengths = torch.tensor([120, 77])
    attn = (torch.arange(120)[None] < lengths[:, None]).float()
    pos = task.fast_position_encoding(120, 64).expand(2, -1, -1)
    with torch.no_grad():
        ref = net(x, pos, attn)
        pred, _ = head(ref[-1])
        mine = ours.extract_features(x.transpose(1, 2), lengths)
        my_pred = ours.spec_head(mine[-1])
    assert len(ref) == len(mine) == 3
    for r, m in zip(ref, mine):
        err = max(float((r[0] - m[0]).abs().max()), float((r[1, :77] - m[1, :77]).abs().max()))
        assert err < 1e-5 * float(r.abs().max()), err  # measured 3.8e-7 relative
    assert torch.allclose(pred[1, :77], my_pred[1, :77], atol=1e-5)
    assert torch.allclose(sinusoid_table(120, 64), pos[0], atol=1e-7)


def test_converter_takes_flat_and_old_names():
    net, head, ours = _reference()
    old = {"LayerNorm.weight": "LayerNorm.gamma", "LayerNorm.bias": "LayerNorm.beta"}  # TF-era names
    flat = {"Transformer." + k.replace("LayerNorm.weight", old["LayerNorm.weight"]).replace(
        "LayerNorm.bias", old["LayerNorm.bias"]): v for k, v in net.state_dict().items()}
    flat.update({f"SpecHead.{k}": v for k, v in head.state_dict().items()})
    other = audiozoo.create_model("tera_base", embed_dim=64, depth=2, num_heads=4, intermediate_size=128)
    load_into(other, flat, converter=checkpoint_filter_fn)
    assert all(torch.equal(a, b) for a, b in zip(other.state_dict().values(), ours.state_dict().values()))


def _torchaudio_melscale(n_mels: int, n_freqs: int, sr: int) -> np.ndarray:
    """torchaudio.functional.melscale_fbanks (HTK scale, no norm, 0..sr/2) in numpy: ``(n_mels, n_freqs)``."""
    freqs = np.linspace(0, sr // 2, n_freqs)
    mels = np.linspace(0.0, 2595.0 * np.log10(1.0 + (sr / 2) / 700.0), n_mels + 2)
    f_pts = 700.0 * (10 ** (mels / 2595.0) - 1.0)
    diff, slopes = np.diff(f_pts), f_pts[None, :] - freqs[:, None]
    down, up = -slopes[:, :-2] / diff[:-1], slopes[:, 2:] / diff[1:]
    return np.maximum(0.0, np.minimum(down, up)).T


def test_frontend_matches_s3prl_preprocessing():
    """s3prl's OnlinePreprocessor (torchaudio STFT + MelScale, log, CMVN), rebuilt in numpy."""
    g = torch.Generator().manual_seed(0)
    wav = 0.3 * torch.randn(2, 8000, generator=g, dtype=torch.float64)
    lengths = torch.tensor([8000, 5000])
    fe = TERAFrontend(TERAConfig())
    feats, frames = fe(wav, lengths)
    assert feats.shape == (2, 80, 51) and frames.tolist() == [51, 32]
    for i, n in enumerate(lengths.tolist()):
        y = wav[i, :n].numpy()
        y = y * (10 ** (-25 / 20)) / (np.sqrt((y ** 2).mean()) + 1e-10)
        y = np.pad(y, (0, 8000 - n))  # s3prl pads the batch with zeros before its STFT (pad_sequence)
        # centred STFT with reflect padding, periodic Hann (numpy: librosa.stft's first call compiles for ~10 s)
        yp = np.pad(y, 200, mode="reflect")
        frames_ = np.stack([yp[k * 160:k * 160 + 400] for k in range((len(yp) - 400) // 160 + 1)])
        power = np.abs(np.fft.rfft(frames_ * np.hanning(401)[:400], axis=-1)).T ** 2
        mel = _torchaudio_melscale(80, 201, 16000) @ power
        lm = np.log(mel[:, : frames[i]] + 1e-10)
        ref = (lm - lm.mean(-1, keepdims=True)) / (lm.std(-1, ddof=1, keepdims=True) + 1e-10)
        assert np.abs(feats[i, :, : frames[i]].numpy() - ref).max() < 1e-4  # measured 3e-6
    assert not feats[1, :, 32:].any()


def _label_fractions(ours_or_ref, n: int = 300, trials: int = 60) -> tuple[float, float]:
    """Mean fraction of frames with a time label and of bins with a frequency label."""
    t, f = [], []
    model = audiozoo.create_model("tera_base", depth=1, embed_dim=64, num_heads=4, intermediate_size=64)
    for k in range(trials):
        x = torch.randn(1, n, 80) + 3.0  # no zero frames (s3prl counts non-zero frames as the length)
        if ours_or_ref == "ours":
            g = torch.Generator().manual_seed(k)
            tl = model.alter(x.transpose(1, 2), generator=g, freq_max_fraction=0.0, noise_proportion=0.0)[1]
            fl = model.alter(x.transpose(1, 2), generator=g, time_proportion=0.0, noise_proportion=0.0)[1]
        else:
            task = _s3prl_file("pretrain/mockingjay/task.py", "_mockingjay_task")
            base = {"position_encoding_size": 64, "mask_consecutive_min": 7, "mask_consecutive_max": 7,
                    "mask_allow_overlap": True, "mask_bucket_ratio": 1.5, "noise_proportion": 0.0}
            torch.manual_seed(k)
            random.seed(k)
            tl = task.generate_masked_acoustic_model_data((x.clone(),), {**base, "mask_proportion": 0.15,
                                                                        "mask_frequency": 0.0})[2]
            fl = task.generate_masked_acoustic_model_data((x.clone(),), {**base, "mask_proportion": 0.0,
                                                                        "mask_frequency": 0.2})[2]
            if fl.shape[0] == 0:  # s3prl drops items without labels (a zero-width band)
                fl = torch.zeros(1, n, 80, dtype=torch.bool)
        t.append(float(tl[0, :, 0].float().mean()))
        f.append(float(fl[0, 0].float().mean()))
    return float(np.mean(t)), float(np.mean(f))


@pytest.mark.parity
def test_alterations_follow_s3prl_in_distribution():
    ours, ref = _label_fractions("ours"), _label_fractions("ref")
    # 300 frames: round(300 * 0.15 / 7) = 6 spans of 7 -> at most 14 % (overlaps allowed); bands U{0..16} of 80
    assert abs(ours[0] - ref[0]) < 0.01 and 0.12 < ours[0] <= 0.14, (ours, ref)
    assert abs(ours[1] - ref[1]) < 0.03 and 0.06 < ours[1] < 0.14, (ours, ref)


def test_alter_labels_stay_in_the_valid_part_and_zero_the_spans():
    model = audiozoo.create_model("tera_base", **audiozoo.model_info("tera_base").tiny)
    x = torch.randn(2, 16, 40) + 5.0
    g = torch.Generator().manual_seed(1)
    spec, label = model.alter(x, torch.tensor([40, 25]), noise_proportion=0.0, freq_max_fraction=0.0, generator=g)
    assert label.shape == (2, 40, 16) and not label[1, 25:].any()
    assert int(label[0, :, 0].sum()) <= 7 and label[0].any(dim=1).sum() == label[0, :, 0].sum()
    changed = (spec != x.transpose(1, 2)).any(-1)
    assert bool((changed <= label.any(-1)).all())  # only labelled frames change (zeroed or replaced)


def test_long_inputs_are_processed_in_equal_chunks():
    model = audiozoo.create_model("tera_base", **audiozoo.model_info("tera_base").tiny).eval()  # max_length 48
    x = torch.randn(1, 16, 100)
    with torch.no_grad():
        whole = model.extract_features(x)
        parts = [model.extract_features(x[..., s:e]) for s, e in ((0, 34), (34, 68), (68, 100))]  # torch.chunk sizes
    for i in range(model.num_layers + 1):
        assert torch.allclose(whole[i], torch.cat([p[i] for p in parts], dim=1), atol=1e-6)


def test_pretext_loss_is_l1_on_labelled_positions_and_errors_are_clear():
    model = audiozoo.create_model("tera_base", **audiozoo.model_info("tera_base").tiny).eval()
    x = torch.randn(2, 16, 40)
    out = model(x)
    spec, label = model.alter(x, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        pred = model.spec_head(model._encode(spec, None)[-1])
    assert math.isclose(float(out["loss"]), float((pred - x.transpose(1, 2)).abs()[label].mean()), rel_tol=1e-5)
    zero = model(x, time_proportion=0.0, freq_max_fraction=0.0)
    assert float(zero["loss"]) == 0.0
    with pytest.raises(AudioError, match=r"\(B, 16, L\)"):
        model.extract_features(torch.randn(1, 80, 10))
    with pytest.raises(ConfigError, match="loss"):
        audiozoo.create_model("tera_base", loss="l2")
