"""Fréchet distance against scipy's sqrtm formula, and its invariants."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiozoo.errors import AudioError, ConfigError
from audiozoo.eval.judges import frechet_distance


def _scipy_fd(a: np.ndarray, b: np.ndarray) -> float:
    linalg = pytest.importorskip("scipy.linalg")
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = np.real(linalg.sqrtm(s1 @ s2))  # the FID reference code's formula
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("dim,n", [(8, 400), (32, 100), (64, 50)])  # the last: rank-deficient covariances
def test_matches_scipy_sqrtm_formula(dim, n):
    rng = np.random.default_rng(dim)
    mix = rng.standard_normal((dim, dim)) / np.sqrt(dim)
    a = rng.standard_normal((n, dim)) @ mix
    b = 0.7 * rng.standard_normal((n + 7, dim)) @ mix.T + 0.3
    rep = frechet_distance(a, torch.from_numpy(b), embedding="random-gaussians")
    ref = _scipy_fd(a, b)
    assert rep["frechet_distance"] == pytest.approx(ref, rel=1e-6, abs=1e-6)
    assert rep["embedding"] == "random-gaussians" and rep["dim"] == dim and (rep["n_a"], rep["n_b"]) == (n, n + 7)


def test_invariants():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 6))
    assert frechet_distance(a, a, embedding="x")["frechet_distance"] == pytest.approx(0.0, abs=1e-9)
    # a pure shift of the mean adds |shift|^2 and nothing else
    shift = np.array([1.0, -2.0, 0.0, 0.5, 0.0, 0.0])
    assert frechet_distance(a, a + shift, embedding="x")["frechet_distance"] == pytest.approx(5.25, rel=1e-9)
    # two samples of one Gaussian are close, two different Gaussians are not
    b = rng.standard_normal((300, 6))
    c = 2.0 * rng.standard_normal((300, 6))
    assert frechet_distance(a, b, embedding="x")["frechet_distance"] < 0.3
    assert frechet_distance(a, c, embedding="x")["frechet_distance"] > 3.0


def test_bad_input():
    a = np.zeros((4, 3))
    with pytest.raises(ConfigError, match="embedding"):
        frechet_distance(a, a, embedding="")
    with pytest.raises(AudioError, match="N_a, D"):
        frechet_distance(a, np.zeros((4, 2)), embedding="x")
    with pytest.raises(AudioError, match="at least 2"):
        frechet_distance(a[:1], a, embedding="x")
