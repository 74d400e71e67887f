"""Audio classification: cross-entropy (single label) or BCE (multi-label), label smoothing, mixup.

Batches are the ``audiozoo.data`` collate output ``{"audio": (B, T), "lengths": (B,), "label": ...}``
(or carry precomputed ``"features": (B, F, L)``). The model's parameter-free ``frontend`` turns audio
into features outside autocast (a log-mel in bf16 would lose ~3 significant digits) — either
``frontend(wav) -> (B, F, L)`` or ``frontend(wav, lengths) -> ((B, F, L), frame lengths (B,))`` — then
``model(features, lengths) -> logits (B, C)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import ConfigError, DataError
from ...eval.classification import macro_f1, mean_average_precision
from ._common import feature_lengths, label_metrics, model_inputs, single_labels
from .base import Task, batch_size, register_task

__all__ = ["ClassificationTask", "feature_lengths", "macro_f1", "mean_average_precision"]


@register_task("classify")
class ClassificationTask(Task):
    """Train a classifier.

    Args:
        multi_label: BCE-with-logits over (B, C) multi-hot targets (a (B,) index label is one-hot
            encoded); else softmax cross-entropy over (B,) class indices.
        label_smoothing: ε of Szegedy et al. 2016 (targets (1-ε)·y + ε/C; for BCE (1-ε)·y + ε/2).
        mixup: Beta(α, α) parameter of mixup (Zhang et al. 2018); 0 disables. Waveforms are mixed
            before the frontend, as in the AST and PANNs training code.
        mixup_prob: probability that a batch is mixed (AST mixes with probability 0.5).
        threshold: decision threshold of multi-label F1.
        specaugment: training-time feature masking (Park et al. 2019), keyword arguments of
            :class:`audiozoo.dsp.SpecAugment` (``freq_masks``, ``freq_width``, ``time_masks``,
            ``time_width``); AST trains with it (``freqm``/``timem`` in its recipes).
        time_shift: roll each training item's features by a random number of frames in
            ``[-time_shift, time_shift]`` (the AST code's ``torch.roll`` augmentation).
        optim, schedule: see :class:`Task`.
    """

    monitor = "accuracy"
    monitor_mode = "max"
    uses_labels = True

    def __init__(self, *, multi_label: bool = False, label_smoothing: float = 0.0, mixup: float = 0.0,
                 mixup_prob: float = 1.0, threshold: float = 0.5, specaugment: Mapping[str, Any] | None = None,
                 time_shift: int = 0, optim: Mapping[str, Any] | None = None,
                 schedule: Mapping[str, Any] | None = None) -> None:
        super().__init__(optim, schedule)
        from ...dsp.augment import SpecAugment

        try:
            self.specaugment = SpecAugment(**dict(specaugment)) if specaugment else None
        except TypeError as e:
            raise ConfigError(f"task.specaugment: {e}") from e
        if time_shift < 0:
            raise ConfigError(f"time_shift must be >= 0 frames, got {time_shift}")
        self.time_shift = int(time_shift)
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if mixup < 0.0:
            raise ConfigError(f"mixup (Beta alpha) must be >= 0, got {mixup}")
        if not 0.0 <= mixup_prob <= 1.0:
            raise ConfigError(f"mixup_prob must be in [0, 1], got {mixup_prob}")
        self.multi_label = bool(multi_label)
        self.label_smoothing = float(label_smoothing)
        self.mixup = float(mixup)
        self.mixup_prob = float(mixup_prob)
        self.threshold = float(threshold)
        if self.multi_label:
            self.monitor = "mAP"

    # ---- pieces ---------------------------------------------------------------------------------
    def inputs(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor | None]:
        """Model inputs ``(features (B, F, L), lengths (B,) | None)`` of a batch (the model's front end)."""
        return model_inputs(self.model, batch)

    def targets(self, batch: Mapping[str, Any], num_classes: int) -> Tensor:
        """(B,) long class indices, or (B, C) float multi-hot when ``multi_label``."""
        if "label" not in batch:
            raise DataError(f"a classification batch needs 'label'; got keys {sorted(batch)}")
        y = batch["label"]
        if not isinstance(y, Tensor):
            y = torch.as_tensor(y, device=self.device)
        if self.multi_label:
            if y.ndim == 1:
                y = F.one_hot(y.long(), num_classes)
            return y.float()
        if y.ndim != 1:
            raise DataError(f"single-label classification needs (B,) labels, got shape {tuple(y.shape)}; "
                            "set task.multi_label: true for multi-hot targets")
        return single_labels({"label": y}, num_classes, self.device)

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        logits = logits.float()
        if self.multi_label:
            t = target * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
            return F.binary_cross_entropy_with_logits(logits, t)
        return F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)

    def _mix(self, batch: Mapping[str, Any]) -> tuple[dict[str, Any], Tensor | None, float]:
        if self.mixup <= 0.0 or float(torch.rand(())) >= self.mixup_prob:
            return dict(batch), None, 1.0
        lam = float(torch.distributions.Beta(self.mixup, self.mixup).sample())
        key = "features" if "features" in batch else "audio"
        x = batch[key]
        perm = torch.randperm(x.shape[0]).to(x.device)
        out = dict(batch)
        out[key] = lam * x + (1.0 - lam) * x[perm]
        for lk in ("lengths", "feature_lengths"):
            if isinstance(batch.get(lk), Tensor):
                out[lk] = torch.maximum(batch[lk], batch[lk][perm])
        return out, perm, lam

    def augment(self, feats: Tensor, lengths: Tensor | None) -> Tensor:
        """Training-time feature augmentation (global torch RNG, so resumed runs replay it exactly)."""
        if self.time_shift:
            shifts = torch.randint(-self.time_shift, self.time_shift + 1, (feats.shape[0],)).tolist()
            feats = torch.stack([torch.roll(f, s, dims=-1) for f, s in zip(feats, shifts)])
        if self.specaugment is not None:
            feats = self.specaugment.train()(feats, lengths)
        return feats

    # ---- steps ----------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], optimizer_idx: int = 0) -> dict[str, Tensor]:
        mixed, perm, lam = self._mix(batch)
        feats, lengths = self.inputs(mixed)
        feats = self.augment(feats, lengths)
        logits = self.model(feats, lengths)
        y = self.targets(batch, logits.shape[-1])
        if perm is None:
            loss = self.loss(logits, y)
        elif self.multi_label:
            loss = self.loss(logits, lam * y + (1.0 - lam) * y[perm])
        else:  # = cross-entropy against the mixed (smoothed) one-hot targets
            loss = lam * self.loss(logits, y) + (1.0 - lam) * self.loss(logits, y[perm])
        out = {"loss": loss}
        if perm is None and not self.multi_label:
            out["accuracy"] = (logits.argmax(-1) == y).float().mean().detach()
        return out

    def on_validation_start(self) -> None:
        super().on_validation_start()
        self._scores: list[Tensor] = []
        self._labels: list[Tensor] = []

    def validation_step(self, batch: dict[str, Any]) -> None:
        feats, lengths = self.inputs(batch)
        logits = self.model(feats, lengths).float()
        y = self.targets(batch, logits.shape[-1])
        self._accumulate({"loss": self.loss(logits, y)}, batch_size(batch))
        scores = torch.sigmoid(logits) if self.multi_label else logits
        self._scores.append(scores.cpu())
        self._labels.append(y.cpu())

    def validation_end(self) -> dict[str, float]:
        metrics = super().validation_end()
        if not self._scores:
            return metrics
        scores, labels = torch.cat(self._scores), torch.cat(self._labels)
        if self.multi_label:
            metrics["mAP"] = mean_average_precision(scores, labels)
            pred = scores >= self.threshold
            t = labels > 0.5
            tp = (pred & t).sum(0).double()
            denom = (2 * tp + (pred & ~t).sum(0) + (~pred & t).sum(0)).double()
            used = denom > 0  # classes never positive nor predicted have no F1
            metrics["macro_f1"] = float((2 * tp[used] / denom[used]).mean()) if used.any() else 0.0
        else:
            metrics.update(label_metrics(scores, labels))
        return metrics
