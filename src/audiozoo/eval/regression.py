"""Regression metrics: concordance correlation coefficient (CCC), Pearson correlation, MAE.

CCC (Lin, Biometrics 1989) is the standard score of dimensional emotion recognition (arousal, dominance,
valence; e.g. MSP-Podcast, Wav2Small arXiv:2408.13920):

    CCC = 2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))^2)

with population (1/N) moments, as in Lin's definition and the audEERING evaluation code. It is Pearson's
correlation penalised for any difference in mean or scale: 1 only for identical sequences, -1 for
``y = 2 mean - x`` reflections, 0 when uncorrelated.

Conventions follow :mod:`audiozoo.eval.metrics`: ``(estimate, reference)`` order, numpy in float64,
Python floats out. Inputs are ``(N,)`` or ``(N, D)`` (D targets, scored column by column and averaged;
``per_dim=True`` returns the ``(D,)`` array). :func:`ccc_torch` is the differentiable torch version
(``1 - ccc_torch`` is the usual CCC training loss).
"""

from __future__ import annotations

import numpy as np
import torch

from audiozoo.errors import DataError

from ._common import ArrayLike, same_shape, to_numpy

__all__ = ["ccc", "ccc_torch", "mae", "pearson"]


def _pair(estimate: ArrayLike, reference: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    x, y = to_numpy(estimate, "estimate"), to_numpy(reference, "reference")
    same_shape(x, y, "estimate/reference")
    if x.ndim not in (1, 2):
        raise DataError(f"expected shape (N,) or (N, D), got {x.shape}")
    if x.shape[0] < 2:
        raise DataError(f"need at least 2 examples to compute a correlation, got {x.shape[0]}")
    return (x[:, None], y[:, None]) if x.ndim == 1 else (x, y)


def _reduce(values: np.ndarray, per_dim: bool) -> float | np.ndarray:
    return values if per_dim else float(values.mean())


def ccc(estimate: ArrayLike, reference: ArrayLike, per_dim: bool = False) -> float | np.ndarray:
    """Concordance correlation coefficient of ``(N,)`` or ``(N, D)`` arrays (mean over D unless ``per_dim``).

    Two constant, equal sequences score 1; a constant sequence against a different one scores 0.
    """
    x, y = _pair(estimate, reference)
    mx, my = x.mean(0), y.mean(0)
    vx, vy = x.var(0), y.var(0)
    cov = ((x - mx) * (y - my)).mean(0)
    den = vx + vy + (mx - my) ** 2
    out = np.where(den > 0, 2 * cov / np.where(den > 0, den, 1.0), 1.0)
    return _reduce(out, per_dim)


def pearson(estimate: ArrayLike, reference: ArrayLike, per_dim: bool = False) -> float | np.ndarray:
    """Pearson correlation of ``(N,)`` or ``(N, D)`` arrays; raises for a constant column (undefined)."""
    x, y = _pair(estimate, reference)
    xc, yc = x - x.mean(0), y - y.mean(0)
    den = np.sqrt((xc**2).sum(0) * (yc**2).sum(0))
    if np.any(den == 0):
        raise DataError("pearson: a constant estimate or reference column has no correlation")
    return _reduce((xc * yc).sum(0) / den, per_dim)


def mae(estimate: ArrayLike, reference: ArrayLike, per_dim: bool = False) -> float | np.ndarray:
    """Mean absolute error of ``(N,)`` or ``(N, D)`` arrays."""
    x, y = _pair(estimate, reference)
    return _reduce(np.abs(x - y).mean(0), per_dim)


def ccc_torch(estimate: torch.Tensor, reference: torch.Tensor, dim: int = 0, eps: float = 1e-8) -> torch.Tensor:
    """Differentiable CCC along ``dim`` (batch axis): ``(N, D) -> (D,)``. ``eps`` guards a zero denominator."""
    if estimate.shape != reference.shape:
        raise DataError(f"ccc_torch: shapes differ ({tuple(estimate.shape)} vs {tuple(reference.shape)})")
    mx, my = estimate.mean(dim, keepdim=True), reference.mean(dim, keepdim=True)
    cov = ((estimate - mx) * (reference - my)).mean(dim)
    vx = (estimate - mx).pow(2).mean(dim)
    vy = (reference - my).pow(2).mean(dim)
    return 2 * cov / (vx + vy + (mx - my).squeeze(dim).pow(2) + eps)
