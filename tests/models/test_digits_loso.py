"""The speaker-robust digits recipe (recipes/classify/digits_loso.py, issue #13) and its shipped weight set."""

from __future__ import annotations

import shutil

import pytest
import torch
from recipe_modules import load_recipe


@pytest.fixture(scope="module")
def recipe():
    return load_recipe("classify", "digits_loso")


def test_vtlp_moves_a_formant_within_the_warp_range(recipe):
    """A single spectral peak at mel bin 40 lands between bins 40 * 0.88 and 40 * 1.12 (never stays put for
    all 64 examples), and the output keeps the input's shape and value range."""
    torch.manual_seed(0)
    x = torch.zeros(64, 64, 5)
    x[:, 40] = 1.0
    y = recipe.vtlp(x)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    peak = (y[..., 0] * torch.arange(64)).sum(1) / y[..., 0].sum(1)
    assert peak.min() >= 40 * 0.88 - 0.5 and peak.max() <= 40 * 1.12 + 0.5
    assert (peak - 40).abs().max() > 2


def test_augment_eval_pads_and_train_perturbs(recipe, shared_data):
    clips = [torch.linspace(-0.5, 0.5, 8000), 0.1 * torch.ones(20000)]
    wav, lengths = recipe.Augment(shared_data, train=False)(clips)
    assert wav.shape == (2, recipe.WINDOW) and lengths.tolist() == [8000, recipe.WINDOW]
    assert torch.equal(wav[0, :8000], clips[0]) and wav[0, 8000:].abs().sum() == 0  # the tag pipeline's padding
    torch.manual_seed(0)
    aug = recipe.Augment(shared_data, train=True)
    assert len(aug.noises) >= 1 and len(aug.rirs) >= 1
    wav2, lengths2 = aug(clips)
    assert wav2.shape == (2, recipe.WINDOW) and (lengths2 <= recipe.WINDOW).all()
    assert not torch.allclose(wav2[0], wav[0], atol=1e-3)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_synthetic_digits_are_rendered_and_labelled(recipe, tmp_path):
    wavs, labels = recipe.build_synth(tmp_path, 3, seed=1)
    assert labels.tolist() == [0, 1, 2] and len(list(tmp_path.glob("*.wav"))) == 3
    for w in wavs:
        assert 0.15 * recipe.SR < w.shape[0] < 2 * recipe.SR and w.abs().max() > 0.05
