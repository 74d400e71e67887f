"""Wav2Small: a 72K-parameter student for dimensional speech emotion (arousal, dominance, valence).

Paper: Dionyssos Kounadis-Bastian, Oliver Schrüfer, Anna Derington, Hagen Wierstorf, Florian Eyben,
Felix Burkhardt, Björn W. Schuller, "Wav2Small: Distilling Wav2Vec2 to 72K Parameters for Low-Resource
Speech Emotion Recognition", arXiv:2408.13920 (2024). Repository https://github.com/dkounadis/wav2small
(README only); model code lives in the Hugging Face model cards (``dkounadis/wav2small``, and the later
17K-parameter ``audeering/wav2small``, CC-BY-NC-SA-4.0). No weights are reachable offline.

What is known (paper abstract, cards): students are trained on the *teacher's* A/D/V outputs (not on
human labels) and scored by the concordance correlation coefficient (CCC); Wav2Small takes raw 16 kHz
audio standardised per utterance, computes a short-window spectrogram as a convolution with DFT kernels
(``n_fft=64``), a log-mel, then a small VGG-style conv stack, and outputs 3 values; it has 72K
parameters against 3.12M for the MobileNet-V4-Small student.

What is not known here: the exact layer widths, mel count and pooling of the 72K model. This module is a
reconstruction with those choices (docs/models/wav2small.md):

- front-end (``model.frontend``, no learned parameters): per-utterance standardisation, Hann STFT with
  ``n_fft=64``, hop 32 (4 ms window, 2 ms hop), power, 20 Slaney mel bins over 0-8 kHz (the most bins
  with no empty filter at this FFT size), ``10 log10(max(x, 1e-10))`` (torchlibrosa's LogmelFilterBank);
- VGG7 body: 7 conv3x3 + BatchNorm + ReLU layers of 30 channels, max-pooling ``(2, 2)`` after layers 2
  and 4 and ``(1, 2)`` (time only) after layer 6;
- attention pooling over time of the flattened ``channels x mel`` map: ``softmax_t(a(h))``-weighted
  sum of ``v(h)`` (1x1 projections), then a linear layer to the outputs.

This lands at 72,754 parameters (the paper: 72K). The MobileNet comparison point is
:class:`MobileNetV3Small` (Howard et al. 2019, torchvision's layer table; the paper's MobileNet-V4 table
is not reproduced), on the same front-end with a 1-channel stem.

Outputs are raw regression values (no sigmoid): the teacher's A/D/V heads are linear, and a distilled
student regresses whatever continuous targets the teacher emits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...config import build_config
from ...dsp import FeatureExtractor, MelSpectrogram, power_to_db, stft_lengths
from ...errors import AudioError, ConfigError
from ...registry import register_model
from ..contracts import ClassifierModel


@dataclass
class Wav2SmallConfig:
    num_classes: int = 3  # arousal, dominance, valence
    n_mels: int = 20
    arch: str = "vgg7"  # "vgg7" (Wav2Small) | "mobilenetv3_small" (comparison student)
    channels: int = 30
    # max-pool (freq, time) after each conv; (1, 1) = none. Its length is the number of conv layers.
    pools: tuple[tuple[int, int], ...] = ((1, 1), (2, 2), (1, 1), (2, 2), (1, 1), (1, 2), (1, 1))
    mobilenet_dropout: float = 0.2
    # front-end
    sample_rate: int = 16000
    n_fft: int = 64
    hop_length: int = 32
    f_min: float = 0.0
    f_max: float = 8000.0
    amin: float = 1e-10


class Wav2SmallFrontend(FeatureExtractor):
    """Waveform ``(B, T)`` -> log-mel dB ``(B, n_mels, L)`` (``L = T // hop + 1``) and frame lengths.

    Each utterance is standardised over its own valid samples first (zero mean, unit variance), as the
    Wav2Small cards do, so loudness does not move the features. No learned parameters.
    """

    config_class = Wav2SmallConfig
    config_fields = ("sample_rate", "n_fft", "hop_length", "n_mels", "f_min", "f_max", "amin")

    def __init__(self, config: Wav2SmallConfig):
        super().__init__()
        c = self.config = config
        self.sample_rate, self.hop_length, self.n_features = c.sample_rate, c.hop_length, c.n_mels
        self.mel = MelSpectrogram(c.sample_rate, n_fft=c.n_fft, hop_length=c.hop_length, n_mels=c.n_mels,
                                  f_min=c.f_min, f_max=c.f_max, window="hann", center=True, power=2.0)

    def num_frames(self, n_samples: int | Tensor) -> int | Tensor:
        return stft_lengths(n_samples, self.config.n_fft, self.config.hop_length, center=True)

    def prepare(self, wav: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        valid = (torch.arange(wav.shape[-1], device=wav.device)[None] < lengths[:, None]).to(wav.dtype)
        n = valid.sum(-1, keepdim=True).clamp(min=1)
        mean = (wav * valid).sum(-1, keepdim=True) / n
        std = (((wav - mean) * valid).pow(2).sum(-1, keepdim=True) / n).sqrt()
        return (wav - mean) / (std + 1e-7) * valid, lengths

    def compute(self, wav: Tensor) -> Tensor:
        return power_to_db(self.mel(wav), ref=1.0, amin=self.config.amin, top_db=None)


def _masked_time_mask(lengths: Tensor | None, frames_in: int, frames_out: int, device) -> Tensor | None:
    if lengths is None:
        return None
    # every pooling/stride here maps L -> ceil(L / s): valid outputs = ceil(lengths * out / in)
    out = torch.ceil(lengths.to(device).float() * frames_out / frames_in).long().clamp(1, frames_out)
    return torch.arange(frames_out, device=device)[None] < out[:, None]


class _VGG7(nn.Module):
    def __init__(self, c: Wav2SmallConfig):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for pool in c.pools:
            layers += [nn.Conv2d(cin, c.channels, 3, padding=1), nn.BatchNorm2d(c.channels), nn.ReLU()]
            if tuple(pool) != (1, 1):
                layers.append(nn.MaxPool2d(tuple(pool), ceil_mode=True))
            cin = c.channels
        self.body = nn.Sequential(*layers)
        f = c.n_mels
        for pf, _ in c.pools:
            f = -(-f // pf)
        self.dim = c.channels * f
        self.value = nn.Conv1d(self.dim, self.dim, 1)  # v(h)
        self.score = nn.Conv1d(self.dim, 1, 1)  # a(h)

    def forward(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        h = self.body(x.unsqueeze(1))  # (B, C, F', T')
        h = h.flatten(1, 2)  # (B, C F', T')
        s = self.score(h)  # (B, 1, T')
        mask = _masked_time_mask(lengths, x.shape[-1], h.shape[-1], x.device)
        if mask is not None:
            s = s.masked_fill(~mask[:, None], float("-inf"))
        return (self.value(h) * torch.softmax(s, dim=-1)).sum(-1)  # (B, C F')


def _make_divisible(v: float, divisor: int = 8) -> int:
    # MobileNet channel rounding (torchvision ``_make_divisible``): nearest multiple, never 10 % below v.
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: type | None = nn.Hardswish):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class _SqueezeExcite(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        sq = _make_divisible(ch // 4)
        self.fc1, self.fc2 = nn.Conv2d(ch, sq, 1), nn.Conv2d(sq, ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))


class _InvertedResidual(nn.Module):
    def __init__(self, cin: int, k: int, exp: int, cout: int, se: bool, act: str, stride: int):
        super().__init__()
        a = nn.Hardswish if act == "HS" else nn.ReLU
        layers: list[nn.Module] = []
        if exp != cin:
            layers.append(_conv_bn(cin, exp, 1, act=a))
        layers.append(_conv_bn(exp, exp, k, stride, groups=exp, act=a))
        if se:
            layers.append(_SqueezeExcite(exp))
        layers.append(_conv_bn(exp, cout, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.block(x)
        return x + y if self.residual else y


# MobileNetV3-Small (Howard et al. 2019, Table 2; torchvision layout):
# (in, kernel, expanded, out, squeeze-excite, activation, stride)
MOBILENETV3_SMALL = (
    (16, 3, 16, 16, True, "RE", 2), (16, 3, 72, 24, False, "RE", 2), (24, 3, 88, 24, False, "RE", 1),
    (24, 5, 96, 40, True, "HS", 2), (40, 5, 240, 40, True, "HS", 1), (40, 5, 240, 40, True, "HS", 1),
    (40, 5, 120, 48, True, "HS", 1), (48, 5, 144, 48, True, "HS", 1), (48, 5, 288, 96, True, "HS", 2),
    (96, 5, 576, 96, True, "HS", 1), (96, 5, 576, 96, True, "HS", 1),
)


class MobileNetV3Small(nn.Module):
    """MobileNetV3-Small body + its classifier MLP (576 -> 1024 -> outputs); ``in_chans`` input planes."""

    def __init__(self, num_outputs: int, in_chans: int = 1, dropout: float = 0.2):
        super().__init__()
        self.stem = _conv_bn(in_chans, 16, 3, 2)
        self.blocks = nn.Sequential(*(_InvertedResidual(*cfg) for cfg in MOBILENETV3_SMALL))
        self.last = _conv_bn(96, 576, 1)
        self.fc1 = nn.Linear(576, 1024)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, num_outputs)
        self.dim = 1024

    def pooled(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``(B, in_chans, F, T)`` -> ``(B, 576)``: mean over frequency and valid time steps."""
        h = self.last(self.blocks(self.stem(x))).mean(2)  # (B, 576, T')
        mask = _masked_time_mask(lengths, x.shape[-1], h.shape[-1], x.device)
        if mask is None:
            return h.mean(-1)
        m = mask[:, None].to(h.dtype)
        return (h * m).sum(-1) / m.sum(-1)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        return F.hardswish(self.fc1(self.pooled(x, lengths)))  # (B, 1024); fc2 is the model's head


class Wav2Small(ClassifierModel):
    """Student regressor: ``forward(features (B, n_mels, L), lengths (B,) | None) -> outputs (B, num_classes)``.

    ``features`` are :attr:`frontend`'s log-mel dB values. The outputs are continuous (A/D/V in the
    paper); :meth:`forward_features` returns the pooled embedding before the output layer.
    """

    def __init__(self, config: Wav2SmallConfig):
        super().__init__()
        c = self.config = config
        self.num_classes = c.num_classes
        self.frontend = Wav2SmallFrontend(c)
        if c.arch == "vgg7":
            if not c.pools:
                raise ConfigError("Wav2SmallConfig.pools needs one (freq, time) entry per conv layer")
            self.body: nn.Module = _VGG7(c)
            self.head = nn.Linear(self.body.dim, c.num_classes)
        elif c.arch == "mobilenetv3_small":
            self.body = MobileNetV3Small(c.num_classes, 1, c.mobilenet_dropout)
            self.head = self.body.fc2
        else:
            raise ConfigError(f"Wav2SmallConfig.arch must be 'vgg7' or 'mobilenetv3_small', got {c.arch!r}")

    def forward_features(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        c = self.config
        if features.ndim != 3 or features.shape[1] != c.n_mels:
            raise AudioError(f"Wav2Small expects features (B, {c.n_mels}, L), got {tuple(features.shape)}")
        if c.arch == "vgg7":
            return self.body(features, lengths)
        return self.body.drop(self.body(features.unsqueeze(1), lengths))

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.head(self.forward_features(features, lengths))

    def reset_classifier(self, num_classes: int) -> None:
        self.config.num_classes = self.num_classes = num_classes
        head = nn.Linear(self.head.in_features, num_classes).to(self.head.weight.device)
        self.head = head
        if self.config.arch == "mobilenetv3_small":
            self.body.fc2 = head


# --------------------------------------------------------------------------- registered variants
_PAPER = dict(
    family="classify",
    paper="Wav2Small: Distilling Wav2Vec2 to 72K Parameters for Low-Resource Speech Emotion Recognition "
          "(Kounadis-Bastian et al., 2024)",
    arxiv="2408.13920",
    official_repo="https://github.com/dkounadis/wav2small",
    license="",
)


def _w2s(base: dict, overrides: dict) -> Wav2Small:
    return Wav2Small(build_config(Wav2SmallConfig, base, **overrides))


@register_model(params=72_754, params_source="computed from this config, chosen to match the paper's 72K (layer "
                "widths are not published): 7 conv3x3 of 30 channels + BN = 49,500; attention pooling on "
                "30x5=150 dims = 22,801; 3 outputs 453", verified="AT",
                tiny=dict(channels=6, n_mels=8, pools=((2, 2), (1, 1), (2, 2)), num_classes=3), **_PAPER)
def wav2small(**overrides) -> Wav2Small:
    """Wav2Small student (72,754 parameters, 3 continuous outputs)."""
    return _w2s({}, overrides)


@register_model(params=1_520_643, params_source="computed: torchvision's MobileNetV3-Small layer table (this "
                "implementation gives torchvision's 2,542,856 with 3 input planes and 1000 classes, checked in "
                "tests) with a 1-plane stem and 3 outputs; the paper's MobileNet-V4-Small student has 3.12M",
                verified="AT", tiny=dict(arch="mobilenetv3_small", n_mels=8, num_classes=3),
                **_PAPER)
def wav2small_mobilenetv3(**overrides) -> Wav2Small:
    """MobileNetV3-Small student on the Wav2Small front-end (the paper's MobileNet comparison point)."""
    return _w2s(dict(arch="mobilenetv3_small"), overrides)
