"""Self-supervised masked-prediction pretraining: one task for every ``ssl`` model (SSAST, TERA, ...).

The model owns its pretext objective (the ``ssl`` family contract, ``audiozoo.models.contracts.SSLModel``):
``model(features, lengths, **masking) -> {"loss": scalar, other scalars}`` masks or alters its input with the
generators of ``audiozoo.nn.masking`` and scores the prediction as its paper does (SSAST: InfoNCE over the masked
patches + 10 x MSE; TERA: L1 on the altered frames). This task feeds it batches through the model's own front
end and passes the recipe's masking options on, so one recipe section chooses the strategy:

.. code-block:: yaml

    task: {name: ssl, masking: {strategy: cluster, num_masked: 50}}     # SSAST: or strategy: random
    task: {name: ssl, masking: {time_proportion: 0.15, freq_max_fraction: 0.0}}   # TERA without F alteration

Validation uses the model's fixed-seed masks (``eval()`` mode), so its losses compare across epochs.

Iterative pretraining with a frozen second model (BEATs, Sec. 3.2), given by resolver spec (a checkpoint folder or
file, a weight set, or a module) and loaded at ``setup``, in eval mode without gradients, outside the run's
checkpoints, fed through its own front end in float32:

* ``tokenizer:`` — an acoustic tokenizer with ``tokenize(features, lengths) -> labels (B, N)``; its labels go to the
  model's ``forward(..., labels=)`` (BEATs iterations 2+: the encoder predicts the self-distilled tokenizer's labels
  of the masked patches);
* ``teacher:`` — a trained encoder with ``distill_targets(features, lengths) -> (B, N, D)``; those go to the model's
  ``forward(..., targets=)`` (the self-distilled tokenizer learns the previous BEATs encoder's outputs).

.. code-block:: yaml

    task: {name: ssl, teacher: runs/beats_small_iter1/best}              # model: beats_tokenizer_small
    task: {name: ssl, tokenizer: runs/beats_tokenizer_small_iter2/best}  # model: beats_small (iteration 2)
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ...errors import ConfigError
from ._common import frozen_model, model_inputs
from .base import Task, register_task, unwrap

__all__ = ["SSLTask"]

_NOT_OPTIONS = {"self", "features", "lengths", "generator", "labels", "targets"}
# frozen helper -> (the method it must have, the model's forward keyword it feeds)
_HELPERS = {"tokenizer": ("tokenize", "labels"), "teacher": ("distill_targets", "targets")}


@register_task("ssl")
class SSLTask(Task):
    """Pretrain an ``ssl`` model on unlabelled audio with its pretext objective.

    Args:
        masking: keyword options of the model's ``forward`` (its masking / alteration strategy and objective);
            unknown names raise :class:`ConfigError` listing the model's options.
        tokenizer: resolver spec of a frozen tokenizer whose labels the model predicts (see the module docstring).
        teacher: resolver spec of a frozen encoder whose outputs the model distils (see the module docstring).
        optim, schedule: see :class:`Task`.
    """

    monitor = "loss"
    monitor_mode = "min"

    def __init__(self, *, masking: Mapping[str, Any] | None = None, tokenizer: Any = None, teacher: Any = None,
                 optim: Mapping[str, Any] | None = None, schedule: Mapping[str, Any] | None = None) -> None:
        super().__init__(optim, schedule)
        self.helper_specs = {k: v for k, v in (("tokenizer", tokenizer), ("teacher", teacher)) if v is not None}
        self.helpers: dict[str, nn.Module] = {}
        if masking is not None and not isinstance(masking, Mapping):
            raise ConfigError(f"task.masking must be a mapping of the model's masking options, got {masking!r}")
        self.masking = dict(masking or {})
        for k, v in self.masking.items():  # YAML lists -> tuples (cluster_size, time_span)
            if isinstance(v, list):
                self.masking[k] = tuple(v)

    @staticmethod
    def model_options(model: Any) -> list[str]:
        """The masking options a model's pretext ``forward`` takes."""
        params = inspect.signature(unwrap(model).forward).parameters.values()
        return sorted(p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name not in _NOT_OPTIONS)

    def setup(self, trainer: Any) -> None:
        super().setup(trainer)
        model = unwrap(self.model)
        if getattr(model, "family", None) != "ssl" or not callable(getattr(model, "extract_features", None)):
            raise ConfigError(f"the ssl task trains models of the 'ssl' family, got {type(model).__name__}")
        options = self.model_options(model)
        unknown = sorted(set(self.masking) - set(options))
        if unknown:
            raise ConfigError(f"task.masking has option(s) {unknown} that {type(model).__name__} does not take; "
                              f"its options: {options}")
        takes = inspect.signature(model.forward).parameters
        for role, spec in self.helper_specs.items():
            method, keyword = _HELPERS[role]
            if keyword not in takes:
                raise ConfigError(f"task.{role} gives {keyword!r} to the model, but {type(model).__name__}.forward "
                                  f"does not take it")
            if role not in self.helpers:
                helper = frozen_model(spec, self.device)
                if not callable(getattr(helper, method, None)):
                    raise ConfigError(f"task.{role} must be a model with {method}(features, lengths), got "
                                      f"{type(helper).__name__}")
                self.helpers[role] = helper

    @torch.no_grad()
    def helper_inputs(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """The frozen tokenizer's ``labels`` / teacher's ``targets`` of a batch (float32, no autocast)."""
        out = {}
        for role, helper in self.helpers.items():
            method, keyword = _HELPERS[role]
            with torch.autocast(self.device.type, enabled=False):
                feats, lengths = model_inputs(helper, batch)
                out[keyword] = getattr(helper, method)(feats.float(), lengths)
        return out

    def training_step(self, batch: dict[str, Any], optimizer_idx: int = 0) -> dict[str, Tensor]:
        feats, lengths = model_inputs(self.model, batch)
        out = self.model(feats, lengths, **self.masking, **self.helper_inputs(batch))
        if not isinstance(out, Mapping) or "loss" not in out:
            name = type(unwrap(self.model)).__name__
            raise ConfigError(f"{name}.forward must return a dict with 'loss' (the ssl family contract)")
        return dict(out)
