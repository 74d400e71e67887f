"""The training engine: one loop for every task (classification, GANs, ...).

What it does, and where the conventions come from:

- seeds Python/NumPy/torch (``seed + rank``, so dropout/mixup differ across DDP ranks while the data
  order, a function of ``(seed, epoch)``, is shared — see :mod:`audiozoo.train.loader`);
- precision: ``fp32``; ``bf16`` autocast (CPU or CUDA, no scaler needed: bf16 has fp32's range);
  ``fp16`` CUDA autocast with a ``GradScaler`` (one scaler for all optimizers, updated once per step, as
  in the torch AMP "multiple optimizers" recipe);
- gradient accumulation over ``grad_accum`` micro-batches: each loss is divided by the number of
  micro-batches of its window, so k x batch b gives the gradient of batch k*b; the last window of an
  epoch may be shorter (HF Trainer does the same); DDP gradient sync only on the last micro-batch
  (``no_sync``);
- several optimizers (GANs): stages in order, see :mod:`audiozoo.train.tasks.base`;
- clipping (``clip_grad_norm_`` after unscaling), per-step or per-epoch LR schedules, EMA of the main
  model (used for validation when ``eval_with_ema``);
- checkpoints ``last/`` (every ``save_every`` steps, else every epoch, and at the end) and ``best/`` (by
  the task's ``monitor``/``monitor_mode``), atomic, pickle-free (:mod:`audiozoo.train.checkpoint`),
  holding everything for an exact resume: weights, optimizer/scheduler/scaler/EMA states, every rank's
  RNG states, step/epoch/batch position. A resumed run restores RNG states after re-creating the epoch's
  data iterator and skips the consumed batches, so on CPU with fixed threads it is bitwise identical
  to an uninterrupted run;
- validation is run on rank 0 only, on unwrapped models, with all RNG states saved and restored around
  it, so evaluating more or less often does not change the training trajectory;
- logs: ``metrics.jsonl`` (+ TensorBoard), a tqdm progress bar; only rank 0 writes;
- DDP when launched by torchrun (one DDP wrapper per model that has trainable parameters; gradients are
  averaged across ranks, so 2 processes x batch b equal 1 process x batch 2b).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import CheckpointError, ConfigError
from . import distributed as D
from .checkpoint import clean_stale_tmp, read_checkpoint, resolve_checkpoint, write_checkpoint
from .ema import EMA
from .loader import distribute_loader, set_loader_epoch, skip_first_batches
from .logger import MetricsLogger
from .optim import load_scheduler_state
from .rng import get_rng_state, seed_everything, set_rng_state
from .tasks.base import Task

PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass
class TrainState:
    """Position of the run (saved in every checkpoint)."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # current epoch (0-based)
    batch_in_epoch: int = 0  # micro-batches of the current epoch already consumed
    best: float | None = None
    best_step: int | None = None
    evaluated_at: int | None = None


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Tensors of a (nested) batch moved to ``device``; other values unchanged."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: move_to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)) and any(isinstance(v, Tensor) for v in batch):
        return type(batch)(move_to_device(v, device) for v in batch)
    return batch


def autocast_context(device: torch.device, precision: str):
    """The autocast context of ``precision`` on ``device`` (a null context for fp32)."""
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def run_validation(task: Task, models: Mapping[str, nn.Module], loader: Iterable, device: torch.device,
                   precision: str = "fp32") -> dict[str, float]:
    """Run ``task``'s validation hooks over ``loader`` with ``models`` in eval mode; returns its metrics."""
    task.models = dict(models)
    modes = {k: m.training for k, m in models.items()}
    for m in models.values():
        m.eval()
    try:
        task.on_validation_start()
        with torch.no_grad(), autocast_context(device, precision):
            for batch in loader:
                task.validation_step(move_to_device(batch, device))
        return {k: float(v) for k, v in task.validation_end().items()}
    finally:
        for k, m in models.items():
            m.train(modes[k])


def resolve_device(device: str | torch.device, local_rank: int = 0) -> torch.device:
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' was asked for but torch sees no CUDA device")
        if dev.index is None:
            dev = torch.device("cuda", local_rank)
    return dev


