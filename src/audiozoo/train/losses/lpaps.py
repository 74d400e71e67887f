"""LPAPS: the learned perceptual audio patch similarity, SpecVQGAN's spectrogram perceptual loss.

Iashin & Rahtu, "Taming Visually Guided Sound Generation", BMVC 2021, arXiv:2110.08791, Section 3.1: LPIPS
(Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric", CVPR 2018,
arXiv:1801.03924, eq. 1) with a spectrogram classifier (VGGish-ish) in place of the ImageNet VGG. Official code:
``specvqgan/modules/losses/lpaps.py`` (``LPAPS``, ``ScalingLayer``, ``NetLinLayer``, ``normalize_tensor``,
``spatial_average``). Read for the facts; nothing is copied.

For the mels ``x`` and ``y`` (``(B, F, T)`` or ``(B, 1, F, T)``):

1. scale per mel bin: ``(x - shift_f) / scale_f`` (the official ``ScalingLayer``: the classifier's training-set
   statistics mapped to the codec's [-1, 1] range, ``shift = 2 mean - 1``, ``scale = 2 std``);
2. the classifier's feature maps ``phi_l`` (``l = 1..L``; VGGish-ish: relu1_2 ... relu5_3), each unit-normalised
   over channels: ``phi / (||phi||_2 + 1e-10)``;
3. ``d(x, y) = sum_l mean_{h,w} w_l . (phi_l(x) - phi_l(y))^2``, ``w_l`` a 1x1 conv ``C_l -> 1`` without bias after
   dropout (``NetLinLayer``): the learned linear weights.

The feature network is an argument (this module imports no model; the training task resolves it, e.g.
``vggishish_small.TAG``) and is frozen, as are the linear weights by default (the official loss freezes every
LPAPS parameter; its weights come from a checkpoint). Without learned weights ``w_l`` start at ``lin_init`` (1:
LPIPS' uncalibrated "baseline", the plain sum of normalised squared differences over channels).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ...errors import ConfigError

__all__ = ["LPAPS", "normalize_channels", "probe_channels"]


def normalize_channels(x: Tensor, eps: float = 1e-10) -> Tensor:
    """``x (B, C, H, W)`` divided by its L2 norm over channels at every position (official ``normalize_tensor``)."""
    return x / (torch.sqrt(torch.sum(x * x, dim=1, keepdim=True)) + eps)


def _features(net: nn.Module, method: str, x: Tensor) -> list[Tensor]:
    out = getattr(net, method)(x)
    if isinstance(out, Tensor) or not isinstance(out, (list, tuple)):
        raise ConfigError(f"LPAPS: {type(net).__name__}.{method} must return a list of feature maps (B, C, H, W)")
    return list(out)


@torch.no_grad()
def probe_channels(net: nn.Module, n_mels: int, method: str = "feature_maps", frames: int = 32) -> list[int]:
    """Channels of each feature map ``net.<method>`` returns for a ``(1, n_mels, frames)`` input."""
    p = next(iter(net.parameters()), None)
    x = torch.zeros(1, n_mels, frames, device=p.device if p is not None else None,
                    dtype=p.dtype if p is not None else None)
    return [int(f.shape[1]) for f in _features(net, method, x)]


class LPAPS(nn.Module):
    """``lpaps(x, y) -> (B,)``, the perceptual distance of each pair of mels (0 for identical inputs).

    Args:
        feature_net: the spectrogram classifier; ``feature_net.<method>(mel (B, F, T))`` returns its feature maps
            ``[(B, C_l, H_l, W_l)]``. Frozen and kept in eval mode (its dropout/BatchNorm do not train).
        channels: ``C_l`` of each map (:func:`probe_channels` measures them).
        method: the feature-map method (``"feature_maps"`` for :class:`~audiozoo.models.classify.vggishish.
            VGGishish`; ``"forward"`` for a network that returns the list).
        shift, scale: per-mel-bin input scaling ``(F,)`` (or scalars); ``None``: identity.
        use_dropout: dropout (p 0.5) before each linear layer, active only in training mode (official: True).
        lin_init: initial value of every linear weight; ``learn_weights``: let the optimizer train them.
    """

    def __init__(self, feature_net: nn.Module, channels: Sequence[int], *, method: str = "feature_maps",
                 shift: Tensor | Sequence[float] | float | None = None,
                 scale: Tensor | Sequence[float] | float | None = None, use_dropout: bool = True,
                 lin_init: float = 1.0, learn_weights: bool = False):
        super().__init__()
        if not callable(getattr(feature_net, method, None)):
            raise ConfigError(f"LPAPS: {type(feature_net).__name__} has no method {method!r}")
        chans = [int(c) for c in channels]
        if not chans or min(chans) < 1:
            raise ConfigError(f"LPAPS needs one positive channel count per feature map, got {list(channels)}")
        self.net, self.method = feature_net.eval(), method
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.lins = nn.ModuleList()
        for c in chans:
            conv = nn.Conv2d(c, 1, 1, bias=False)
            nn.init.constant_(conv.weight, float(lin_init))
            conv.weight.requires_grad_(bool(learn_weights))
            self.lins.append(nn.Sequential(nn.Dropout() if use_dropout else nn.Identity(), conv))
        for name, v in (("shift", shift), ("scale", scale)):
            t = torch.as_tensor(0.0 if v is None and name == "shift" else 1.0 if v is None else v,
                                dtype=torch.float32)
            if t.ndim > 1:
                raise ConfigError(f"LPAPS {name} must be a scalar or one value per mel bin, got shape {tuple(t.shape)}")
            self.register_buffer(name, t.reshape(1, -1, 1) if t.ndim else t.reshape(1, 1, 1), persistent=False)
        if bool((self.scale == 0).any()):
            raise ConfigError("LPAPS scale must be non-zero in every mel bin")

    def train(self, mode: bool = True) -> LPAPS:
        super().train(mode)
        self.net.eval()  # the classifier stays in inference mode (BatchNorm statistics, dropout)
        return self

    def _scaled(self, x: Tensor) -> Tensor:
        if x.ndim == 4 and x.shape[1] == 1:
            x = x[:, 0]
        if x.ndim != 3:
            raise ConfigError(f"LPAPS expects mels (B, F, T) or (B, 1, F, T), got {tuple(x.shape)}")
        if self.shift.shape[1] not in (1, x.shape[1]):
            raise ConfigError(f"LPAPS scaling has {self.shift.shape[1]} bins, the mel {x.shape[1]}")
        return (x - self.shift.to(x.dtype)) / self.scale.to(x.dtype)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        """``input``, ``target``: mels of the same shape -> distances ``(B,)``."""
        if input.shape != target.shape:
            raise ConfigError(f"LPAPS compares mels of one shape, got {tuple(input.shape)} and {tuple(target.shape)}")
        b = input.shape[0]
        # one pass of the classifier over both (concatenated on the batch axis; the network is in eval mode)
        feats = _features(self.net, self.method, torch.cat([self._scaled(input), self._scaled(target)]))
        if len(feats) != len(self.lins):
            raise ConfigError(f"LPAPS has {len(self.lins)} linear layers; the feature net returned {len(feats)} maps")
        total = input.new_zeros(b, dtype=torch.float32)
        for f, lin in zip(feats, self.lins):
            f = normalize_channels(f.float())
            d = (f[:b] - f[b:]).square()
            total = total + lin(d).mean(dim=(1, 2, 3))
        return total
