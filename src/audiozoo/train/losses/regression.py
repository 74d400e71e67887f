"""Regression losses on continuous targets: concordance (CCC) loss and a masked MSE.

* :func:`ccc_loss`: ``1 - mean_d CCC_d`` over the batch, the objective of dimensional emotion models and of
  Wav2Small's distillation (Kounadis-Bastian et al. 2024, arXiv:2408.13920); CCC as
  :func:`audiozoo.eval.regression.ccc_torch` (Lin 1989, population moments).
* :func:`masked_mse`: mean squared error of vectors, averaged over valid positions only (padding excluded),
  e.g. autoencoder reconstruction of the tokens of variable-length clips;
* :func:`autoencoder_reconstruction_loss`: the mean of :func:`masked_mse` over several autoencoders (the
  statistics-embedding model's five views, Verma 2021, arXiv:2110.03183).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from ...errors import DataError
from ...eval.regression import ccc_torch

__all__ = ["autoencoder_reconstruction_loss", "ccc_loss", "masked_mse"]


def ccc_loss(estimate: Tensor, reference: Tensor) -> Tensor:
    """``1 - mean_d CCC_d`` of ``(B, D)`` (or ``(B,)``) estimates against references, along the batch axis."""
    if estimate.shape != reference.shape:
        raise DataError(f"ccc_loss: estimate {tuple(estimate.shape)} and reference {tuple(reference.shape)} differ")
    if estimate.shape[0] < 2:
        raise DataError(f"ccc_loss needs at least 2 examples per batch (a correlation), got {estimate.shape[0]}")
    return 1 - ccc_torch(estimate.float(), reference.float()).mean()


def masked_mse(estimate: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
    """Mean over valid positions of the per-vector mean squared error.

    Args:
        estimate, target: ``(B, N, D)`` vectors (``D`` features at ``N`` positions).
        valid: ``(B, N)`` bool/0-1 mask of real (non-padding) positions; ``None``: all valid.
    Returns:
        ``sum_{b,n} valid * mean_d (estimate - target)^2 / max(1, sum valid)``.
    """
    if estimate.shape != target.shape:
        raise DataError(f"masked_mse: estimate {tuple(estimate.shape)} and target {tuple(target.shape)} differ")
    err = (estimate - target).pow(2).mean(-1)
    if valid is None:
        return err.mean()
    if valid.shape != err.shape:
        raise DataError(f"masked_mse: mask {tuple(valid.shape)} does not match positions {tuple(err.shape)}")
    w = valid.to(err.dtype)
    return (err * w).sum() / w.sum().clamp(min=1)


def autoencoder_reconstruction_loss(parts: Mapping[str, tuple[Tensor, Tensor, Tensor]]) -> Tensor:
    """Mean over autoencoders of :func:`masked_mse`; ``parts``: ``{name: (target, reconstruction, valid)}`` with
    ``(B, N, D)`` vectors and a ``(B, N)`` mask (a model's ``reconstruct(features, lengths)``)."""
    if not parts:
        raise DataError("autoencoder_reconstruction_loss got no (target, reconstruction, valid) entries")
    return torch.stack([masked_mse(rec, tgt, valid) for tgt, rec, valid in parts.values()]).mean()
