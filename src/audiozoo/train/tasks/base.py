"""The ``Task`` base class: what a training style computes, separate from how the engine runs it.

Modelled on Lightning's ``LightningModule`` hooks, but the task does not own the model: the engine
passes it the models (``task.models``, a name -> module dict, DDP-wrapped during training) and runs
the loop, precision, accumulation, checkpoints and logging.

Several optimizers (GANs) are generic: ``configure_optimizers`` returns one optimizer per *stage*;
for every micro-batch the engine calls :meth:`Task.shared_forward` once, then for each stage ``i`` in
order ``training_step(batch, optimizer_idx=i)`` and backpropagates its ``loss`` while only optimizer
``i``'s parameters require grad (Lightning's ``toggle_optimizer``), stepping optimizer ``i`` before the
next stage runs (HiFi-GAN's D-then-G order).

Recipes name tasks (``task: {name: classify}``); a task class registers its name with
:func:`register_task`. Task modules import only this module, the ``_``-prefixed helper modules of this package
(shared base classes and helpers) and ``train.losses``, never another task module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ...errors import ConfigError
from ..optim import build_optimizer, build_scheduler

# name -> task class, filled by @register_task when the task modules are imported (tasks/__init__.py)
TASKS: dict[str, type[Task]] = {}


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DDP (or any ``.module``) wrapper."""
    while isinstance(module, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        module = module.module
    return module


class Task:
    """Base class of training styles.

    Args:
        optim: optimizer settings for :func:`audiozoo.train.optim.build_optimizer` (``name``, ``lr``...).
        schedule: schedule settings for :func:`audiozoo.train.optim.build_scheduler` (``name``,
            ``warmup_steps``...).

    Class attributes ``monitor`` (a key of :meth:`validation_end`'s dict) and ``monitor_mode``
    (``"min"``/``"max"``) choose the ``best/`` checkpoint.
    """

    monitor: str = "loss"
    monitor_mode: str = "min"
    #: the registered name (set by :func:`register_task`)
    task_name: str = ""
    #: whether the recipe's model gets ``num_classes = len(labels)`` from the data (classifiers and students)
    uses_labels: bool = False

    def __init__(self, optim: Mapping[str, Any] | None = None, schedule: Mapping[str, Any] | None = None) -> None:
        self.optim_cfg = dict(optim or {"name": "adamw", "lr": 1e-3})
        self.schedule_cfg = dict(schedule or {"name": "constant"})
        self.models: dict[str, nn.Module] = {}
        self.trainer: Any = None
        self.device = torch.device("cpu")
        self._val_sums: dict[str, float] = {}
        self._val_count = 0

    # ---- wiring ---------------------------------------------------------------------------------
    def setup(self, trainer: Any) -> None:
        """Called by the engine before ``configure_optimizers`` (models are on the device then)."""
        self.trainer = trainer
        self.device = trainer.device

    @property
    def model(self) -> nn.Module:
        """The main (first) model, as used for the current phase (DDP-wrapped while training)."""
        return next(iter(self.models.values()))

    @property
    def total_steps(self) -> int | None:
        return getattr(self.trainer, "total_steps", None)

    # ---- optimisation ---------------------------------------------------------------------------
    def configure_optimizers(self, models: Mapping[str, nn.Module]) -> tuple[list[torch.optim.Optimizer], list[Any]]:
        """One optimizer over every trainable parameter of ``models`` and its schedule.

        Returns ``(optimizers, schedulers)``; a scheduler entry is ``None``, an LR scheduler (stepped
        every optimizer step) or ``{"scheduler": s, "interval": "step" | "epoch"}``.
        """
        params = [p for m in models.values() for p in unwrap(m).parameters() if p.requires_grad]
        opt = build_optimizer(params, **self.optim_cfg)
        return [opt], [build_scheduler(opt, total_steps=self.total_steps, **self.schedule_cfg)]

    def shared_forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Computed once per micro-batch before the optimizer stages (e.g. a generator's output)."""
        return batch

    def training_step(self, batch: dict[str, Any], optimizer_idx: int = 0) -> dict[str, Tensor]:
        """Loss of stage ``optimizer_idx``: ``{"loss": scalar tensor, other scalars to log...}``."""
        raise NotImplementedError

    # ---- validation -----------------------------------------------------------------------------
    def on_validation_start(self) -> None:
        self._val_sums, self._val_count = {}, 0

    def validation_step(self, batch: dict[str, Any]) -> None:
        """Default: average the scalars of ``training_step`` over the validation set."""
        batch = self.shared_forward(batch)
        out = self.training_step(batch)
        self._accumulate(out, batch_size(batch))

    def validation_end(self) -> dict[str, float]:
        n = max(1, self._val_count)
        return {k: v / n for k, v in self._val_sums.items()}

    def _accumulate(self, out: Mapping[str, Any], n: int) -> None:
        for k, v in out.items():
            if isinstance(v, Tensor) and v.numel() == 1:
                v = float(v.detach())
            if isinstance(v, (int, float)):
                self._val_sums[k] = self._val_sums.get(k, 0.0) + float(v) * n
        self._val_count += n

    # ---- hooks ----------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        """After optimizers exist and a checkpoint (if any) was restored."""

    def on_train_step_end(self, step: int, logs: Mapping[str, float]) -> None:
        """After optimizer step ``step`` (1-based), its evaluation and checkpoints."""

    def on_epoch_end(self, epoch: int) -> None:
        """After the last batch of ``epoch`` (0-based)."""


def batch_size(batch: Any) -> int:
    """Number of examples in a batch (first dimension of its first tensor)."""
    if isinstance(batch, Tensor):
        return int(batch.shape[0]) if batch.ndim else 1
    if isinstance(batch, Mapping):
        for v in batch.values():
            if isinstance(v, Tensor) and v.ndim:
                return int(v.shape[0])
    if isinstance(batch, (list, tuple)):
        for v in batch:
            if isinstance(v, Tensor) and v.ndim:
                return int(v.shape[0])
    return 1


def register_task(name: str):
    """Class decorator: make ``cls`` the task that recipes call ``name``.

    >>> @register_task("my_task")
    ... class MyTask(Task): ...
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"a task name must be an identifier, got {name!r}")

    def deco(cls: type[Task]) -> type[Task]:
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise ConfigError(f"@register_task({name!r}) decorates Task subclasses, got {cls!r}")
        old = TASKS.get(name)
        if old is not None and old.__qualname__ != cls.__qualname__:
            raise ConfigError(f"task name {name!r} is taken by {old.__module__}.{old.__qualname__}")
        cls.task_name = name
        TASKS[name] = cls
        return cls

    return deco


def get_task_class(name: str) -> type[Task]:
    """The task class registered as ``name`` (``classify``, ``gan``...); the package imports every task module."""
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; available: {sorted(TASKS)}")
    return TASKS[name]
