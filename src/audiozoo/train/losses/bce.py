"""Binary cross-entropy on probabilities as Keras computes it, optionally class-balanced (basic-pitch's
``weighted_transcription_loss``; Bittner et al., ICASSP 2022, spotify/basic-pitch ``models.py``)."""

from __future__ import annotations

import torch
from torch import Tensor

from ...errors import ConfigError

__all__ = ["weighted_bce"]


def weighted_bce(pred: Tensor, target: Tensor, *, label_smoothing: float = 0.0,
                 positive_weight: float | None = None, eps: float = 1e-7) -> Tensor:
    """Binary cross-entropy on probabilities, as ``tf.keras.losses.binary_crossentropy``.

    Args:
        pred: probabilities (any shape), clipped to ``[eps, 1 - eps]`` (Keras' epsilon).
        target: 0/1 targets of the same shape; smoothed to ``t (1 - ls) + ls / 2``.
        positive_weight: ``None`` for the plain mean; else ``w``: the mean over positive targets times ``w``
            plus the mean over negative targets times ``1 - w`` (class-balanced; the positive/negative
            split is taken before smoothing, as in ``weighted_transcription_loss``). A class that is
            absent from the batch contributes 0.
    """
    if pred.shape != target.shape:
        raise ConfigError(f"weighted_bce: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    p = pred.float().clamp(eps, 1 - eps)
    t = target.float()
    ts = t * (1 - label_smoothing) + 0.5 * label_smoothing
    bce = -(ts * torch.log(p) + (1 - ts) * torch.log1p(-p))
    if positive_weight is None:
        return bce.mean()
    pos = t != 0
    zero = bce.new_zeros(())
    pos_mean = bce[pos].mean() if pos.any() else zero
    neg_mean = bce[~pos].mean() if (~pos).any() else zero
    return positive_weight * pos_mean + (1 - positive_weight) * neg_mean
