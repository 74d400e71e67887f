"""Regression metrics (CCC, Pearson, MAE) against numpy formulas and known cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiozoo.errors import AudioError, DataError
from audiozoo.eval.regression import ccc, ccc_torch, mae, pearson

# float64 throughout: the formulas agree to rounding (~1e-15); 1e-12 leaves room for summation order.
TOL = 1e-12


def _lin_ccc(x: np.ndarray, y: np.ndarray) -> float:
    # Lin (1989) with population moments, written independently via np.cov(bias=True)
    cov = np.cov(x, y, bias=True)
    return 2 * cov[0, 1] / (cov[0, 0] + cov[1, 1] + (x.mean() - y.mean()) ** 2)


def test_ccc_known_cases():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(200)
    assert ccc(x, x) == pytest.approx(1.0, abs=TOL)
    xc = x - x.mean()
    assert ccc(-xc, xc) == pytest.approx(-1.0, abs=TOL)  # reflection about the common mean
    # a shifted copy keeps Pearson at 1 but loses concordance: 2 var / (2 var + shift^2)
    shifted = ccc(x + 0.5, x)
    assert shifted < 1.0
    assert shifted == pytest.approx(2 * x.var() / (2 * x.var() + 0.25), abs=TOL)
    assert pearson(x + 0.5, x) == pytest.approx(1.0, abs=TOL)
    # a scaled copy: 2 s var / ((1 + s^2) var)
    assert ccc(2 * xc, xc) == pytest.approx(4 / 5, abs=TOL)
    # constant sequences: equal -> 1, different -> 0 (no variance, mean gap only)
    assert ccc(np.ones(5), np.ones(5)) == 1.0
    assert ccc(np.ones(5), np.zeros(5)) == 0.0


def test_ccc_pearson_mae_match_numpy_on_random_data():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 3))
    y = 0.6 * x + 0.3 * rng.standard_normal((300, 3)) + np.array([0.0, 0.2, -0.5])
    per = ccc(x, y, per_dim=True)
    ref = np.array([_lin_ccc(x[:, d], y[:, d]) for d in range(3)])
    np.testing.assert_allclose(per, ref, atol=TOL)
    assert ccc(x, y) == pytest.approx(ref.mean(), abs=TOL)
    pref = np.array([np.corrcoef(x[:, d], y[:, d])[0, 1] for d in range(3)])
    np.testing.assert_allclose(pearson(x, y, per_dim=True), pref, atol=TOL)
    assert mae(x, y) == pytest.approx(np.abs(x - y).mean(), abs=TOL)
    # CCC never exceeds |Pearson| (it multiplies Pearson by a bias-correction factor in [0, 1])
    assert np.all(np.abs(per) <= np.abs(pref) + TOL)


def test_ccc_torch_matches_and_differentiates():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(64, 4, generator=g, dtype=torch.float64)
    got = ccc_torch(x, y, eps=0.0)
    np.testing.assert_allclose(got.detach().numpy(), ccc(x.detach(), y, per_dim=True), atol=TOL)
    (1 - got.mean()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_regression_metric_errors():
    with pytest.raises(AudioError, match="shapes differ"):
        ccc(np.zeros(3), np.zeros(4))
    with pytest.raises(DataError, match="at least 2"):
        ccc(np.zeros(1), np.zeros(1))
    with pytest.raises(DataError, match="constant"):
        pearson(np.ones(4), np.arange(4.0))
    with pytest.raises(AudioError, match="NaN"):
        mae(np.array([0.0, np.nan]), np.zeros(2))
    with pytest.raises(DataError):
        ccc_torch(torch.zeros(3), torch.zeros(4))
