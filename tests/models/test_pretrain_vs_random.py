"""The pretrained-vs-random comparison recipe (recipes/ssl/pretrain_vs_random.py, issue #13): its pure pieces."""

from __future__ import annotations

import pytest
import torch
from recipe_modules import load_recipe

TINY = {"embed_dim": 32, "num_heads": 2, "intermediate_size": 64, "depth": 1}


@pytest.fixture(scope="module")
def recipe():
    return load_recipe("ssl", "pretrain_vs_random")


def test_compare_reports_difference_of_means_and_overlap(recipe):
    c = recipe.compare([0.6, 0.7], [0.4, 0.5, 0.55, 0.45])
    assert c["delta"] == pytest.approx(0.65 - 0.475)
    assert c["beats_all"] and c["pretrained"]["n"] == 2 and c["random"]["n"] == 4
    assert c["random"]["sd"] == pytest.approx(torch.tensor([0.4, 0.5, 0.55, 0.45]).std().item())
    overlap = recipe.compare([0.6, 0.7], [0.65])
    assert not overlap["beats_all"] and overlap["delta"] == pytest.approx(0.0)
    assert recipe.summarise([0.3])["sd"] == 0.0


def test_random_encoder_is_seeded_and_leaves_the_global_rng_alone(recipe):
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = recipe.random_encoder("tera_base", TINY, 0)
    after = torch.rand(1)
    b = recipe.random_encoder("tera_base", TINY, 0)
    c = recipe.random_encoder("tera_base", TINY, 1)
    assert torch.equal(before, after)  # drawing an initialisation does not shift the caller's random stream
    wa, wb, wc = (m.input_proj.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_finetune_trains_a_copy_for_a_fixed_budget(recipe):
    """Two separable classes (a 440 Hz tone vs noise): the encoder passed in is untouched, the result is an
    accuracy, and the same seed gives the same result."""
    torch.manual_seed(0)
    model = recipe.random_encoder("tera_base", TINY, 0)
    ref = {k: v.clone() for k, v in model.state_dict().items()}
    t = torch.arange(8000) / 16000
    tone = torch.sin(2 * torch.pi * 440 * t)
    wav = torch.stack([tone * (0.5 + 0.05 * i) if i % 2 == 0 else 0.3 * torch.randn(8000) for i in range(16)])
    lengths = torch.full((16,), 8000)
    y = torch.arange(16) % 2
    train, test = torch.arange(12), torch.arange(12, 16)
    kw = {"steps": 3, "batch": 4, "lr": 1e-3, "seed": 0}
    acc = recipe.finetune(model, wav, lengths, y, train, test, 2, **kw)
    assert 0.0 <= acc <= 1.0
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in ref.items())
    assert recipe.finetune(model, wav, lengths, y, train, test, 2, **kw) == acc
