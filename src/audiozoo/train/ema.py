"""Exponential moving average of model weights.

``shadow <- decay * shadow + (1 - decay) * weights`` after every optimizer step, over every floating
point entry of the state dict (parameters and float buffers such as BatchNorm statistics, as timm's
``ModelEmaV2`` does); integer buffers (``num_batches_tracked``) are copied. A small class rather than
``torch.optim.swa_utils.AveragedModel`` because its state must be a plain tensor dict so that it can be
checkpointed with safetensors and evaluated by swapping weights in place (no second model copy on the
device is kept outside ``shadow``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError


class EMA:
    """EMA of ``model``'s state dict.

    Args:
        model: the (unwrapped) module whose weights are averaged.
        decay: in (0, 1); e.g. 0.999 averages over roughly the last 1000 steps.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < float(decay) < 1.0:
            raise ConfigError(f"ema_decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.num_updates = 0
        self.shadow: dict[str, torch.Tensor] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the current weights of ``model`` into the average."""
        self.num_updates += 1
        weight = 1.0 - self.decay
        for k, v in model.state_dict().items():
            s = self.shadow[k]
            if s.is_floating_point():
                s.lerp_(v.detach().to(s.dtype), weight)
            else:
                s.copy_(v)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged weights (a full state dict of the model)."""
        return dict(self.shadow)

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        missing = sorted(set(self.shadow) - set(state))
        if missing:
            raise CheckpointError(f"EMA state lacks {missing[:6]}")
        for k, s in self.shadow.items():
            s.copy_(state[k])

    @contextmanager
    def swapped_into(self, model: nn.Module) -> Iterator[nn.Module]:
        """Temporarily load the averaged weights into ``model`` (e.g. for validation)."""
        backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield model
        finally:
            model.load_state_dict(backup)
