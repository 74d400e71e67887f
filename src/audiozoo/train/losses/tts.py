"""Losses of non-autoregressive acoustic models (FastSpeech / FastSpeech 2 and relatives).

FastSpeech 2 (Ren et al. 2021, arXiv:2006.04558, Section 2; ming024/FastSpeech2 ``model/loss.py``):

* mel: L1 (or MSE) between predicted and target log-mels over valid frames only, for the decoder output and
  for the post-net output (ming024 sums both);
* duration: MSE between the predicted ``ln(d + 1)`` and ``ln(d_target + 1)`` over valid tokens (Section 2.3:
  "predicts the length ... in the logarithmic domain");
* pitch / energy: MSE between predicted and target (normalised) values over valid frames (frame level) or
  tokens (phoneme level).

Every function takes explicit masks or lengths; padded positions never count.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...errors import ConfigError, DataError

__all__ = ["duration_loss", "masked_mel_loss", "masked_value_loss", "sequence_mask"]


def sequence_mask(lengths: Tensor, max_len: int) -> Tensor:
    """``(B,)`` lengths -> ``(B, max_len)`` bool, True at *valid* positions."""
    return torch.arange(max_len, device=lengths.device)[None] < lengths[:, None]


def masked_mel_loss(pred: Tensor, target: Tensor, lengths: Tensor, kind: str = "l1") -> Tensor:
    """Mean L1 (``kind="l1"``) or squared error (``"mse"``) over the valid frames of ``(B, n_mels, L)`` mels.

    ``lengths (B,)`` valid frames; ``pred`` and ``target`` must have the same shape.
    """
    if pred.shape != target.shape or pred.ndim != 3:
        raise DataError(f"mel loss: prediction {tuple(pred.shape)} and target {tuple(target.shape)} must be the "
                        "same (B, n_mels, L)")
    if kind not in ("l1", "mse"):
        raise ConfigError(f"mel loss kind must be 'l1' or 'mse', got {kind!r}")
    valid = sequence_mask(lengths.to(pred.device), pred.shape[-1])[:, None].to(pred.dtype)
    err = (pred.float() - target.float()).abs() if kind == "l1" else (pred.float() - target.float()).pow(2)
    return (err * valid).sum() / (valid.sum() * pred.shape[1]).clamp_min(1.0)


def masked_value_loss(pred: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """MSE of per-position values ``(B, N)`` over ``valid`` positions (bool ``(B, N)``)."""
    if pred.shape != target.shape or valid.shape != pred.shape:
        raise DataError(f"value loss: prediction {tuple(pred.shape)}, target {tuple(target.shape)} and mask "
                        f"{tuple(valid.shape)} must agree")
    v = valid.to(torch.float32)
    return ((pred.float() - target.float()).pow(2) * v).sum() / v.sum().clamp_min(1.0)


def duration_loss(log_pred: Tensor, durations: Tensor, lengths: Tensor) -> Tensor:
    """FastSpeech 2's duration loss: MSE of ``log_pred (B, N)`` against ``ln(durations + 1)`` on valid tokens."""
    if log_pred.shape != durations.shape:
        raise DataError(f"duration loss: prediction {tuple(log_pred.shape)} and durations {tuple(durations.shape)} "
                        "differ")
    target = torch.log(durations.float() + 1.0)
    return masked_value_loss(log_pred, target, sequence_mask(lengths.to(log_pred.device), log_pred.shape[1]))

