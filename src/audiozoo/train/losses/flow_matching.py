"""Conditional flow-matching losses (Lipman et al. 2023, arXiv:2210.02747).

OT-CFM (Section 4.1, eqs. 20-23): with ``x_0`` from the prior and ``x_1`` a data sample, the path
``x_t = (1 - (1 - sigma_min) t) x_0 + t x_1`` has the constant target velocity ``u = x_1 - (1 - sigma_min) x_0``,
and the model's field ``v(x_t, t)`` is regressed on it with an MSE. PriorGrad (Lee et al. 2022,
arXiv:2106.06406, Section 3) makes the prior data-dependent, ``x_0 ~ N(0, (c s)^2)``, and weights the error by
``1 / s^2`` (the Mahalanobis norm of that prior); PeriodWave uses both.

Models hand the loss a :class:`audiozoo.nn.samplers.FlowMatchingBatch` (target, bound velocity field, prior std,
mask) from a ``flow_matching_batch(wav, lengths, mel)`` method; :func:`flow_matching_loss` runs it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...errors import ConfigError
from ...nn.samplers import FlowMatchingBatch, VelocityFn

__all__ = ["cfm_loss", "flow_matching_loss", "ot_cfm_path"]


def ot_cfm_path(x0: Tensor, x1: Tensor, t: Tensor, sigma_min: float = 0.0) -> tuple[Tensor, Tensor]:
    """The OT-CFM point and target: ``x_t = (1 - (1 - sigma_min) t) x0 + t x1``, ``u = x1 - (1 - sigma_min) x0``.

    ``t`` broadcasts against ``x0``/``x1`` (e.g. ``(B, 1, 1)`` for ``(B, C, T)``).
    """
    xt = (1 - (1 - sigma_min) * t) * x0 + t * x1
    return xt, x1 - (1 - sigma_min) * x0


def cfm_loss(velocity_fn: VelocityFn, x1: Tensor, *, prior_std: Tensor | None = None, noise_scale: float = 1.0,
             sigma_min: float = 0.0, mask: Tensor | None = None, priorgrad: bool = True,
             generator: torch.Generator | None = None, t: Tensor | None = None,
             noise: Tensor | None = None) -> Tensor:
    """OT-CFM loss of a batch ``x1 (B, ...)`` for the field ``velocity_fn(x_t, t (B,))``.

    Draws ``t ~ U[0, 1)`` per item, then the prior noise (in that order, PeriodWave's ``compute_loss``, so a
    seeded ``generator`` reproduces the official draws), unless ``t (B,)`` / ``noise`` are given.
    ``x_0 = noise * noise_scale * prior_std * mask``. With ``prior_std`` and ``priorgrad``, the squared error is
    divided by ``prior_std^2`` (PriorGrad). With ``mask`` the loss is the sum over valid elements divided by
    their count; else the mean.
    """
    if x1.ndim < 2:
        raise ConfigError(f"cfm_loss expects a batch x1 (B, ...), got shape {tuple(x1.shape)}")
    b = x1.shape[0]
    tshape = (b,) + (1,) * (x1.ndim - 1)
    if t is None:
        t = torch.rand(tshape, generator=generator, device=x1.device, dtype=x1.dtype)
    else:
        if t.shape != (b,):
            raise ConfigError(f"cfm_loss: t must be (B,) = ({b},), got {tuple(t.shape)}")
        t = t.to(device=x1.device, dtype=x1.dtype).view(tshape)
    if noise is None:
        noise = torch.randn(x1.shape, generator=generator, device=x1.device, dtype=x1.dtype)
    elif noise.shape != x1.shape:
        raise ConfigError(f"cfm_loss: noise must have x1's shape {tuple(x1.shape)}, got {tuple(noise.shape)}")
    x0 = noise * noise_scale
    if prior_std is not None:
        x0 = x0 * prior_std
    if mask is not None:
        x0 = x0 * mask
    xt, target = ot_cfm_path(x0, x1, t, sigma_min)
    err = velocity_fn(xt, t.view(b)) - target
    if prior_std is not None and priorgrad:
        err = err / prior_std
    err = err.square()
    if mask is None:
        return err.mean()
    err = err * mask
    # the mask may broadcast over channels: count the elements it covers
    count = mask.expand_as(err).sum() if mask.shape != err.shape else mask.sum()
    return err.sum() / count.clamp(min=1.0)


def flow_matching_loss(model: Any, wav: Tensor, lengths: Tensor | None = None, mel: Tensor | None = None,
                       generator: torch.Generator | None = None) -> Tensor:
    """OT-CFM loss of a flow-matching model on waveforms ``(B, T)`` (lengths in samples).

    ``model.flow_matching_batch(wav, lengths, mel)`` returns a :class:`FlowMatchingBatch` (PeriodWave: the
    energy prior and PriorGrad weighting; see its docstring); the draws come from ``generator``.
    """
    if not hasattr(model, "flow_matching_batch"):
        raise ConfigError(f"{type(model).__name__} has no flow_matching_batch(wav, lengths, mel); it is not a "
                          "flow-matching model")
    fb: FlowMatchingBatch = model.flow_matching_batch(wav, lengths, mel)
    return cfm_loss(fb.velocity, fb.x1, prior_std=fb.prior_std, noise_scale=fb.noise_scale,
                    sigma_min=fb.sigma_min, mask=fb.mask, generator=generator)