class Trainer:
    """Train ``models`` with ``task`` on ``train_loader``.

    Args:
        task: a :class:`audiozoo.train.Task` (losses, optimizers, validation metrics).
        models: one module (named ``"model"``) or a name -> module dict; the first is the main model
            (EMA, ``model.safetensors``).
        train_loader: iterable of batches (a ``DataLoader`` for exact resume and DDP sharding).
        valid_loader: optional validation batches.
        max_steps / epochs: run length in optimizer steps and/or epochs (the first reached stops).
        grad_accum: micro-batches per optimizer step.
        clip_grad_norm: max global L2 norm of each optimizer's gradients (None: no clipping).
        precision: ``"fp32"`` | ``"bf16"`` | ``"fp16"`` (CUDA only).
        ema_decay: EMA of the main model's weights (None: off); ``eval_with_ema`` validates with it.
        log_every: optimizer steps between train log records.
        eval_every: steps between validations (None: at the end of every epoch); always at the end.
        save_every: steps between ``last/`` checkpoints (None: every epoch); always at the end.
        out_dir: run folder (``last/``, ``best/``, ``metrics.jsonl``).
        seed: base seed (see module docstring).
        device: ``"auto"`` | ``"cpu"`` | ``"cuda"`` | a torch.device.
        progress: show a tqdm progress bar (rank 0).
        tensorboard: also log to TensorBoard when it is installed.
        deterministic: ``torch.use_deterministic_algorithms(True)`` (slower on CUDA).
        metadata: JSON-able facts stored in checkpoints' ``config.json`` (labels, recipe...).
        ddp_find_unused: DDP's ``find_unused_parameters`` (None: only for the non-main models of
            multi-optimizer tasks).
    """

    def __init__(
        self,
        task: Task,
        models: nn.Module | Mapping[str, nn.Module],
        train_loader: Iterable,
        valid_loader: Iterable | None = None,
        *,
        max_steps: int | None = None,
        epochs: int | None = None,
        grad_accum: int = 1,
        clip_grad_norm: float | None = None,
        precision: str = "fp32",
        ema_decay: float | None = None,
        eval_with_ema: bool = True,
        log_every: int = 50,
        eval_every: int | None = None,
        save_every: int | None = None,
        out_dir: str | os.PathLike = "runs/train",
        seed: int = 0,
        device: str | torch.device = "auto",
        progress: bool = True,
        tensorboard: bool = False,
        deterministic: bool = False,
        metadata: Mapping[str, Any] | None = None,
        ddp_find_unused: bool | None = None,
    ) -> None:
        if not isinstance(task, Task):
            raise ConfigError(f"task must be an audiozoo.train.Task, got {type(task).__name__}")
        self.models = {"model": models} if isinstance(models, nn.Module) else dict(models)
        if not self.models or not all(isinstance(m, nn.Module) for m in self.models.values()):
            raise ConfigError("models must be an nn.Module or a non-empty dict of nn.Modules")
        if max_steps is None and epochs is None:
            raise ConfigError("give max_steps or epochs (the run length)")
        for name, v in (("max_steps", max_steps), ("epochs", epochs)):
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        for name, v in (("grad_accum", grad_accum), ("log_every", log_every)):
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        for name, v in (("eval_every", eval_every), ("save_every", save_every)):
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ConfigError(f"{name} must be a positive integer or None, got {v!r}")
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if clip_grad_norm is not None and not clip_grad_norm > 0:
            raise ConfigError(f"clip_grad_norm must be > 0 or None, got {clip_grad_norm}")
        self.task = task
        self.train_loader = train_loader
        self.valid_loader = valid_loader
        self.max_steps, self.epochs = max_steps, epochs
        self.grad_accum = grad_accum
        self.clip_grad_norm = clip_grad_norm
        self.precision = precision
        self.ema_decay = ema_decay
        self.eval_with_ema = eval_with_ema
        self.log_every, self.eval_every, self.save_every = log_every, eval_every, save_every
        self.out_dir = Path(out_dir)
        self.seed = int(seed)
        self.device_arg = device
        self.progress, self.tensorboard, self.deterministic = progress, tensorboard, deterministic
        self.metadata = dict(metadata or {})
        self.ddp_find_unused = ddp_find_unused
        self.state = TrainState()
        self.dist = D.DistInfo()
        self.device = torch.device("cpu")
        self.optimizers: list[torch.optim.Optimizer] = []
        self.schedulers: list[dict[str, Any] | None] = []
        self.ema: EMA | None = None
        self.scaler: torch.amp.GradScaler | None = None
        self.total_steps: int | None = None
        self.last_metrics: dict[str, float] = {}
        self._owns_pg = False

    # ------------------------------------------------------------------------------------------------
    @property
    def step(self) -> int:
        return self.state.step

    @property
    def main_model(self) -> nn.Module:
        """The unwrapped main model."""
        return next(iter(self.models.values()))

    def fit(self, resume: bool | str | os.PathLike = False) -> dict[str, Any]:
        """Train. ``resume``: ``True`` continues from ``out_dir/last`` when it exists; a path resumes from
        that checkpoint folder. Returns a summary (step, epoch, best, last validation metrics, out_dir)."""
        self._setup()
        try:
            if resume:
                path = self.out_dir / "last" if resume is True else Path(resume)
                found = resolve_checkpoint(path)
                if found is not None:
                    self.load_checkpoint(found)
                elif resume is not True:
                    raise CheckpointError(f"cannot resume: {path} is not a complete training checkpoint")
            self.task.models = self._train_models
            self.task.on_fit_start()
            self._run()
            return self.summary()
        finally:
            self._teardown()

    def summary(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), **asdict(self.state), "monitor": self.task.monitor,
                "last_valid": dict(self.last_metrics)}

    # ------------------------------------------------------------------------------------------------
    def _setup(self) -> None:
        info = D.env_dist_info()
        self.device = resolve_device(self.device_arg, info.local_rank)
        if self.precision == "fp16" and self.device.type != "cuda":
            raise ConfigError("precision 'fp16' needs CUDA (GradScaler); use 'bf16' on CPU")
        self._owns_pg = D.init_distributed(self.device)
        self.dist = D.env_dist_info()
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        seed_everything(self.seed + self.dist.rank)
        if self.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        for m in self.models.values():
            m.to(self.device).train()
        if self.dist.enabled:
            self.train_loader = distribute_loader(self.train_loader, self.dist.rank, self.dist.world_size, self.seed)
        self.total_steps = self._count_total_steps()
        self.task.models = dict(self.models)
        self.task.setup(self)
        opts, scheds = self.task.configure_optimizers(dict(self.models))
        self.optimizers = list(opts)
        if not self.optimizers:
            raise ConfigError(f"{type(self.task).__name__}.configure_optimizers returned no optimizer")
        scheds = list(scheds) + [None] * (len(self.optimizers) - len(scheds))
        self.schedulers = [s if s is None or isinstance(s, dict) else {"scheduler": s, "interval": "step"}
                           for s in scheds]
        self._opt_params = [[p for g in o.param_groups for p in g["params"]] for o in self.optimizers]
        self._train_models = self._wrap_ddp()
        if self.ema_decay is not None:
            self.ema = EMA(self.main_model, self.ema_decay)
        if self.precision == "fp16":
            self.scaler = torch.amp.GradScaler("cuda")
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            clean_stale_tmp(self.out_dir)
        self.logger = MetricsLogger(self.out_dir, enabled=self.dist.is_main, tensorboard=self.tensorboard)
        self._pending_rng: dict[str, Any] | None = None
        self._sums: dict[str, Tensor] = {}
        self._counts: dict[str, int] = {}
        self._last_saved_step: int | None = None
        self._t0 = time.perf_counter()
        self._t_log = (self._t0, 0)

    def _wrap_ddp(self) -> dict[str, nn.Module]:
        if not self.dist.enabled:
            return dict(self.models)
        multi = len(self.optimizers) > 1
        main = next(iter(self.models))
        out = {}
        for k, m in self.models.items():
            if any(p.requires_grad for p in m.parameters()):
                ids = [self.device.index] if self.device.type == "cuda" else None
                # Several optimizers: a model run in a stage whose optimizer does not own its parameters
                # (a discriminator in the generator stage) gets no gradients there, which DDP must be told
                # to expect. The main model (generator) runs in shared_forward with gradients on.
                unused = self.ddp_find_unused if self.ddp_find_unused is not None else (multi and k != main)
                out[k] = nn.parallel.DistributedDataParallel(m, device_ids=ids, find_unused_parameters=unused)
            else:
                out[k] = m
        return out

    def _count_total_steps(self) -> int | None:
        per_epoch = None
        try:
            per_epoch = math.ceil(len(self.train_loader) / self.grad_accum)  # type: ignore[arg-type]
        except TypeError:
            pass
        total = self.max_steps
        if self.epochs is not None and per_epoch is not None:
            total = min(total, self.epochs * per_epoch) if total else self.epochs * per_epoch
        return total

    def _teardown(self) -> None:
        if getattr(self, "_pbar", None) is not None:
            self._pbar.close()
            self._pbar = None
        if getattr(self, "logger", None) is not None:
            self.logger.close()
        self.task.models = dict(self.models)
        if self._owns_pg:
            D.barrier()
            torch.distributed.destroy_process_group()
            self._owns_pg = False

    # ------------------------------------------------------------------------------------------------
    def _done(self) -> bool:
        s = self.state
        return (self.max_steps is not None and s.step >= self.max_steps) or (
            self.epochs is not None and s.epoch >= self.epochs
        )

    def _run(self) -> None:
        from tqdm.auto import tqdm

        s = self.state
        self._pbar = tqdm(total=self.total_steps, initial=s.step, desc="train", dynamic_ncols=True,
                          disable=not (self.progress and self.dist.is_main))
        while not self._done():
            set_loader_epoch(self.train_loader, s.epoch, self.seed)
            try:
                n_batches: int | None = len(self.train_loader)  # type: ignore[arg-type]
            except TypeError:
                n_batches = None
            iterator = iter(skip_first_batches(self.train_loader, s.batch_in_epoch))
            if self._pending_rng is not None:  # after the iterator exists: creating it may draw numbers
                set_rng_state(self._pending_rng)
                self._pending_rng = None
            stopped = pending = False
            for batch in iterator:
                i = s.batch_in_epoch
                start = i - i % self.grad_accum
                window = self.grad_accum if n_batches is None else min(self.grad_accum, n_batches - start)
                last = i % self.grad_accum == self.grad_accum - 1 or (n_batches is not None and i + 1 == n_batches)
                self._micro_batch(move_to_device(batch, self.device), window, last)
                s.batch_in_epoch += 1
                pending = not last
                if last:
                    self._after_step()
                    if self._done():
                        stopped = True
                        break
            if stopped:
                break
            if pending:  # an unsized loader ended inside an accumulation window
                for i in range(len(self.optimizers)):
                    self._step_optimizer(i)
                self._finish_step()
                self._after_step()
            if s.batch_in_epoch == 0:
                raise ConfigError("train_loader yielded no batch (empty dataset, or drop_last with too few items)")
            self._epoch_end()
        if self._sums:  # steps since the last log record
            self._log_train()
        if self.valid_loader is not None and s.evaluated_at != s.step:
            self._checkpoint(save_last=False, metrics=self._validate())
        if self._last_saved_step != s.step:
            self._checkpoint(save_last=True, metrics=None)
        D.barrier()

    def _epoch_end(self) -> None:
        s = self.state
        for sch in self.schedulers:
            if sch is not None and sch.get("interval") == "epoch":
                sch["scheduler"].step()
        self.task.on_epoch_end(s.epoch)
        s.epoch += 1
        s.batch_in_epoch = 0
        metrics = self._validate() if self.eval_every is None and self.valid_loader is not None else None
        self._checkpoint(save_last=self.save_every is None, metrics=metrics)

    # ------------------------------------------------------------------------------------------------
    @contextmanager
    def _only_stage_params(self, idx: int) -> Iterator[None]:
        """Let only optimizer ``idx``'s parameters require grad (Lightning's ``toggle_optimizer``)."""
        if len(self.optimizers) == 1:
            yield
            return
        own = {id(p) for p in self._opt_params[idx]}
        frozen = [p for j, ps in enumerate(self._opt_params) if j != idx for p in ps
                  if id(p) not in own and p.requires_grad]
        for p in frozen:
            p.requires_grad_(False)
        try:
            yield
        finally:
            for p in frozen:
                p.requires_grad_(True)

    def _micro_batch(self, batch: Any, window: int, sync: bool) -> None:
        multi = len(self.optimizers) > 1
        with ExitStack() as stack:
            if not sync:
                for m in self._train_models.values():
                    if isinstance(m, nn.parallel.DistributedDataParallel):
                        stack.enter_context(m.no_sync())
            self.task.models = self._train_models
            with autocast_context(self.device, self.precision):
                batch = self.task.shared_forward(batch)
            for i in range(len(self.optimizers)):
                with self._only_stage_params(i), autocast_context(self.device, self.precision):
                    out = self.task.training_step(batch, i) if multi else self.task.training_step(batch)
                loss = out.get("loss") if isinstance(out, Mapping) else None
                if not isinstance(loss, Tensor) or not loss.requires_grad:
                    raise ConfigError(f"{type(self.task).__name__}.training_step must return a dict with a "
                                      "differentiable 'loss' tensor")
                scaled = loss.float() / window
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
                self._record(out, "loss" if not multi else None)
                if sync:
                    self._step_optimizer(i)
        if sync:
            self._finish_step()

    def _step_optimizer(self, i: int) -> None:
        opt = self.optimizers[i]
        if self.scaler is not None:
            self.scaler.unscale_(opt)
        if self.clip_grad_norm is not None:
            norm = torch.nn.utils.clip_grad_norm_(self._opt_params[i], self.clip_grad_norm)
            self._record({"grad_norm" if len(self.optimizers) == 1 else f"grad_norm_{i}": norm}, None)
        if self.scaler is not None:
            self.scaler.step(opt)
        else:
            opt.step()
        opt.zero_grad(set_to_none=True)
        sch = self.schedulers[i]
        if sch is not None and sch.get("interval", "step") == "step":
            sch["scheduler"].step()

    def _finish_step(self) -> None:
        if self.scaler is not None:
            self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.main_model)

    def _record(self, out: Mapping[str, Any], loss_key: str | None) -> None:
        for k, v in out.items():
            if k == "loss" and loss_key is None:
                continue  # several stages: tasks log their named losses (d_loss, g_loss...)
            if isinstance(v, Tensor) and v.numel() == 1:
                v = v.detach().float().reshape(())
            elif isinstance(v, (int, float)):
                v = torch.tensor(float(v))
            else:
                continue
            self._sums[k] = self._sums[k] + v if k in self._sums else v
            self._counts[k] = self._counts.get(k, 0) + 1

    # ------------------------------------------------------------------------------------------------
    def _after_step(self) -> None:
        s = self.state
        s.step += 1
        self._pbar.update(1)
        logs: dict[str, float] = {}
        if s.step % self.log_every == 0:
            logs = self._log_train()
        metrics = None
        if self.eval_every is not None and self.valid_loader is not None and s.step % self.eval_every == 0:
            metrics = self._validate()
        self._checkpoint(save_last=self.save_every is not None and s.step % self.save_every == 0, metrics=metrics)
        self.task.on_train_step_end(s.step, logs)

    def _log_train(self) -> dict[str, float]:
        s = self.state
        logs = {k: float(self._sums[k]) / self._counts[k] for k in self._sums}
        self._sums, self._counts = {}, {}
        if "loss" in logs and not math.isfinite(logs["loss"]):
            raise FloatingPointError(f"training loss is {logs['loss']} at step {s.step}; lower the learning "
                                     "rate, clip gradients (clip_grad_norm) or use fp32")
        for i, opt in enumerate(self.optimizers):
            logs["lr" if len(self.optimizers) == 1 else f"lr_{i}"] = float(opt.param_groups[0]["lr"])
        now = time.perf_counter()
        t, st = self._t_log
        logs["steps_per_s"] = (s.step - st) / max(now - t, 1e-9)
        self._t_log = (now, s.step)
        self.logger.log({"step": s.step, "epoch": s.epoch, "split": "train", **logs})
        if "loss" in logs:
            self._pbar.set_postfix(loss=f"{logs['loss']:.4g}", refresh=False)
        return logs

    def _validate(self) -> dict[str, float] | None:
        """Validation metrics on rank 0 (None on other ranks); RNG states are left untouched."""
        self.state.evaluated_at = self.state.step
        if not self.dist.is_main or self.valid_loader is None:
            return None
        rng = get_rng_state()
        ctx = self.ema.swapped_into(self.main_model) if self.ema is not None and self.eval_with_ema else nullcontext()
        try:
            with ctx:
                metrics = run_validation(self.task, self.models, self.valid_loader, self.device, self.precision)
        finally:
            self.task.models = self._train_models
            set_rng_state(rng)
        self.last_metrics = metrics
        self.logger.log({"step": self.state.step, "epoch": self.state.epoch, "split": "valid", **metrics})
        return metrics

    def _improved(self, metrics: Mapping[str, float]) -> bool:
        key, mode = self.task.monitor, self.task.monitor_mode
        if key not in metrics:
            raise ConfigError(f"{type(self.task).__name__} monitors {key!r} but validation returned {sorted(metrics)}")
        if mode not in ("min", "max"):
            raise ConfigError(f"monitor_mode must be 'min' or 'max', got {mode!r}")
        v, best = metrics[key], self.state.best
        if not math.isfinite(v):
            return False
        return best is None or (v < best if mode == "min" else v > best)

    def _checkpoint(self, save_last: bool, metrics: Mapping[str, float] | None) -> None:
        evaluated = self.state.evaluated_at == self.state.step and metrics is not None
        # Decided identically on every rank (step-based), so every rank joins the RNG gather.
        will_eval = self.state.evaluated_at == self.state.step and self.valid_loader is not None
        if not (save_last or will_eval):
            return
        rng_all = D.all_gather_object(get_rng_state())
        if not self.dist.is_main:
            if save_last:
                self._last_saved_step = self.state.step
            return
        if evaluated and self._improved(metrics):
            self.state.best, self.state.best_step = float(metrics[self.task.monitor]), self.state.step
            self.save_checkpoint(self.out_dir / "best", rng_all, metrics)
        if save_last:
            self.save_checkpoint(self.out_dir / "last", rng_all, metrics)
            self._last_saved_step = self.state.step

    # ------------------------------------------------------------------------------------------------
    def save_checkpoint(self, directory: str | os.PathLike, rng_all: list[Any] | None = None,
                        metrics: Mapping[str, float] | None = None) -> Path:
        """Write a full training checkpoint of the current state to ``directory`` (atomically)."""
        state = {
            "progress": asdict(self.state),
            "world_size": self.dist.world_size,
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [None if s is None else s["scheduler"].state_dict() for s in self.schedulers],
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "ema_updates": None if self.ema is None else self.ema.num_updates,
            "rng": rng_all if rng_all is not None else [get_rng_state()],
            "metrics": dict(metrics or {}),
            "settings": {"seed": self.seed, "grad_accum": self.grad_accum, "precision": self.precision,
                         "task": type(self.task).__name__},
        }
        meta = {**self.metadata, "step": self.state.step, "epoch": self.state.epoch, "metrics": dict(metrics or {})}
        return write_checkpoint(directory, self.models, state,
                                ema_state=None if self.ema is None else self.ema.state_dict(), metadata=meta)

    def load_checkpoint(self, directory: str | os.PathLike) -> None:
        """Restore everything :meth:`save_checkpoint` wrote (call inside :meth:`fit` via ``resume``)."""
        weights, ema_state, state = read_checkpoint(directory)
        if set(weights) != set(self.models):
            raise CheckpointError(f"{directory} holds models {sorted(weights)}, this run has {sorted(self.models)}")
        for name, m in self.models.items():
            try:
                m.load_state_dict(weights[name], strict=True)
            except RuntimeError as e:
                raise CheckpointError(f"{directory}: weights of {name!r} do not fit: {e}") from e
        if len(state["optimizers"]) != len(self.optimizers):
            raise CheckpointError(f"{directory} has {len(state['optimizers'])} optimizer states, the task "
                                  f"configured {len(self.optimizers)}")
        for opt, sd in zip(self.optimizers, state["optimizers"]):
            opt.load_state_dict(sd)
        for sch, sd in zip(self.schedulers, state["schedulers"]):
            if sch is not None and sd is not None:
                load_scheduler_state(sch["scheduler"], sd)  # the recipe's schedule, the checkpoint's step
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            if ema_state is None:
                raise CheckpointError(f"{directory} has no EMA weights but ema_decay is set")
            self.ema.load_state_dict(ema_state)
            self.ema.num_updates = int(state.get("ema_updates") or 0)
        self.state = TrainState(**state["progress"])
        rngs = state["rng"]
        if len(rngs) == self.dist.world_size:
            self._pending_rng = rngs[self.dist.rank]
        else:  # a different number of processes cannot reproduce the old trajectory anyway
            import warnings

            warnings.warn(f"checkpoint was written by {len(rngs)} process(es), this run has "
                          f"{self.dist.world_size}: the resumed run is not bitwise reproducible", stacklevel=2)
        self._last_saved_step = self.state.step
        self.logger.truncate_after(self.state.step)
