"""Frame-level melody transcription loss (Mel-RoFormer's fine-tuning for vocal melody, arXiv:2409.04702
Section 3: an onset/frame objective on the separator's embeddings).

The frame objective is a cross-entropy over ``1 + P`` classes per frame (class 0: no melody; then the pitch
bins), the onset objective a binary cross-entropy per frame. :func:`melody_targets` turns a reference f0 contour
into the class targets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import ConfigError

__all__ = ["melody_loss", "melody_targets"]


def melody_targets(f0_hz: Tensor, pitch_min: float, pitch_bins: int, bins_per_semitone: int = 1) -> Tensor:
    """Class targets ``(...,)`` long from an f0 contour ``(...,)`` in Hz (``<= 0``: unvoiced -> class 0).

    A voiced frame gets ``1 + round((midi - pitch_min) * bins_per_semitone)``, clamped into the pitch range.
    """
    voiced = f0_hz > 0
    midi = 69.0 + 12.0 * torch.log2(f0_hz.clamp_min(1e-6) / 440.0)
    b = torch.round((midi - pitch_min) * bins_per_semitone).long().clamp(0, pitch_bins - 1) + 1
    return torch.where(voiced, b, torch.zeros_like(b))


def melody_loss(out: dict[str, Tensor], target: Tensor, onset: Tensor | None = None,
                onset_weight: float = 1.0) -> tuple[Tensor, dict[str, float]]:
    """``CE(pitch logits (B, L, 1 + P), target (B, L)) + onset_weight * BCE(onset logits (B, L, 1), onset (B, L))``.

    Returns the loss and its parts (``frame``, ``onset``) as floats for logging.
    """
    logits = out["pitch"]
    if logits.shape[:2] != target.shape:
        raise ConfigError(f"melody_loss: pitch logits {tuple(logits.shape)} and targets {tuple(target.shape)} "
                          "disagree on (B, L)")
    frame = F.cross_entropy(logits.flatten(0, 1).float(), target.flatten())
    parts = {"frame": float(frame.detach())}
    loss = frame
    if onset is not None:
        o = F.binary_cross_entropy_with_logits(out["onset"][..., 0].float(), onset.float())
        parts["onset"] = float(o.detach())
        loss = loss + onset_weight * o
    return loss, parts
