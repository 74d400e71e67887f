"""Vector-quantisation losses (VQ-VAE, van den Oord et al. 2017, arXiv:1711.00937, eq. 3).

``L = || sg[z_e] - e ||^2 + beta || z_e - sg[e] ||^2``: the *codebook* term moves the chosen codes towards the
encoder outputs (not needed when the codebook is updated by EMA, as SoundStream/EnCodec do), the
*commitment* term keeps the encoder close to its codes (EnCodec: weight 1; VQ-VAE/DAC: beta 0.25).
Both are averaged over codebooks, as EnCodec and DAC do for residual VQ. The quantisers of
:mod:`audiozoo.nn.quantize` return the per-codebook ``inputs`` (``z_e``) and ``codewords`` (``e``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import ConfigError
from ...nn.quantize import VQOutput

__all__ = ["codebook_loss", "commitment_loss", "vq_losses"]


def _masked_mse(a: Tensor, b: Tensor, weight: Tensor | None) -> Tensor:
    """Mean of ``(a - b)^2`` over ``(B, d, T)``; ``weight (B, T)`` selects frames (mean over the selected)."""
    if weight is None:
        return F.mse_loss(a, b)
    w = weight.to(a.dtype)[:, None, :].expand_as(a)
    return ((a - b).square() * w).sum() / w.sum().clamp(min=1.0)


def _frames(out: VQOutput, i: int, mask: Tensor | None) -> Tensor | None:
    """Frames that count for codebook ``i``: the valid ones of items where the codebook is active."""
    if out.active is None:
        return mask
    b, _, t = out.inputs[i].shape
    act = out.active[:, i, None].expand(b, t)
    return act if mask is None else (mask.to(act.device).bool() & act)


def commitment_loss(out: VQOutput, mask: Tensor | None = None) -> Tensor:
    """``mean_i || z_e,i - sg[e_i] ||^2`` over the codebooks of ``out`` (``mask (B, T)``: valid frames)."""
    if not out.inputs:
        raise ConfigError("commitment_loss: the quantiser output has no codebook terms")
    terms = [_masked_mse(z, e.detach(), _frames(out, i, mask)) for i, (z, e) in enumerate(zip(out.inputs,
                                                                                             out.codewords))]
    return torch.stack(terms).mean()


def codebook_loss(out: VQOutput, mask: Tensor | None = None) -> Tensor:
    """``mean_i || sg[z_e,i] - e_i ||^2`` (moves learned codebooks; zero gradient for EMA codebooks)."""
    if not out.inputs:
        raise ConfigError("codebook_loss: the quantiser output has no codebook terms")
    terms = [_masked_mse(z.detach(), e, _frames(out, i, mask)) for i, (z, e) in enumerate(zip(out.inputs,
                                                                                             out.codewords))]
    return torch.stack(terms).mean()


def vq_losses(out: VQOutput, mask: Tensor | None = None, commitment_weight: float = 1.0,
              codebook_weight: float = 1.0) -> dict[str, Tensor]:
    """``{"commitment", "codebook", "vq"}`` with ``vq = commitment_weight * commitment + codebook_weight *
    codebook`` (set ``codebook_weight=0`` for EMA codebooks)."""
    com = commitment_loss(out, mask)
    cb = codebook_loss(out, mask)
    return {"commitment": com, "codebook": cb, "vq": commitment_weight * com + codebook_weight * cb}
