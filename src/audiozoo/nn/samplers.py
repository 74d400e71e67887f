"""ODE samplers for flow matching / probability-flow ODEs: Euler, midpoint, Heun.

A flow-matching model (Lipman et al. 2023, arXiv:2210.02747) learns a velocity field ``v(x, t)``; sampling
integrates ``dx/dt = v(x, t)`` from the prior at ``t = 0`` to data at ``t = 1`` (Section 3, eq. 1). The
solvers here are the fixed-step ones the audio systems use:

* ``"euler"`` — ``x + dt v(x, t)``: 1 evaluation a step (Matcha-TTS, F5-TTS, PeriodWave ``--solver euler``);
* ``"midpoint"`` — ``x + dt v(x + dt/2 v(x, t), t + dt/2)``: 2 evaluations, 2nd order (PeriodWave's default);
* ``"heun"`` — the explicit trapezoid rule ``x + dt/2 (v(x, t) + v(x + dt v(x, t), t + dt))``: 2 evaluations,
  2nd order (Karras et al. 2022, Algorithm 1, without the last-step Euler fallback, which only matters where
  the field is singular at the end point, as for ``sigma = 0``; flow-matching fields are not).

``velocity_fn(x, t)`` receives ``x`` of the state's shape and ``t`` of shape ``(B,)`` in the state's dtype.
Time may run in either direction (a decreasing grid integrates backwards, e.g. to invert a flow).
Classifier-free guidance and conditioning are the caller's closure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from ..errors import ConfigError

__all__ = [
    "ODE_METHODS", "FlowMatchingBatch", "VelocityFn", "euler_step", "heun_step", "midpoint_step", "nfe_per_step",
    "ode_solve", "time_grid",
]

VelocityFn = Callable[[Tensor, Tensor], Tensor]

#: evaluations of ``velocity_fn`` per step of each method
ODE_METHODS = {"euler": 1, "midpoint": 2, "heun": 2}


class FlowMatchingBatch(NamedTuple):
    """What a flow-matching model hands its training loss (``audiozoo.train.losses.flow_matching``).

    ``x1``: data ``(B, ...)`` (already masked); ``velocity``: ``v(x_t, t (B,))`` with the model's conditioning
    bound in; ``prior_std``: per-element std of the Gaussian prior (``None``: 1), broadcastable to ``x1``;
    ``mask``: 1 on valid elements (``None``: all), broadcastable to ``x1``; ``noise_scale`` scales the prior;
    ``sigma_min`` is the OT-CFM minimum std (Lipman et al. eq. 20).
    """

    x1: Tensor
    velocity: VelocityFn
    prior_std: Tensor | None = None
    mask: Tensor | None = None
    noise_scale: float = 1.0
    sigma_min: float = 0.0


def nfe_per_step(method: str) -> int:
    """Velocity evaluations per step of ``method`` (``"euler"``: 1, ``"midpoint"`` and ``"heun"``: 2)."""
    if method not in ODE_METHODS:
        raise ConfigError(f"unknown ODE method {method!r}; expected one of {sorted(ODE_METHODS)}")
    return ODE_METHODS[method]


def time_grid(steps: int, t0: float = 0.0, t1: float = 1.0, schedule: str = "uniform", sway: float = -1.0,
              device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """``steps + 1`` time points from ``t0`` to ``t1`` (both included).

    ``schedule``: ``"uniform"``; ``"cosine"`` — ``1 - cos(pi/2 u)`` on ``u`` uniform in [0, 1] (denser near
    ``t0``, where flow-matching trajectories bend most); ``"sway"`` — F5-TTS's sway sampling (Chen et al. 2024,
    arXiv:2410.06885, eq. 7) ``u + s (cos(pi/2 u) - 1 + u)`` with coefficient ``sway`` (``s < 0``: denser near
    ``t0``). The shaped grids map ``u`` to ``t0 + (t1 - t0) f(u)``.
    """
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise ConfigError(f"time_grid: steps must be a positive integer, got {steps!r}")
    u = torch.linspace(0.0, 1.0, int(steps) + 1, dtype=torch.float64)
    if schedule == "uniform":
        f = u
    elif schedule == "cosine":
        f = 1.0 - torch.cos(0.5 * math.pi * u)
    elif schedule == "sway":
        f = u + sway * (torch.cos(0.5 * math.pi * u) - 1.0 + u)
    else:
        raise ConfigError(f"time_grid: unknown schedule {schedule!r}; expected 'uniform', 'cosine' or 'sway'")
    return (t0 + (t1 - t0) * f).to(device=device, dtype=dtype)


def _batch_time(t: float | Tensor, x: Tensor) -> Tensor:
    if isinstance(t, Tensor) and t.ndim == 1:
        return t.to(device=x.device, dtype=x.dtype)
    return torch.full((x.shape[0],), float(t), device=x.device, dtype=x.dtype)


def euler_step(velocity_fn: VelocityFn, x: Tensor, t: float | Tensor, dt: float) -> Tensor:
    """One Euler step ``x + dt v(x, t)``; ``t`` a float or ``(B,)``."""
    return x + dt * velocity_fn(x, _batch_time(t, x))


def midpoint_step(velocity_fn: VelocityFn, x: Tensor, t: float | Tensor, dt: float) -> Tensor:
    """One explicit midpoint step ``x + dt v(x + dt/2 v(x, t), t + dt/2)``."""
    tb = _batch_time(t, x)
    v = velocity_fn(x, tb)
    return x + dt * velocity_fn(x + 0.5 * dt * v, tb + 0.5 * dt)


def heun_step(velocity_fn: VelocityFn, x: Tensor, t: float | Tensor, dt: float) -> Tensor:
    """One Heun (explicit trapezoid) step ``x + dt/2 (v(x, t) + v(x + dt v(x, t), t + dt))``."""
    tb = _batch_time(t, x)
    v1 = velocity_fn(x, tb)
    v2 = velocity_fn(x + dt * v1, tb + dt)
    return x + 0.5 * dt * (v1 + v2)


_STEPS = {"euler": euler_step, "midpoint": midpoint_step, "heun": heun_step}


def ode_solve(velocity_fn: VelocityFn, x0: Tensor, steps: int | None = None,
              timesteps: Sequence[float] | Tensor | None = None, method: str = "euler", t0: float = 0.0,
              t1: float = 1.0, return_trajectory: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
    """Integrate ``dx/dt = velocity_fn(x, t)`` from ``x0 (B, ...)``.

    Give either ``steps`` (a uniform grid from ``t0`` to ``t1``: ``t_i = t0 + i dt``, ``dt = (t1 - t0) / steps``
    in float64, so the times are exact) or ``timesteps`` (any grid, e.g. :func:`time_grid`, ``len >= 2``).
    ``method``: ``"euler"``, ``"midpoint"`` or ``"heun"`` (see the module docstring); it makes
    ``steps * nfe_per_step(method)`` calls of ``velocity_fn``.

    Returns ``x(t1)`` (and, with ``return_trajectory``, the list of the ``steps + 1`` states).
    Gradients flow through unless the caller runs it under ``torch.no_grad()``.
    """
    if method not in _STEPS:
        raise ConfigError(f"ode_solve: unknown method {method!r}; expected one of {sorted(_STEPS)}")
    if (steps is None) == (timesteps is None):
        raise ConfigError("ode_solve: give exactly one of steps= or timesteps=")
    if steps is not None:
        if isinstance(steps, bool) or int(steps) != steps or steps < 1:
            raise ConfigError(f"ode_solve: steps must be a positive integer, got {steps!r}")
        n = int(steps)
        dt = (t1 - t0) / n
        grid = [t0 + i * dt for i in range(n)]
        dts = [dt] * n
    else:
        ts = [float(v) for v in (timesteps.tolist() if isinstance(timesteps, Tensor) else timesteps)]
        if len(ts) < 2:
            raise ConfigError(f"ode_solve: timesteps needs at least 2 points, got {len(ts)}")
        grid = ts[:-1]
        dts = [b - a for a, b in zip(ts[:-1], ts[1:])]
    step = _STEPS[method]
    x = x0
    traj = [x0] if return_trajectory else []
    for t, dt in zip(grid, dts):
        x = step(velocity_fn, x, t, dt)
        if return_trajectory:
            traj.append(x)
    return (x, traj) if return_trajectory else x
