"""The AdaSpeech WORLD-voices recipes (recipes/tts/adaspeech_world*.py, issue #16): voice transform, init, batches."""

from __future__ import annotations

import math

import pytest
import torch
from recipe_modules import load_recipe

import audiozoo


def _load(name: str):
    return load_recipe("tts", name)


@pytest.fixture(scope="module")
def voices():
    return _load("adaspeech_world_voices")


@pytest.fixture(scope="module")
def recipe():
    return _load("adaspeech_world")


def test_targets_are_not_source_voices(voices):
    assert set(voices.SOURCE).isdisjoint(voices.TARGETS)
    assert not set(voices.SOURCE.values()) & set(voices.TARGETS.values())


def test_init_from_fastspeech2_copies_the_backbone_and_starts_cln_as_layernorm(recipe):
    torch.manual_seed(0)
    fs2 = audiozoo.create_model("fastspeech2_small")
    with torch.no_grad():
        for n, p in fs2.named_parameters():
            if "norm" in n:
                p.add_(torch.randn_like(p) * 0.1)  # non-trivial LayerNorm affines
    ada = audiozoo.create_model("adaspeech_small", n_speakers=3)
    info = recipe.init_from_fastspeech2(ada, fs2)
    assert info["cln_biases"] == 2 * 2 * ada.config.decoder_layers
    assert torch.equal(ada.encoder.blocks[0].ffn.w_1.weight, fs2.encoder.blocks[0].ffn.w_1.weight)
    spk = ada.speaker_embed.weight
    for a, f in zip(ada.conditional_norms(), [m for b in fs2.decoder.blocks for m in (b.norm1, b.norm2)]):
        gamma, beta = a.affine(spk)
        assert torch.allclose(gamma, f.weight.expand_as(gamma)) and torch.allclose(beta, f.bias.expand_as(beta))


def test_collate_pads_and_normalises(recipe):
    items = []
    for n, d in ((3, [2, 1, 3]), (2, [4, 1])):
        f = sum(d)
        items.append({"tokens": torch.arange(1, n + 1), "durations": torch.tensor(d), "mel": torch.zeros(80, f).half(),
                      "lf0": torch.tensor([math.log(100.0)] * (f - 1) + [0.0]), "energy": torch.ones(f),
                      "speaker": 1})
    b = recipe.collate(items, torch.tensor([math.log(100.0), 0.5]), torch.tensor([0.0, 2.0]))
    assert b["tokens"].shape == (2, 3) and b["mel"].shape == (2, 80, 6)
    assert b["mel_lengths"].tolist() == [6, 5] and b["speaker"].tolist() == [1, 1]
    assert b["mel"][1, :, 5].eq(math.log(1e-5)).all() and b["mel"][1, :, :5].eq(0).all()
    assert b["pitch"][0].abs().sum() == 0 and b["energy"][0].eq(0.5).all()
    model = audiozoo.create_model("adaspeech_small", n_speakers=2).eval()
    terms = recipe.losses(model, b)
    assert set(terms) == {"mel", "duration", "pitch", "energy", "phoneme"}
    assert all(torch.isfinite(v) for v in terms.values())
