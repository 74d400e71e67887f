"""Melception: Inception-v3 on 1-channel mel spectrograms, the classifier behind SpecVQGAN's FID and MKL.

Paper: Vladimir Iashin, Esa Rahtu, "Taming Visually Guided Sound Generation", BMVC 2021, arXiv:2110.08791,
Sec. 4 ("we train an Inception-v3-like classifier on VGGSound mel spectrograms, Melception").
Official code: https://github.com/v-iashin/SpecVQGAN (MIT): ``evaluation/feature_extractors/melception.py``
(evaluation, features ``2048`` / ``logits``) and ``specvqgan/modules/losses/vggishish/train_melception.py``
(training); both subclass torchvision's ``Inception3`` (Szegedy et al., "Rethinking the Inception
Architecture", CVPR 2016). The same evaluation class is vendored in the PyPI package ``audioldm-eval``.

Architecture = torchvision ``Inception3`` (module names kept, so the official checkpoint's ``"model"`` state
dict loads through :func:`checkpoint_filter_fn`) with SpecVQGAN's two changes: ``Conv2d_1a_3x3`` takes one
channel, and ``maxpool1``/``maxpool2`` are identities (an 80-row mel is far smaller than a 299-px image).
Input ``(B, 80, L)`` (mels x frames); the 2048-d clip embedding is the global average of ``Mixed_7c``.

Front end: :class:`audiozoo.dsp.SpecVQGANMel` (22.05 kHz, hop 256, 80 mels 125-7600 Hz, ``[0, 1]`` log-mel)
standardised per mel bin with the VGGSound training statistics for the paper config (SpecVQGAN's
``StandardNormalizeAudio``), with the training set's own statistics for models trained here.

Departures:
- ``AuxLogits`` is left out by default (``aux_logits=False``): it is unused at evaluation, and SpecVQGAN's
  training loop computes the auxiliary loss and then overwrites it (``loss = criterion(outputs, ...)``), so
  the official auxiliary head never trains. ``aux_logits=True`` builds it (for strict checkpoint loading);
  :meth:`Melception.aux_forward` runs it.
- ``width`` scales every convolution's output channels (1.0 = the paper); small configs for CPU training.
- ``lengths``: the global average pool ignores time steps past each item's valid length (scaled through
  the network's strides), so zero-padded batch items pool like lone ones up to the receptive field; with
  ``lengths=None`` it is the official pooling. Inputs shorter than 23 frames (the shortest the valid
  convolutions accept) are zero-padded on the time axis first (the official model fails there).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...config import build_config
from ...dsp.specvqgan import VGGSOUND_MEL_MEANS, VGGSOUND_MEL_STDS, SpecVQGANMel
from ...errors import AudioError, ConfigError
from ...registry import WeightSet, register_model
from ..contracts import ClassifierModel

MIN_FRAMES = 23  # 1a (k3 s2), 2a (k3), 4a (k3), 6a (k3 s2), 7a (k3 s2), all unpadded: 23 -> 1 step


@dataclass
class MelceptionConfig:
    num_classes: int = 309  # VGGSound classes of the official checkpoint
    n_mels: int = 80
    width: float = 1.0  # multiplier of every convolution's output channels (1.0: Inception-v3)
    aux_logits: bool = False
    dropout: float = 0.5  # before fc (Inception3)
    # front end (SpecVQGAN's mel, dsp.SpecVQGANMel) and its per-bin standardisation (None: [0, 1] mel)
    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    f_min: float = 125.0
    f_max: float = 7600.0
    norm_means: tuple[float, ...] | None = VGGSOUND_MEL_MEANS
    norm_stds: tuple[float, ...] | None = VGGSOUND_MEL_STDS


class MelceptionFrontend(SpecVQGANMel):
    """Waveform ``(B, T)`` at 22.05 kHz -> standardised SpecVQGAN log-mel ``(B, n_mels, T // hop + 1)``."""

    config_class = MelceptionConfig
    config_fields = ("sample_rate", "n_fft", "hop_length", "n_mels", "f_min", "f_max", "norm_means", "norm_stds")

    def __init__(self, config: MelceptionConfig):
        c = config
        super().__init__(c.sample_rate, c.n_fft, c.hop_length, c.n_mels, c.f_min, c.f_max,
                         means=c.norm_means, stds=c.norm_stds)
        self.config = config


# --------------------------------------------------------------------------- Inception-v3 blocks
class BasicConv2d(nn.Module):
    """Conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU, torchvision's ``BasicConv2d`` (names ``conv``/``bn``)."""

    def __init__(self, cin: int, cout: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg3(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)  # count_include_pad (torchvision default)


class InceptionA(nn.Module):
    """35x35 module (Fig. 5): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avg-pool-1x1 -> ``(B, 64w+64w+96w+pool, H, W)``."""

    def __init__(self, cin: int, pool_features: int, w):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, w(64), 1)
        self.branch5x5_1 = BasicConv2d(cin, w(48), 1)
        self.branch5x5_2 = BasicConv2d(w(48), w(64), 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, w(64), 1)
        self.branch3x3dbl_2 = BasicConv2d(w(64), w(96), 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(w(96), w(96), 3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool_features, 1)
        self.out_channels = w(64) + w(64) + w(96) + pool_features

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch1x1(x)
        b = self.branch5x5_2(self.branch5x5_1(x))
        c = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([a, b, c, self.branch_pool(_avg3(x))], 1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17 (Fig. 10): 3x3/2 | 1x1-3x3-3x3/2 | max-pool/2."""

    def __init__(self, cin: int, w):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, w(384), 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, w(64), 1)
        self.branch3x3dbl_2 = BasicConv2d(w(64), w(96), 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(w(96), w(96), 3, stride=2)
        self.out_channels = w(384) + w(96) + cin

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch3x3(x)
        b = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([a, b, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    """17x17 module with factorised 7x7 convolutions (Fig. 6): 1x1 | 1x7-7x1 | (7x1-1x7) x 2 | pool-1x1."""

    def __init__(self, cin: int, c7: int, w):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, w(192), 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, w(192), (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, w(192), (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, w(192), 1)
        self.out_channels = 4 * w(192)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch1x1(x)
        b = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        c = self.branch7x7dbl_1(x)
        for k in range(2, 6):
            c = getattr(self, f"branch7x7dbl_{k}")(c)
        return torch.cat([a, b, c, self.branch_pool(_avg3(x))], 1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | max-pool/2."""

    def __init__(self, cin: int, w):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, w(192), 1)
        self.branch3x3_2 = BasicConv2d(w(192), w(320), 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, w(192), 1)
        self.branch7x7x3_2 = BasicConv2d(w(192), w(192), (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(w(192), w(192), (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(w(192), w(192), 3, stride=2)
        self.out_channels = w(320) + w(192) + cin

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch3x3_2(self.branch3x3_1(x))
        b = self.branch7x7x3_1(x)
        for k in range(2, 5):
            b = getattr(self, f"branch7x7x3_{k}")(b)
        return torch.cat([a, b, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """8x8 module with expanded filter banks (Fig. 7): 1x1 | 1x1-(1x3, 3x1) | 1x1-3x3-(1x3, 3x1) | pool-1x1."""

    def __init__(self, cin: int, w):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, w(320), 1)
        self.branch3x3_1 = BasicConv2d(cin, w(384), 1)
        self.branch3x3_2a = BasicConv2d(w(384), w(384), (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(w(384), w(384), (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, w(448), 1)
        self.branch3x3dbl_2 = BasicConv2d(w(448), w(384), 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(w(384), w(384), (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(w(384), w(384), (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, w(192), 1)
        self.out_channels = w(320) + 4 * w(384) + w(192)

    def forward(self, x: Tensor) -> Tensor:
        a = self.branch1x1(x)
        b = self.branch3x3_1(x)
        b = torch.cat([self.branch3x3_2a(b), self.branch3x3_2b(b)], 1)
        c = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        c = torch.cat([self.branch3x3dbl_3a(c), self.branch3x3dbl_3b(c)], 1)
        return torch.cat([a, b, c, self.branch_pool(_avg3(x))], 1)


class InceptionAux(nn.Module):
    """Auxiliary head on ``Mixed_6e``: avg-pool 5/3 -> 1x1 (128) -> 5x5 (768) -> global pool -> fc."""

    def __init__(self, cin: int, num_classes: int, w):
        super().__init__()
        self.conv0 = BasicConv2d(cin, w(128), 1)
        self.conv1 = BasicConv2d(w(128), w(768), 5)
        self.conv1.stddev = 0.01  # torchvision's init of this head
        self.fc = nn.Linear(w(768), num_classes)
        self.fc.stddev = 0.001

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(self.conv0(F.avg_pool2d(x, kernel_size=5, stride=3)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# --------------------------------------------------------------------------- model
def _valid_time(t: Tensor) -> Tensor:
    """Valid time steps after the stem and the two grid reductions (the unpadded convs), from input frames."""
    t = (t - 3) // 2 + 1  # Conv2d_1a_3x3 (stride 2)
    t = t - 2 - 2  # Conv2d_2a_3x3, Conv2d_4a_3x3
    t = (t - 3) // 2 + 1  # Mixed_6a
    return (t - 3) // 2 + 1  # Mixed_7a


class Melception(ClassifierModel):
    """Melception: ``forward(features (B, n_mels, L), lengths (B,) | None) -> logits (B, num_classes)``.

    ``features`` are :attr:`frontend`'s standardised log-mels. :meth:`forward_features` gives the pooled
    embedding ``(B, embed_dim)`` (2048 at ``width=1``: SpecVQGAN's FID features ``"2048"``); the logits are
    its KL features (``"logits"``).
    """

    def __init__(self, config: MelceptionConfig):
        super().__init__()
        c = self.config = config
        if not c.width > 0:
            raise ConfigError(f"MelceptionConfig.width must be > 0, got {c.width}")
        if c.n_mels < MIN_FRAMES:
            raise ConfigError(f"Melception needs n_mels >= {MIN_FRAMES} (its unpadded convolutions), got {c.n_mels}")
        self.num_classes = c.num_classes
        self.frontend = MelceptionFrontend(c)

        def w(n: int) -> int:
            return max(1, int(round(n * c.width)))

        self.Conv2d_1a_3x3 = BasicConv2d(1, w(32), 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(w(32), w(32), 3)
        self.Conv2d_2b_3x3 = BasicConv2d(w(32), w(64), 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(w(64), w(80), 1)
        self.Conv2d_4a_3x3 = BasicConv2d(w(80), w(192), 3)
        self.Mixed_5b = InceptionA(w(192), w(32), w)
        self.Mixed_5c = InceptionA(self.Mixed_5b.out_channels, w(64), w)
        self.Mixed_5d = InceptionA(self.Mixed_5c.out_channels, w(64), w)
        self.Mixed_6a = InceptionB(self.Mixed_5d.out_channels, w)
        cin = self.Mixed_6a.out_channels
        for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
            self.add_module(name, InceptionC(cin, w(c7), w))
            cin = getattr(self, name).out_channels
        self.AuxLogits = InceptionAux(cin, c.num_classes, w) if c.aux_logits else None
        self.Mixed_7a = InceptionD(cin, w)
        self.Mixed_7b = InceptionE(self.Mixed_7a.out_channels, w)
        self.Mixed_7c = InceptionE(self.Mixed_7b.out_channels, w)
        self.embed_dim = self.Mixed_7c.out_channels
        self.fc = nn.Linear(self.embed_dim, c.num_classes)
        if not self.fc.weight.is_meta:
            _init_inception_(self)

    def _check(self, features: Tensor) -> None:
        if features.ndim != 3 or features.shape[1] != self.config.n_mels:
            raise AudioError(f"Melception expects standardised log-mels (B, {self.config.n_mels}, L) as its frontend "
                             f"returns them, got shape {tuple(features.shape)}")

    def _to_6e(self, features: Tensor) -> Tensor:
        """``(B, n_mels, L)`` -> ``Mixed_6e`` output ``(B, 768w, H', L')`` (time padded to 23 frames first)."""
        x = features.unsqueeze(1)
        if x.shape[-1] < MIN_FRAMES:
            x = F.pad(x, (0, MIN_FRAMES - x.shape[-1]))
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # maxpool1: identity (SpecVQGAN)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # maxpool2: identity
        for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
            x = getattr(self, name)(x)
        return x

    def forward_features(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``(B, n_mels, L)`` -> pooled embedding ``(B, embed_dim)`` (global average of ``Mixed_7c``)."""
        self._check(features)
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(self._to_6e(features))))  # (B, C, H'', L'')
        if lengths is None:
            return x.mean(dim=(2, 3))
        valid = _valid_time(lengths.to(x.device).long()).clamp(min=1, max=x.shape[-1])
        mask = (torch.arange(x.shape[-1], device=x.device)[None, :] < valid[:, None]).to(x.dtype)  # (B, L'')
        return (x.sum(2) * mask[:, None, :]).sum(-1) / (valid.to(x.dtype)[:, None] * x.shape[2])

    def forward_head(self, embedding: Tensor) -> Tensor:
        """``(B, embed_dim)`` -> logits ``(B, num_classes)`` (dropout, fc)."""
        return self.fc(F.dropout(embedding, p=self.config.dropout, training=self.training))

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.forward_head(self.forward_features(features, lengths))

    def aux_forward(self, features: Tensor) -> Tensor:
        """Auxiliary logits ``(B, num_classes)`` from ``Mixed_6e`` (only with ``aux_logits=True``)."""
        if self.AuxLogits is None:
            raise ConfigError("this Melception has no auxiliary head (build it with aux_logits=True)")
        self._check(features)
        return self.AuxLogits(self._to_6e(features))

    def export_length(self, length: int | None) -> int:
        return int(length or 64)

    def reset_classifier(self, num_classes: int) -> None:
        self.config.num_classes = self.num_classes = num_classes
        self.fc = nn.Linear(self.embed_dim, num_classes).to(self.fc.weight.device)
        _init_inception_(self.fc)
        if self.AuxLogits is not None:
            fc = nn.Linear(self.AuxLogits.fc.in_features, num_classes).to(self.fc.weight.device)
            fc.stddev = 0.001
            _init_inception_(fc)
            self.AuxLogits.fc = fc


def _init_inception_(module: nn.Module) -> None:
    # torchvision Inception3(init_weights=True): truncated normal (std 0.1, or the layer's `stddev`, cut at
    # +-2) for convolutions and linear layers, BatchNorm weight 1 / bias 0.
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, mean=0.0, std=float(getattr(m, "stddev", 0.1)), a=-2.0, b=2.0)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# --------------------------------------------------------------------------- checkpoint converter
def checkpoint_filter_fn(state: dict[str, Tensor], model: Melception) -> dict[str, Tensor]:
    """Map the official checkpoint (``melception-21-05-10T09-28-40.pt``: ``{"model": state_dict}``) to audiozoo.

    Names are torchvision's and are kept. ``AuxLogits.*`` is dropped unless the model has the head, and a
    DataParallel ``module.`` prefix and BatchNorm ``num_batches_tracked`` counters of absent layers with it.
    """
    if "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    out: dict[str, Tensor] = {}
    for k, v in state.items():
        if k.startswith("module."):
            k = k[len("module."):]
        if k.startswith("AuxLogits.") and model.AuxLogits is None:
            continue
        out[k] = v
    return out


# --------------------------------------------------------------------------- registered variants
_PAPER = dict(
    family="classify",
    paper="Taming Visually Guided Sound Generation (Iashin & Rahtu, BMVC 2021): Melception",
    arxiv="2110.08791",
    official_repo="https://github.com/v-iashin/SpecVQGAN",
    license="MIT",
    converter=checkpoint_filter_fn,
)
_TINY = dict(width=0.0625, n_mels=32, num_classes=5, norm_means=None, norm_stds=None)


def _melception(base: dict, overrides: dict) -> Melception:
    return Melception(build_config(MelceptionConfig, base, **overrides))


@register_model(params=22_418_133, params_source="torchvision Inception3 (23,834,568 without AuxLogits at 1000 "
                "classes and 3 input channels) with SpecVQGAN's 1-channel Conv2d_1a_3x3 and 309 VGGSound "
                "classes; with AuxLogits (aux_logits=True, in the official checkpoint) 25,213,450",
                verified="AP", tiny=_TINY, **_PAPER)
def melception(**overrides) -> Melception:
    """Canonical Melception (VGGSound, 309 classes, 80 mels at 22.05 kHz, 2048-d features)."""
    return _melception({}, overrides)


@register_model(params=1_373_202, params_source="computed from this config (width 0.25 of Melception: 512-d "
                "features), 10 classes", verified="AU", tiny=_TINY, weights={
                    "project8": WeightSet(
                        "8 coarse classes of project data (speech real/synthetic, music ensemble/solo, drums, "
                        "instrument samples, noise, tones): the default classifier of audiozoo.eval.generation's "
                        "FID/MKL, NOT comparable to VGGSound-Melception scores; 81.0 % on 274 held-out clips",
                        sha256="e07f144d6d9a31a90cab0fd42cb4fbee810a7b8f5428e88c29e56ff865faa35e",
                        recipe="recipes/classify/melception_small.yaml", commit="b27c79b",
                        license="CC-BY-SA-4.0 (FSDD in the training data; the rest CC0, generated or CC-BY-4.0)",
                        metrics={"held_out": "274 test clips, 8 classes", "accuracy": 0.810, "macro_f1": 0.715,
                                 "majority_accuracy": 0.146, "logreg_mean_std_logmel_accuracy": 0.803})},
                **_PAPER)
def melception_small(**overrides) -> Melception:
    """Quarter-width Melception for CPU training (512-d features); 10 classes by default."""
    return _melception(dict(width=0.25, num_classes=10), overrides)
