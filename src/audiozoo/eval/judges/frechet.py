"""Fréchet distance between two sets of embeddings (FAD / FID style).

For Gaussians fitted to the two sets, ``d^2 = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^{1/2})``
(Fréchet 1957; Dowson & Landau 1982), as in the Fréchet Inception Distance (Heusel et al. 2017) and
Fréchet Audio Distance (Kilgour et al. 2019). The value depends entirely on the embedding, so every
report names it.

``tr((S_a S_b)^{1/2})`` is computed as the sum of the square roots of the eigenvalues of the symmetric
PSD matrix ``S_a^{1/2} S_b S_a^{1/2}`` (similar to ``S_a S_b``), in float64: no complex ``sqrtm``
residue, and stable for the rank-deficient covariances of small sets.
"""

from __future__ import annotations

from typing import Any

import torch

from audiozoo.errors import AudioError, ConfigError

from .._common import to_tensor

__all__ = ["frechet_distance", "gaussian_frechet_distance"]


def _sqrtm_psd(s: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(s)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def gaussian_frechet_distance(mu_a: torch.Tensor, cov_a: torch.Tensor, mu_b: torch.Tensor,
                              cov_b: torch.Tensor) -> float:
    """Squared Fréchet distance between N(mu_a, cov_a) and N(mu_b, cov_b) (``(D,)`` means, ``(D, D)`` covs)."""
    mu_a, mu_b, cov_a, cov_b = (x.double() for x in (mu_a, mu_b, cov_a, cov_b))
    if mu_a.shape != mu_b.shape or cov_a.shape != cov_b.shape or cov_a.shape != (mu_a.numel(),) * 2:
        raise AudioError(f"frechet: shapes do not match: mu {tuple(mu_a.shape)}/{tuple(mu_b.shape)}, "
                         f"cov {tuple(cov_a.shape)}/{tuple(cov_b.shape)}")
    cov_a, cov_b = (cov_a + cov_a.T) / 2, (cov_b + cov_b.T) / 2
    root_a = _sqrtm_psd(cov_a)
    inner = root_a @ cov_b @ root_a
    tr_sqrt = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp(min=0).sqrt().sum()
    d2 = (mu_a - mu_b).square().sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * tr_sqrt
    return float(d2.clamp(min=0))


def frechet_distance(emb_a: Any, emb_b: Any, *, embedding: str) -> dict[str, Any]:
    """Fréchet distance between two embedding sets.

    Args:
        emb_a, emb_b: ``(N_a, D)`` and ``(N_b, D)`` embeddings (each set needs N >= 2).
        embedding: what produced them (a registry name and layer, e.g. ``"ast_tiny.fsdd_digits:pooled"``);
            required, because distances from different embeddings are not comparable.
    Returns:
        ``{"frechet_distance"`` (squared distance, as FID/FAD report it), ``"embedding"``, ``"dim"``,
        ``"n_a"``, ``"n_b"}``.
    """
    if not isinstance(embedding, str) or not embedding.strip():
        raise ConfigError("frechet_distance needs embedding='<name of the embedding>' (reports must name it)")
    a, b = to_tensor(emb_a, "emb_a").double(), to_tensor(emb_b, "emb_b").double()
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise AudioError(f"frechet_distance: expected (N_a, D) and (N_b, D), got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise AudioError(f"frechet_distance: each set needs at least 2 embeddings, got {a.shape[0]} and {b.shape[0]}")
    d2 = gaussian_frechet_distance(a.mean(0), torch.cov(a.T).reshape(a.shape[1], -1), b.mean(0),
                                   torch.cov(b.T).reshape(b.shape[1], -1))
    return {"frechet_distance": d2, "embedding": embedding, "dim": int(a.shape[1]), "n_a": int(a.shape[0]),
            "n_b": int(b.shape[0])}
