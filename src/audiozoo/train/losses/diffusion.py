"""Diffusion training losses (DDPM "simple" loss and its v / x0 variants).

Ho et al. 2020 (arXiv:2006.11239, eq. 14): ``E_{t, x_0, eps} || eps - eps_theta(sqrt(a_t) x_0 + sqrt(1 - a_t)
eps, t) ||^2`` with ``t`` uniform over the training steps. The target follows the schedule's
``prediction_type`` (noise, ``v`` of Salimans & Ho 2022, or ``x_0``). Optional Min-SNR-gamma weighting
(Hang et al. 2023, arXiv:2303.09556, Section 3.4): the per-item loss is scaled by ``min(SNR_t, gamma) / SNR_t``
for noise prediction, ``min(SNR_t, gamma) / (SNR_t + 1)`` for ``v``, ``min(SNR_t, gamma)`` for ``x_0``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ...errors import ConfigError
from ...nn.diffusion import NoiseSchedule

__all__ = ["diffusion_loss", "min_snr_weight"]


def min_snr_weight(schedule: NoiseSchedule, t: Tensor, gamma: float) -> Tensor:
    """Min-SNR-gamma loss weights ``(B,)`` for the schedule's prediction type at timesteps ``t (B,)``."""
    if not gamma > 0:
        raise ConfigError(f"min-SNR gamma must be > 0, got {gamma}")
    snr = schedule.snr(t)
    clipped = snr.clamp(max=gamma)
    if schedule.prediction_type == "epsilon":
        return clipped / snr
    if schedule.prediction_type == "v_prediction":
        return clipped / (snr + 1)
    return clipped


def diffusion_loss(model_fn: Callable[[Tensor, Tensor], Tensor], x0: Tensor, schedule: NoiseSchedule, *,
                   t: Tensor | None = None, noise: Tensor | None = None, mask: Tensor | None = None,
                   min_snr_gamma: float | None = None, generator: torch.Generator | None = None) -> Tensor:
    """MSE between ``model_fn(x_t, t)`` and the schedule's target for a batch ``x0 (B, ...)``.

    Draws ``t ~ U{0..T-1} (B,)`` then the noise (unless given). ``mask`` (broadcastable to ``x0``, 1 on valid
    elements) averages over valid elements per item; items are then averaged (weighted by Min-SNR if set).
    """
    if x0.ndim < 2:
        raise ConfigError(f"diffusion_loss expects a batch x0 (B, ...), got shape {tuple(x0.shape)}")
    b = x0.shape[0]
    if t is None:
        t = torch.randint(0, schedule.num_train_steps, (b,), generator=generator).to(x0.device)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    x_t = schedule.q_sample(x0, t, noise)
    err = (model_fn(x_t, t) - schedule.target(x0, t, noise)).square()
    if mask is None:
        per_item = err.reshape(b, -1).mean(-1)
    else:
        m = mask.to(err.dtype).expand_as(err)
        per_item = (err * m).reshape(b, -1).sum(-1) / m.reshape(b, -1).sum(-1).clamp(min=1.0)
    if min_snr_gamma is not None:
        per_item = per_item * min_snr_weight(schedule, t, min_snr_gamma).to(per_item)
    return per_item.mean()
