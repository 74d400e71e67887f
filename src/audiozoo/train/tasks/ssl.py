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
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import Tensor

from ...errors import ConfigError
from ._common import model_inputs
from .base import Task, register_task, unwrap

__all__ = ["SSLTask"]

_NOT_OPTIONS = {"self", "features", "lengths", "generator"}


@register_task("ssl")
class SSLTask(Task):
    """Pretrain an ``ssl`` model on unlabelled audio with its pretext objective.

    Args:
        masking: keyword options of the model's ``forward`` (its masking / alteration strategy and objective);
            unknown names raise :class:`ConfigError` listing the model's options.
        optim, schedule: see :class:`Task`.
    """

    monitor = "loss"
    monitor_mode = "min"

    def __init__(self, *, masking: Mapping[str, Any] | None = None, optim: Mapping[str, Any] | None = None,
                 schedule: Mapping[str, Any] | None = None) -> None:
        super().__init__(optim, schedule)
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

    def training_step(self, batch: dict[str, Any], optimizer_idx: int = 0) -> dict[str, Tensor]:
        feats, lengths = model_inputs(self.model, batch)
        out = self.model(feats, lengths, **self.masking)
        if not isinstance(out, Mapping) or "loss" not in out:
            name = type(unwrap(self.model)).__name__
            raise ConfigError(f"{name}.forward must return a dict with 'loss' (the ssl family contract)")
        return dict(out)
