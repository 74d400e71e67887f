"""ConvNeXt-Tiny-AT: the ConvNeXt audio tagger used as CoNeTTE's encoder.

Papers: Thomas Pellegrini, Ismail Khalfaoui-Hassani, Etienne Labbé, Timothée Masquelier, "Adapting a
ConvNeXt model to audio classification on AudioSet", Interspeech 2023, arXiv:2306.00830; used as the audio
encoder of CoNeTTE (Labbé, Pellegrini & Pinquier, IEEE/ACM TASLP 2024, arXiv:2309.00454). Architecture:
Liu et al., "A ConvNet for the 2020s", CVPR 2022, arXiv:2201.03545.
Official code: https://github.com/topel/audioset-convnext-inf (MIT), ``pytorch/convnext.py::convnext_tiny``;
the CoNeTTE copy is ``Labbeti/conette-audio-captioning`` ``src/conette/nn/encoders/convnext.py``.

Front-end (the PANNs one with 224 mel bins, as the official model builds it with torchlibrosa): 32 kHz,
Hann window 1024, hop 320, centred frames with reflect padding, power spectrogram, 224 Slaney mel bins
(50-14000 Hz), ``power_to_db`` with ref 1.0, amin 1e-10, no top_db. It has no learned parameters and
lives in ``model.frontend``; ``bn0`` (BatchNorm over the mel bins) is the model's first layer.

Network (official ``convnext_tiny``): bn0 -> stem ``Conv2d(1, 96, kernel=(18, 4), stride=(18, 4),
padding=(9, 0))`` on the ``(time, mel)`` plane (1001 frames x 224 bins -> 56 x 56, "after_stem_dim=56")
+ channels-first LayerNorm -> 4 stages of ConvNeXt blocks (depths 3/3/9/3, dims 96/192/384/768; block =
depthwise 7x7 -> LayerNorm -> Linear 4x -> GELU -> Linear -> layer scale (1e-6) -> drop path) with
LayerNorm + 2x2 stride-2 convs between stages -> mean over frequency -> max + mean over time -> LayerNorm
-> ``head_audioset`` Linear(768, 527). Drop-path rate 0.1 (linear in depth), as the official factory.

Outputs: logits; ``sigmoid(logits)`` is the official ``clipwise_output`` (AudioSet BCE training).
:meth:`ConvNeXtAT.forward_frames` returns CoNeTTE's ``frame_embs`` ``(B, 768, L')`` (the map after the
frequency mean, before time pooling) with CoNeTTE's ``frame_embs_lens`` rule.

Departures (none for full-length, unbatched inputs with ``lengths=None``):
- ``lengths``: time max/mean pooling ignores frames past each item's length (as :mod:`.panns`); the
  official code pools over every frame, which this model does when ``lengths`` is None.
- Inputs too short for the stem + three 2x downsamplings (fewer than 126 frames for the canonical stem)
  are zero-padded on the time axis after bn0 instead of failing inside a convolution.
- SpecAugment, mixup and speed perturbation are training-time augmentations (the training task's job).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...config import build_config
from ...dsp import DecibelMelFrontend
from ...errors import AudioError, ConfigError
from ...nn import ChannelLayerNorm, DropPath
from ...registry import register_model
from ..contracts import ClassifierModel


@dataclass
class ConvNeXtATConfig:
    num_classes: int = 527
    n_mels: int = 224
    depths: tuple[int, ...] = (3, 3, 9, 3)
    dims: tuple[int, ...] = (96, 192, 384, 768)
    # Audio stem on the (time, mel) plane: official ``after_stem_dim=[56]`` choice.
    stem_kernel: tuple[int, int] = (18, 4)
    stem_stride: tuple[int, int] = (18, 4)
    stem_padding: tuple[int, int] = (9, 0)
    kernel_size: int = 7  # depthwise conv of the blocks
    mlp_ratio: int = 4
    drop_path_rate: float = 0.1  # official convnext_tiny default
    layer_scale_init_value: float = 1e-6
    head_init_scale: float = 1.0
    eps: float = 1e-6
    # front-end (PANNs-style log-mel, 224 bins)
    sample_rate: int = 32000
    n_fft: int = 1024
    hop_length: int = 320
    f_min: float = 50.0
    f_max: float = 14000.0
    amin: float = 1e-10


class ConvNeXtFrontend(DecibelMelFrontend):
    """Waveform ``(B, T)`` at 32 kHz -> log-mel ``(B, n_mels, L)`` in dB, ``L = T // hop + 1``, and lengths.

    torchlibrosa ``LogmelFilterBank(ref=1.0, amin=1e-10, top_db=None)``, as the official model.
    """

    config_class = ConvNeXtATConfig
    config_fields = ("sample_rate", "n_fft", "hop_length", "n_mels", "f_min", "f_max", "amin")

    def __init__(self, config: ConvNeXtATConfig):
        c = config
        super().__init__(c.sample_rate, c.n_fft, c.hop_length, c.n_mels, c.f_min, c.f_max, c.amin)
        self.config = config


class ConvNeXtBlock(nn.Module):
    """``(B, C, T, F) -> (B, C, T, F)``: dwconv -> LN -> Linear(4C) -> GELU -> Linear(C) -> gamma -> drop path.

    Names (``dwconv``, ``norm``, ``pwconv1``, ``pwconv2``, ``gamma``) are the official ones.
    """

    def __init__(self, dim: int, drop_path: float, layer_scale: float, kernel_size: int = 7, mlp_ratio: int = 4,
                 eps: float = 1e-6):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.pwconv1 = nn.Linear(dim, mlp_ratio * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(mlp_ratio * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale)) if layer_scale > 0 else None
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        h = self.dwconv(x).permute(0, 2, 3, 1)  # channels last: the 1x1 convs are Linear layers
        h = self.pwconv2(self.act(self.pwconv1(self.norm(h))))
        if self.gamma is not None:
            h = self.gamma * h
        return x + self.drop_path(h.permute(0, 3, 1, 2))


def _trunc_normal_init_(module: nn.Module) -> None:
    # Official ``_init_weights``: truncated normal (std 0.02) weights, zero bias, for every conv/linear.
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ConvNeXtAT(ClassifierModel):
    """ConvNeXt audio tagger: ``forward(features (B, n_mels, L), lengths (B,) | None) -> logits (B, C)``.

    :meth:`forward_features` gives the clip embedding ``(B, dims[-1])`` (after the final LayerNorm, the
    head's input); :meth:`forward_frames` gives the frame embeddings ``(B, dims[-1], L')`` for a captioner.
    """

    def __init__(self, config: ConvNeXtATConfig):
        super().__init__()
        c = self.config = config
        if len(c.depths) != len(c.dims) or not c.depths:
            raise ConfigError(f"ConvNeXtATConfig: depths {c.depths} and dims {c.dims} must have the same length")
        self.num_classes = c.num_classes
        self.frontend = ConvNeXtFrontend(c)
        self.bn0 = nn.BatchNorm2d(c.n_mels)
        self.downsample_layers = nn.ModuleList()
        self.downsample_layers.append(nn.Sequential(
            nn.Conv2d(1, c.dims[0], c.stem_kernel, c.stem_stride, c.stem_padding),
            ChannelLayerNorm(c.dims[0], eps=c.eps),
        ))
        for i in range(len(c.dims) - 1):
            self.downsample_layers.append(nn.Sequential(
                ChannelLayerNorm(c.dims[i], eps=c.eps), nn.Conv2d(c.dims[i], c.dims[i + 1], 2, stride=2),
            ))
        total = sum(c.depths)
        # Linear drop-path schedule (torch.linspace in the official code; plain Python builds on `meta`).
        rates = [c.drop_path_rate * i / (total - 1) if total > 1 else 0.0 for i in range(total)]
        self.stages = nn.ModuleList()
        k = 0
        for depth, dim in zip(c.depths, c.dims):
            self.stages.append(nn.Sequential(*[
                ConvNeXtBlock(dim, rates[k + j], c.layer_scale_init_value, c.kernel_size, c.mlp_ratio, c.eps)
                for j in range(depth)
            ]))
            k += depth
        self.norm = nn.LayerNorm(c.dims[-1], eps=c.eps)
        self.head_audioset = nn.Linear(c.dims[-1], c.num_classes)
        self.embed_dim = c.dims[-1]
        # Shortest time axis that survives the stem and the 2x downsamplings (>= 1 frame at the end).
        st, kt, pt = c.stem_stride[0], c.stem_kernel[0], c.stem_padding[0]
        self.min_frames = max(1, (2 ** (len(c.dims) - 1) - 1) * st + kt - 2 * pt)
        if not self.head_audioset.weight.is_meta:
            _trunc_normal_init_(self)
            with torch.no_grad():
                self.head_audioset.weight.mul_(c.head_init_scale)
                self.head_audioset.bias.mul_(c.head_init_scale)

    def _time_map(self, features: Tensor) -> Tensor:
        """``(B, n_mels, L)`` -> frequency-averaged map ``(B, dims[-1], L')``."""
        if features.ndim != 3 or features.shape[1] != self.config.n_mels:
            raise AudioError(
                f"ConvNeXtAT expects log-mel features (B, {self.config.n_mels}, L), got shape {tuple(features.shape)}"
            )
        x = features.transpose(1, 2).unsqueeze(1)  # official layout (B, 1, time, mel)
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        if x.shape[2] < self.min_frames:
            x = F.pad(x, (0, 0, 0, self.min_frames - x.shape[2]))
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
        return x.mean(dim=3)

    def _frame_lengths(self, lengths: Tensor, n_in: int, n_out: int) -> Tensor:
        # CoNeTTE: frame_embs_lens = round(input_len / (input_T // frame_T)).
        factor = max(1, n_in // n_out)
        out = torch.round(lengths.to(torch.float32) / factor).long()
        return torch.clamp(out, min=1, max=n_out)

    def forward_frames(self, features: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(B, n_mels, L)`` -> frame embeddings ``(B, dims[-1], L')`` and their lengths ``(B,)``.

        ``L' ~ L / 144`` for the canonical stem (18x time stride, then three 2x): 31 frames for CoNeTTE's
        ~30 s clips, 7 for 10 s. These are CoNeTTE's ``frame_embs`` (no final LayerNorm).
        """
        x = self._time_map(features)
        if lengths is None:
            lengths = torch.full((features.shape[0],), features.shape[-1], dtype=torch.long, device=x.device)
        return x, self._frame_lengths(lengths.to(x.device), features.shape[-1], x.shape[-1])

    def forward_features(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``(B, n_mels, L)`` -> clip embedding ``(B, dims[-1])``: LayerNorm(max + mean over time)."""
        x = self._time_map(features)
        if lengths is None:
            return self.norm(x.amax(dim=2) + x.mean(dim=2))
        valid_len = self._frame_lengths(lengths.to(x.device), features.shape[-1], x.shape[-1])
        valid = torch.arange(x.shape[2], device=x.device)[None, :] < valid_len[:, None]
        x_max = x.masked_fill(~valid[:, None, :], float("-inf")).amax(dim=2)
        x_mean = (x * valid[:, None, :]).sum(dim=2) / valid_len[:, None].to(x.dtype)
        return self.norm(x_max + x_mean)

    def forward_head(self, embedding: Tensor) -> Tensor:
        """``(B, D)`` -> logits ``(B, num_classes)``."""
        return self.head_audioset(embedding)

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.forward_head(self.forward_features(features, lengths))

    def reset_classifier(self, num_classes: int) -> None:
        self.config.num_classes = self.num_classes = num_classes
        self.head_audioset = nn.Linear(self.embed_dim, num_classes).to(self.norm.weight.device)
        _trunc_normal_init_(self.head_audioset)


# --------------------------------------------------------------------------- checkpoint converter
_DROP = ("spectrogram_extractor.", "logmel_extractor.", "spec_augmenter.", "speed_perturb.")


def checkpoint_filter_fn(state: dict[str, Tensor], model: ConvNeXtAT) -> dict[str, Tensor]:
    """Map the official ``convnext_tiny_465mAP_BL_AC_70kit.pth`` (topel) or a CoNeTTE encoder state dict.

    Names are the official ones; dropped: the frozen torchlibrosa tensors, a ``module.``/``model.``
    prefix, and CoNeTTE's ``encoder.`` prefix; CoNeTTE's ``scale_layer`` is the official ``gamma``.
    """
    if "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    out: dict[str, Tensor] = {}
    for k, v in state.items():
        k = re.sub(r"^(module\.|model\.|encoder\.)+", "", k)
        if k.startswith(_DROP):
            continue
        out[k.replace(".scale_layer", ".gamma")] = v
    return out


# --------------------------------------------------------------------------- registered variants


@register_model(
    family="classify",
    paper="Adapting a ConvNeXt model to audio classification on AudioSet (Pellegrini, Khalfaoui-Hassani, "
          "Labbé & Masquelier, Interspeech 2023); encoder of CoNeTTE (Labbé, Pellegrini & Pinquier, TASLP 2024)",
    arxiv="2306.00830",
    params=28_228_143,
    params_source="official topel/audioset-convnext-inf convnext_tiny (audio stem Conv2d(1, 96, (18, 4)), "
                  "bn0 over 224 mels, 527-class head), trainable parameters counted from the architecture "
                  "(frozen torchlibrosa tensors excluded) = 28,228,143, the figure the official file notes "
                  "('tiny: 28228143'); the ImageNet ConvNeXt-T has 28.6M",
    verified="A",
    tiny=dict(n_mels=32, depths=(1, 1, 2, 1), dims=(8, 16, 24, 32), stem_kernel=(4, 4), stem_stride=(4, 4),
              stem_padding=(2, 0), num_classes=5),
    official_repo="https://github.com/topel/audioset-convnext-inf", license="MIT", converter=checkpoint_filter_fn,
)
def convnext_tiny_at(**overrides) -> ConvNeXtAT:
    """Canonical ConvNeXt-Tiny-AT (AudioSet 527 classes, 32 kHz log-mel 224, CoNeTTE's encoder)."""
    return ConvNeXtAT(build_config(ConvNeXtATConfig, {}, **overrides))
