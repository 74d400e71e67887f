"""Sequence losses of speech recognition: CTC and label-smoothed token cross-entropy, joined as in joint
CTC/attention training (Kim, Hori & Watanabe, ICASSP 2017, arXiv:1609.06773, eq. 5:
``L = w L_ctc + (1 - w) L_att``).

Both are normalised per target token over the batch (total loss / total target tokens), so utterances of
different lengths weigh by their length and the two terms share a scale.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ...errors import ConfigError

__all__ = ["IGNORE_INDEX", "ctc_loss", "joint_ctc_attention_loss", "token_cross_entropy"]

IGNORE_INDEX = -100


def ctc_loss(log_probs: Tensor, lengths: Tensor, targets: Tensor, target_lengths: Tensor, blank: int) -> Tensor:
    """CTC negative log-likelihood per target token (Graves et al. 2006, Section 4.1).

    Args:
        log_probs: ``(B, T, V)`` log-softmax frame posteriors (computed in float32 here).
        lengths: ``(B,)`` valid frames.
        targets: ``(B, S)`` label ids (padding beyond ``target_lengths`` is ignored; never the blank).
        target_lengths: ``(B,)``.

    Utterances whose transcript cannot fit their frames (fewer than labels + repeats) have an infinite loss;
    they are zeroed (``zero_infinity``) and still count in the normalisation.
    """
    if log_probs.ndim != 3 or targets.ndim != 2:
        raise ConfigError(f"ctc_loss expects log_probs (B, T, V) and targets (B, S); got {tuple(log_probs.shape)} "
                          f"and {tuple(targets.shape)}")
    total = F.ctc_loss(log_probs.float().transpose(0, 1), targets.clamp(min=0), lengths.long(),
                       target_lengths.long(), blank=blank, reduction="sum", zero_infinity=True)
    return total / target_lengths.sum().clamp(min=1)


def token_cross_entropy(logits: Tensor, targets: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Mean cross-entropy over the non-ignored target tokens: ``logits (B, N, V)``, ``targets (B, N)`` with
    :data:`IGNORE_INDEX` at padding; label smoothing as Szegedy et al. 2016 (Section 7)."""
    if logits.shape[:2] != targets.shape:
        raise ConfigError(f"logits {tuple(logits.shape)} do not match targets {tuple(targets.shape)}")
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX,
                           label_smoothing=label_smoothing)


def joint_ctc_attention_loss(att: Tensor, ctc: Tensor | None, ctc_weight: float) -> Tensor:
    """``ctc_weight * ctc + (1 - ctc_weight) * att`` (``ctc`` may be None when ``ctc_weight`` is 0)."""
    if not 0.0 <= ctc_weight <= 1.0:
        raise ConfigError(f"ctc_weight must be in [0, 1], got {ctc_weight}")
    if ctc is None:
        if ctc_weight > 0:
            raise ConfigError("ctc_weight > 0 needs a CTC loss (a model with a CTC head)")
        return att
    return ctc_weight * ctc + (1.0 - ctc_weight) * att

