"""audiozoo.train: one training engine, task modules, losses and flat YAML recipes.

>>> from audiozoo.train import Trainer, ClassificationTask
>>> Trainer(ClassificationTask(optim={"name": "adamw", "lr": 1e-3}), model, train_loader, valid_loader,
...         max_steps=1000, out_dir="runs/x").fit(resume=True)
"""

from __future__ import annotations

from .checkpoint import export_pretrained, read_checkpoint, write_checkpoint
from .ema import EMA
from .engine import Trainer, TrainState, run_validation
from .logger import read_metrics
from .optim import build_optimizer, build_scheduler
from .recipe import add_cli, evaluate_from_recipe, load_recipe, train_from_recipe, validate_recipe
from .rng import seed_everything
from .tasks import (
    TASKS,
    AutoencoderTask,
    ClassificationTask,
    DistillationTask,
    GANTask,
    Task,
    get_task_class,
    register_task,
)

__all__ = [
    "EMA", "TASKS", "AutoencoderTask", "ClassificationTask", "DistillationTask", "GANTask", "Task", "TrainState",
    "Trainer", "add_cli", "register_task",
    "build_optimizer", "build_scheduler", "evaluate_from_recipe", "export_pretrained", "get_task_class", "load_recipe",
    "read_checkpoint", "read_metrics", "run_validation", "seed_everything", "train_from_recipe",
    "validate_recipe", "write_checkpoint",
]
