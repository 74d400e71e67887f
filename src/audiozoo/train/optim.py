"""Optimizers and learning-rate schedules by name (what a recipe's ``optim:`` and ``schedule:`` say).

Schedules are per optimizer step ``LambdaLR`` factors with a linear warmup, as in the HF ``transformers``
schedules (``get_cosine_schedule_with_warmup``...): during warmup the factor rises from 1/(warmup+1)
(HF starts at 0, which wastes the first step) to 1, then decays. ``exponential`` multiplies by ``gamma``
per step or per epoch (HiFi-GAN: ``ExponentialLR(gamma=0.999)`` stepped every epoch).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError

OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "radam": torch.optim.RAdam,
    "nadam": torch.optim.NAdam,
    "rmsprop": torch.optim.RMSprop,
    "adagrad": torch.optim.Adagrad,
}
SCHEDULES = ("constant", "linear", "cosine", "exponential")


def _param_groups(params: nn.Module | Iterable, weight_decay: float | None, no_decay_1d: bool) -> list | Iterable:
    if isinstance(params, nn.Module):
        params = [p for p in params.parameters() if p.requires_grad]
    params = list(params)
    if not no_decay_1d or not weight_decay or (params and isinstance(params[0], dict)):
        return params
    # Biases and norm gains (1-D) are usually exempt from weight decay (BERT, timm's default).
    decay = [p for p in params if p.ndim > 1]
    other = [p for p in params if p.ndim <= 1]
    return [{"params": decay}, {"params": other, "weight_decay": 0.0}]


def build_optimizer(
    params: nn.Module | Iterable,
    name: str = "adamw",
    *,
    lr: float = 1e-3,
    no_decay_1d: bool = False,
    **kwargs: Any,
) -> torch.optim.Optimizer:
    """Optimizer ``name`` over ``params`` (a module's trainable parameters, a list, or param groups).

    ``kwargs`` are the torch optimizer's own arguments (``weight_decay``, ``betas``, ``eps``, ``momentum``...);
    an argument the optimizer does not take raises :class:`ConfigError` naming it.
    """
    key = str(name).lower()
    if key not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    cls = OPTIMIZERS[key]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "params"}
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ConfigError(f"optimizer {key!r} does not take {unknown}; it takes {sorted(accepted)}")
    if "betas" in kwargs:
        kwargs["betas"] = tuple(float(b) for b in kwargs["betas"])
    groups = _param_groups(params, kwargs.get("weight_decay"), no_decay_1d)
    try:
        return cls(groups, lr=float(lr), **kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"invalid {key} settings {kwargs | {'lr': lr}}: {e}") from e


class WarmupDecay:
    """LR factor: linear warmup over ``warmup_steps`` then ``kind`` decay to ``min_lr_ratio`` at ``total_steps``.

    A callable object (not a closure) so that ``LambdaLR.state_dict`` records its settings.
    """

    def __init__(self, kind: str, warmup_steps: int, total_steps: int | None, min_lr_ratio: float) -> None:
        self.kind = kind
        self.warmup_steps = int(warmup_steps)
        self.total_steps = None if total_steps is None else int(total_steps)
        self.min_lr_ratio = float(min_lr_ratio)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        if self.kind == "constant":
            return 1.0
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        if self.kind == "linear":
            shape = 1.0 - progress
        else:  # cosine (Loshchilov & Hutter 2017, no restarts)
            shape = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * shape


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    name: str = "constant",
    *,
    total_steps: int | None = None,
    warmup_steps: int = 0,
    min_lr_ratio: float = 0.0,
    gamma: float | None = None,
    interval: str = "step",
) -> dict[str, Any]:
    """A schedule for ``optimizer`` as ``{"scheduler": LRScheduler, "interval": "step" | "epoch"}``.

    Args:
        name: ``constant`` | ``linear`` | ``cosine`` | ``exponential``.
        total_steps: optimizer steps of the whole run (needed by ``linear`` and ``cosine``).
        warmup_steps: linear warmup length (steps).
        min_lr_ratio: final LR as a fraction of the peak (linear/cosine).
        gamma: decay per ``interval`` for ``exponential``.
        interval: when the engine steps the scheduler (``step`` or ``epoch``); only ``exponential``
            may use ``epoch``.
    """
    key = str(name).lower()
    if key not in SCHEDULES:
        raise ConfigError(f"unknown schedule {name!r}; choose one of {list(SCHEDULES)}")
    if interval not in ("step", "epoch"):
        raise ConfigError(f"schedule interval must be 'step' or 'epoch', got {interval!r}")
    if int(warmup_steps) < 0:
        raise ConfigError(f"warmup_steps must be >= 0, got {warmup_steps}")
    if key == "exponential":
        if gamma is None or not 0.0 < float(gamma) <= 1.0:
            raise ConfigError(f"schedule 'exponential' needs gamma in (0, 1], got {gamma}")
        sched = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=float(gamma))
        return {"scheduler": sched, "interval": interval}
    if interval != "step":
        raise ConfigError(f"schedule {key!r} is stepped per optimizer step (interval: step)")
    if key in ("linear", "cosine") and not total_steps:
        raise ConfigError(f"schedule {key!r} needs the run length: set trainer.max_steps "
                          "(or epochs with a sized loader)")
    fn = WarmupDecay(key, warmup_steps, total_steps, min_lr_ratio)
    return {"scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, fn), "interval": "step"}


def load_scheduler_state(scheduler: torch.optim.lr_scheduler.LRScheduler, state: dict) -> None:
    """Restore a scheduler's step count from a checkpoint, keeping the schedule *configured now*.

    ``LambdaLR.state_dict`` also saves the settings of callable LR factors (:class:`WarmupDecay`), so a plain
    ``load_state_dict`` would bring back the old run's ``total_steps``: resuming with a larger
    ``trainer.max_steps`` would then sit at the old schedule's final learning rate. The recipe's settings win;
    the step count is the checkpoint's, and the learning rates are recomputed for it at once.
    """
    lambdas = getattr(scheduler, "lr_lambdas", None) or []
    configured = [dict(vars(f)) if isinstance(f, WarmupDecay) else None for f in lambdas]
    scheduler.load_state_dict(state)
    for f, conf in zip(lambdas, configured):
        if conf is not None:
            f.__dict__.update(conf)
    if lambdas:
        for group, base, f in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, lambdas):
            group["lr"] = base * f(scheduler.last_epoch)
        scheduler._last_lr = [g["lr"] for g in scheduler.optimizer.param_groups]
