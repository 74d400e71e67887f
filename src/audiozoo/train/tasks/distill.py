"""Knowledge distillation: a student learns a frozen teacher's outputs on the same audio, through the engine.

The teacher is any trained model the resolver knows (a weight set such as ``ast_tiny.fsdd_digits``, a checkpoint
folder or file: :func:`audiozoo.resolve.resolve_model`); it is loaded at ``setup``, kept in eval mode without
gradients, and is not part of the run's checkpoints. Each batch goes through the teacher's and the student's own
front ends (``frontend``, in float32 outside autocast); the student (the recipe's model) learns:

* ``loss: ccc`` — ``1 - mean_d CCC_d`` between student and teacher outputs over the batch (Wav2Small's
  objective and metric: Kounadis-Bastian et al. 2024, arXiv:2408.13920, continuous A/D/V teacher outputs);
* ``loss: mse`` — mean squared error of the outputs (logit matching, Ba & Caruana 2014);
* ``loss: kl`` — ``T^2 KL(softmax(teacher / T) || softmax(student / T))`` (soft labels, Hinton et al. 2015,
  arXiv:1503.02531, Sec. 2; ``temperature`` T);

plus, with ``label_weight > 0``, that weight times the cross-entropy on the batch's labels (Hinton's combination).

``recalibrate_bn``: after each epoch the student's BatchNorm statistics are re-estimated as exact averages over the
training set ("precise BN", Wu & Johnson 2021, arXiv:2105.07576): with torchvision's BN momentum 0.01 a short run
leaves the running statistics near their initial values (the MobileNetV3 student's eval-mode outputs were then
constant: CCC 0.0). ``trim_padding`` drops the frames past each batch's longest clip before the student (they are
masked anyway; with length bucketing it halves the cost on short clips).

Validation reports ``loss``, ``ccc`` and ``pearson`` (means over outputs), ``mse``, ``agreement`` (student's argmax =
teacher's), and ``accuracy`` / ``macro_f1`` against labels when batches have them. Monitored: ``ccc``
(``agreement`` for ``kl``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import ConfigError, DataError
from ..losses.kl import soft_label_kl
from ..losses.regression import ccc_loss
from ._common import frozen_model, label_metrics, model_inputs, single_labels, trim_to_longest
from .base import Task, batch_size, register_task, unwrap

__all__ = ["LOSSES", "DistillationTask", "precise_batchnorm"]

LOSSES = ("ccc", "mse", "kl")


def _output(out: Any) -> Tensor:
    """A model's prediction tensor ``(B, C)``: the output itself or the first of a tuple."""
    out = out[0] if isinstance(out, (tuple, list)) else out
    if not isinstance(out, Tensor) or out.ndim != 2:
        raise DataError(f"distillation needs (B, C) outputs from teacher and student, got "
                        f"{tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__}")
    return out.float()


