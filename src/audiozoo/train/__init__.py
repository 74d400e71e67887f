"""audiozoo.train: one training engine, task modules, losses and flat YAML recipes.

>>> from audiozoo.train import Trainer, ClassificationTask
>>> Trainer(ClassificationTask(optim={"name": "adamw", "lr": 1e-3}), model, train_loader, valid_loader,
...         max_steps=1000, out_dir="runs/x").fit(resume=True)

The names below are imported lazily (PEP 562): ``audiozoo.train.losses`` is a leaf of pure functions that SSL
model files use for their contract's ``pretrain_loss``, and importing it must not pull in the engine, the
tasks and the resolver.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "export_pretrained": "checkpoint", "read_checkpoint": "checkpoint", "write_checkpoint": "checkpoint",
    "EMA": "ema", "Trainer": "engine", "TrainState": "engine", "run_validation": "engine",
    "read_metrics": "logger", "build_optimizer": "optim", "build_scheduler": "optim",
    "add_cli": "recipe", "evaluate_from_recipe": "recipe", "load_recipe": "recipe", "train_from_recipe": "recipe",
    "validate_recipe": "recipe", "seed_everything": "rng",
    "TASKS": "tasks", "AutoencoderTask": "tasks", "ClassificationTask": "tasks", "DistillationTask": "tasks",
    "GANTask": "tasks", "Task": "tasks", "get_task_class": "tasks", "register_task": "tasks",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_NAMES])
