"""FID / MKL (SpecVQGAN's definitions) and melception_scores on a tiny random Melception."""

from __future__ import annotations

import math

import pytest
import torch

import audiozoo
from audiozoo.errors import AudioError, ConfigError
from audiozoo.eval.generation import classifier_outputs, fid, melception_scores, mkl

SR = 22050


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = audiozoo.create_model("melception_small", width=0.125, n_mels=40, num_classes=8, norm_means=None,
                              norm_stds=None)
    # random weights with untouched BatchNorm statistics shrink activations to ~1e-7 over the ~40 layers:
    # set the statistics from a few clips first (cumulative average), as a trained model would have them
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.momentum = None
    m.train()
    with torch.no_grad():
        feats, frames = m.frontend(torch.cat([_clips(seed=5), 0.1 * torch.randn(4, int(0.5 * SR))]))
        m(feats, frames)
    return m.eval()


def _clips(n: int = 10, seconds: float = 0.5, seed: int = 0) -> torch.Tensor:
    """Harmonic tones at distinct pitches with a decay: a varied reference set ``(n, T)``."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * SR)) / SR
    out = []
    for k in range(n):
        f0 = 110.0 * 2 ** (k / 3) * (1 + 0.02 * float(torch.rand((), generator=g)))
        x = sum(torch.sin(2 * math.pi * h * f0 * t) / h for h in range(1, 5))
        out.append(0.3 * x * torch.exp(-3 * t))
    return torch.stack(out)


def test_mkl_matches_the_definition():
    # the official kl.py example: p = (9, 12, 4) / 25 against a uniform q gives 0.0853 nats
    p = torch.tensor([[9 / 25, 12 / 25, 4 / 25]])
    q = torch.full((1, 3), 1 / 3)
    assert mkl(p.log(), q.log(), eps=0.0) == pytest.approx(0.0852996, abs=1e-6)
    # mean over pairs, direction KL(ref || gen)
    a, b = torch.randn(5, 7), torch.randn(5, 7)
    pa, pb = a.double().softmax(-1), b.double().softmax(-1)
    want = float((pa * (pa.log() - (pb + 1e-6).log())).sum(-1).mean())
    assert mkl(a, b) == pytest.approx(want, rel=1e-9)
    assert mkl(a, a) == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(AudioError, match="paired"):
        mkl(a, b[:4])


def test_fid_of_shifted_gaussians():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 6, generator=g, dtype=torch.float64)
    assert fid(x, x, embedding="test") == pytest.approx(0.0, abs=1e-8)
    shift = torch.tensor([1.0, -2.0, 0.0, 0.5, 0.0, 0.0], dtype=torch.float64)
    assert fid(x, x + shift, embedding="test") == pytest.approx(float(shift.square().sum()), rel=1e-9)
    with pytest.raises(ConfigError):
        fid(x, x, embedding="")


def test_identical_sets_score_zero(model):
    ref = _clips()
    out = melception_scores(ref, ref.clone(), model=model, sample_rate=SR)
    assert out["fid"] == pytest.approx(0.0, abs=1e-6)
    assert out["mkl"] == pytest.approx(0.0, abs=1e-5)
    assert out["n_reference"] == out["n_generated"] == 10 and out["dim"] == model.embed_dim
    assert out["classifier"] == "melception_small"


def _lowpass(x: torch.Tensor, cut: float) -> torch.Tensor:
    """Remove the top ``cut`` fraction of the spectrum (a bandwidth degradation)."""
    spec = torch.fft.rfft(x)
    spec[..., int(spec.shape[-1] * (1 - cut)):] = 0
    return torch.fft.irfft(spec, x.shape[-1])


def test_scores_grow_with_degradation(model):
    # Bandwidth loss, growing: both scores rise monotonically. (Additive noise is not a monotone probe for a
    # random network: -60 dB of noise already lifts the silent parts off the -100 dB floor of the log-mel.)
    ref = _clips()
    scores = [melception_scores(ref, _lowpass(ref, cut), model=model, sample_rate=SR) for cut in (0.3, 0.5, 0.8)]
    fids = [s["fid"] for s in scores]
    mkls = [s["mkl"] for s in scores]
    assert 0 < fids[0] < fids[1] < fids[2], fids
    assert 0 < mkls[0] < mkls[1] < mkls[2], mkls


def test_inputs_lists_rates_and_errors(model, tmp_path):
    ref = _clips(4)
    emb, logits = classifier_outputs(model, ref, sample_rate=SR, batch_size=3)
    assert emb.shape == (4, model.embed_dim) and logits.shape == (4, 8)
    # a list of clips of different lengths: the longest clip's result does not depend on the batch
    emb_list, _ = classifier_outputs(model, [ref[0], ref[1, :8000]], sample_rate=SR)
    assert torch.allclose(emb_list[0], emb[0], atol=1e-5)
    # files are decoded and resampled to the model's rate
    audiozoo.dsp.save_audio(tmp_path / "a.wav", ref[0], SR, subtype="FLOAT")
    from_file, _ = classifier_outputs(model, [tmp_path / "a.wav"])
    assert torch.allclose(from_file[0], emb[0], atol=1e-3)
    # unpaired sets: FID only
    out = melception_scores(ref, ref[:3], model=model, sample_rate=SR)
    assert out["mkl"] is None and out["fid"] >= 0
    with pytest.raises(AudioError, match="same size"):
        melception_scores(ref, ref[:3], model=model, sample_rate=SR, paired=True)
    with pytest.raises(ConfigError, match="sample_rate"):
        classifier_outputs(model, ref)
    with pytest.raises(AudioError, match="one"):
        classifier_outputs(model, ref[0], sample_rate=SR)
    with pytest.raises(ConfigError, match="frontend"):
        classifier_outputs(torch.nn.Linear(2, 2), ref, sample_rate=SR)