@torch.no_grad()
def precise_batchnorm(model: nn.Module, batches: Any, forward: Any) -> int:
    """Re-estimate every BatchNorm's running statistics as the exact average over ``batches``.

    ``forward(batch)`` runs ``model`` on one batch. Momentum is set to ``None`` (cumulative average) for the pass
    and restored after; the model is left in train mode. Returns the number of BatchNorm layers (0: nothing done).
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for batch in batches:
        forward(batch)
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    return len(bns)


@register_task("distill")
class DistillationTask(Task):
    """Train the recipe's model (student) on a teacher's outputs (see the module docstring).

    Args:
        teacher: resolver spec of the trained teacher (weight set, checkpoint folder or file).
        loss: ``"ccc"``, ``"mse"`` or ``"kl"``.
        temperature: of the ``kl`` loss.
        label_weight: weight of the cross-entropy on labels added to the distillation loss (needs ``label``).
        recalibrate_bn: re-estimate the student's BatchNorm statistics on the training set after each epoch.
        trim_padding: drop the all-padding frames of each batch before the student.
        optim, schedule: see :class:`~audiozoo.train.tasks.base.Task`.
    """

    monitor = "ccc"
    monitor_mode = "max"
    uses_labels = True

    def __init__(self, *, teacher: str, loss: str = "ccc", temperature: float = 1.0, label_weight: float = 0.0,
                 recalibrate_bn: bool = False, trim_padding: bool = False, optim: Mapping[str, Any] | None = None,
                 schedule: Mapping[str, Any] | None = None) -> None:
        super().__init__(optim, schedule)
        if loss not in LOSSES:
            raise ConfigError(f"distillation loss must be one of {LOSSES}, got {loss!r}")
        if not temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {temperature}")
        if label_weight < 0:
            raise ConfigError(f"label_weight must be >= 0, got {label_weight}")
        self.teacher_spec = teacher
        self.loss_kind, self.temperature, self.label_weight = loss, float(temperature), float(label_weight)
        self.recalibrate_bn, self.trim_padding = bool(recalibrate_bn), bool(trim_padding)
        if loss == "kl":
            self.monitor = "agreement"
        self.teacher: nn.Module | None = None

    # ---- teacher --------------------------------------------------------------------------------
    def _teacher(self) -> nn.Module:
        if self.teacher is None:
            self.teacher = frozen_model(self.teacher_spec, self.device)
        return self.teacher

    def setup(self, trainer: Any) -> None:
        super().setup(trainer)
        self._teacher()

    @torch.no_grad()
    def teacher_outputs(self, batch: Mapping[str, Any]) -> Tensor:
        """The teacher's ``(B, C)`` outputs (float32, no autocast: the targets stay exact under bf16 training)."""
        teacher = self._teacher()
        with torch.autocast(self.device.type, enabled=False):
            feats, lengths = model_inputs(teacher, batch)
            return _output(teacher(feats.float(), lengths))

    def student_outputs(self, batch: Mapping[str, Any]) -> Tensor:
        feats, lengths = model_inputs(self.model, batch)
        if self.trim_padding:
            feats = trim_to_longest(feats, lengths)
        return _output(self.model(feats, lengths))

    # ---- loss -----------------------------------------------------------------------------------
    def distill_loss(self, student: Tensor, teacher: Tensor) -> Tensor:
        if student.shape != teacher.shape:
            raise DataError(f"student outputs {tuple(student.shape)} differ from the teacher's "
                            f"{tuple(teacher.shape)}: give the student the teacher's number of outputs "
                            "(model.num_classes)")
        if self.loss_kind == "ccc":
            return ccc_loss(student, teacher)
        if self.loss_kind == "mse":
            return F.mse_loss(student, teacher)
        return soft_label_kl(student, teacher, self.temperature)

    def training_step(self, batch: dict[str, Any], optimizer_idx: int = 0) -> dict[str, Tensor]:
        target = self.teacher_outputs(batch)
        pred = self.student_outputs(batch)
        loss = self.distill_loss(pred, target)
        logs = {"distill": loss.detach()}
        if self.label_weight > 0:
            ce = F.cross_entropy(pred, single_labels(batch, pred.shape[-1], self.device))
            loss = loss + self.label_weight * ce
            logs["ce"] = ce.detach()
        return {"loss": loss, **logs}

    def on_epoch_end(self, epoch: int) -> None:
        if not self.recalibrate_bn:
            return

        def forward(batch: Mapping[str, Any]) -> None:
            batch = {k: v.to(self.device) if isinstance(v, Tensor) else v for k, v in batch.items()}
            self.student_outputs(batch)

        precise_batchnorm(unwrap(self.model), self.trainer.train_loader, forward)

    # ---- validation -----------------------------------------------------------------------------
    def on_validation_start(self) -> None:
        super().on_validation_start()
        self._pred: list[Tensor] = []
        self._target: list[Tensor] = []
        self._labels: list[Tensor] = []

    def validation_step(self, batch: dict[str, Any]) -> None:
        target = self.teacher_outputs(batch)
        pred = self.student_outputs(batch)
        self._pred.append(pred.cpu())
        self._target.append(target.cpu())
        if "label" in batch:
            self._labels.append(single_labels(batch, pred.shape[-1], self.device).cpu())
        self._accumulate({"mse": F.mse_loss(pred, target)}, batch_size(batch))

    def validation_end(self) -> dict[str, float]:
        from ...eval.regression import ccc, pearson

        metrics = super().validation_end()
        if not self._pred:
            return metrics
        pred, target = torch.cat(self._pred), torch.cat(self._target)
        metrics["loss"] = float(self.distill_loss(pred, target)) if pred.shape[0] > 1 else float("nan")
        metrics["ccc"] = float(ccc(pred, target)) if pred.shape[0] > 1 else float("nan")
        try:
            metrics["pearson"] = float(pearson(pred, target))
        except DataError:  # a constant output column (e.g. stale BatchNorm statistics) has no correlation
            metrics["pearson"] = float("nan")
        metrics["agreement"] = float((pred.argmax(-1) == target.argmax(-1)).double().mean())
        if self._labels and len(self._labels) == len(self._pred):
            metrics.update(label_metrics(pred, torch.cat(self._labels)))
        return metrics
