"""PANNs: CNN14 and MobileNetV1 audio taggers.

Paper: Qiuqiang Kong, Yin Cao, Turab Iqbal, Yuxuan Wang, Wenwu Wang, Mark D. Plumbley, "PANNs: Large-Scale
Pretrained Audio Neural Networks for Audio Pattern Recognition", IEEE/ACM TASLP 2020, arXiv:1912.10211.
Official code: https://github.com/qiuqiangkong/audioset_tagging_cnn (MIT), ``pytorch/models.py``
(``Cnn14``, ``MobileNetV1``); peer package ``panns_inference.models.Cnn14`` (CNN14 only).

Front-end (torchlibrosa ``Spectrogram`` + ``LogmelFilterBank`` as the official models build them): 32 kHz,
Hann window 1024, hop 320, centred frames with *reflect* padding, power spectrogram, 64 Slaney mel bins
(librosa ``filters.mel``, 50-14000 Hz), ``power_to_db`` with ref 1.0, amin 1e-10 and no top_db floor.
It has no learned parameters and lives in ``model.frontend``; the ``bn0`` BatchNorm over mel bins is the
first layer of the model (as in the official code, so checkpoints load unchanged).

CNN14 (Sec. 3.1, Table 1): bn0 -> 6 ConvBlocks (2x [3x3 conv, BN, ReLU], 64..2048 channels, 2x2 average
pooling except after the last), dropout 0.2 -> mean over frequency -> max + mean over time -> dropout 0.5
-> fc1 + ReLU -> fc. MobileNetV1 (Sec. 3.4): the same front-end and head on a MobileNetV1 body whose
strides are 2x2 average pools after the 3x3 convs (not strided convs), as in the official code.

Outputs: audiozoo classifiers return logits. ``torch.sigmoid(model(features))`` equals the reference's
``clipwise_output`` (PANNs trains with clip-level binary cross-entropy on AudioSet's 527 classes).

Departures (none on full-length, unbatched inputs):
- ``lengths``: temporal max/mean pooling ignores frames past each item's length (scaled by the network's
  time downsampling), so zero-padded batch items pool like lone ones up to the conv receptive field.
  The official code pools over all frames; with ``lengths=None`` this model does the same.
- Inputs shorter than the total time downsampling (32 frames = 1 s for CNN14) are zero-padded on the
  time axis after ``bn0`` instead of failing inside the average pooling.
- SpecAugment and mixup are training-time augmentations; they live in the training task, not here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...config import build_config
from ...dsp import MelSpectrogram, power_to_db, stft_lengths
from ...errors import AudioError, ConfigError
from ...nn import ConvBlock2d
from ...registry import register_model


@dataclass
class PANNsConfig:
    num_classes: int = 527
    n_mels: int = 64
    arch: str = "cnn14"  # "cnn14" | "mobilenetv1"
    # CNN14: output channels of the ConvBlocks; every block but the last is followed by 2x2 average pooling.
    channels: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048)
    # MobileNetV1: stem channels (3x3 conv + 2x2 pool) and (out_channels, pool) of each depthwise-separable
    # layer (official ``conv_dw(inp, oup, stride)``; ``stride`` is an average-pool size).
    stem_channels: int = 32
    dw_layers: tuple[tuple[int, int], ...] = (
        (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
        (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
    )
    dropout: float = 0.2  # after each CNN14 ConvBlock
    head_dropout: float = 0.5  # before fc1 (and on the embedding, which the logits do not use)
    # front-end
    sample_rate: int = 32000
    n_fft: int = 1024
    hop_length: int = 320
    f_min: float = 50.0
    f_max: float = 14000.0
    amin: float = 1e-10


class PANNsFrontend(nn.Module):
    """Waveform ``(B, T)`` at 32 kHz -> log-mel ``(B, n_mels, L)`` in dB, and frame lengths ``(B,)``.

    ``L = T // hop + 1`` (centred frames). Reflect padding of the frame centres follows torchlibrosa; a
    batch item shorter than ``T`` is zero-padded to ``T`` first, so only its last ~n_fft/2 samples of
    context differ from a lone item. No learned parameters.
    """

    def __init__(self, config: PANNsConfig):
        super().__init__()
        c = self.config = config
        self.mel = MelSpectrogram(
            c.sample_rate, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.n_fft, n_mels=c.n_mels,
            f_min=c.f_min, f_max=c.f_max, window="hann", center=True, pad_mode="reflect", power=2.0,
            norm="slaney",
        )

    def forward(self, wav: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if wav.ndim == 1:
            wav = wav.unsqueeze(0)
        if wav.ndim != 2:
            raise AudioError(f"PANNsFrontend expects a waveform (B, T) or (T,), got shape {tuple(wav.shape)}")
        if wav.shape[-1] <= self.config.n_fft // 2:
            raise AudioError(
                f"PANNsFrontend: {wav.shape[-1]} samples is too short for reflect padding by n_fft/2="
                f"{self.config.n_fft // 2}; PANNs expects at least {self.config.n_fft // 2 + 1} samples"
            )
        if lengths is None:
            lengths = torch.full((wav.shape[0],), wav.shape[-1], dtype=torch.long, device=wav.device)
        # ref=1.0, amin=1e-10, top_db=None: torchlibrosa LogmelFilterBank as the PANNs models configure it.
        feats = power_to_db(self.mel(wav), ref=1.0, amin=self.config.amin, top_db=None)
        frames = stft_lengths(lengths.to(feats.device), self.config.n_fft, self.config.hop_length, center=True)
        return feats, torch.clamp(frames, max=feats.shape[-1])


def _conv_bn(cin: int, cout: int, pool: int) -> nn.Sequential:
    # Official MobileNetV1 ``conv_bn``: indices 0 conv, 1 pool, 2 BN, 3 ReLU (kept so checkpoints load as is).
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.AvgPool2d(pool), nn.BatchNorm2d(cout),
                         nn.ReLU())


def _conv_dw(cin: int, cout: int, pool: int) -> nn.Sequential:
    # Official ``conv_dw``: depthwise 3x3, pool, BN, ReLU, pointwise 1x1, BN, ReLU.
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, 1, 1, groups=cin, bias=False), nn.AvgPool2d(pool), nn.BatchNorm2d(cin), nn.ReLU(),
        nn.Conv2d(cin, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
    )


def _init_panns_(module: nn.Module) -> None:
    # Official ``init_layer``/``init_bn``: Xavier-uniform weights with zero bias; BatchNorm weight 1, bias 0.
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class PANNs(nn.Module):
    """PANNs tagger: ``forward(features (B, n_mels, L), lengths (B,) | None) -> logits (B, num_classes)``.

    ``features`` are the log-mel dB values of :attr:`frontend`; ``sigmoid(logits)`` is PANNs'
    ``clipwise_output``. :meth:`forward_features` returns the pooled clip embedding ``(B, D)`` before fc1.
    """

    def __init__(self, config: PANNsConfig):
        super().__init__()
        c = self.config = config
        if c.arch not in ("cnn14", "mobilenetv1"):
            raise ConfigError(f"PANNsConfig.arch must be 'cnn14' or 'mobilenetv1', got {c.arch!r}")
        self.num_classes = c.num_classes
        self.frontend = PANNsFrontend(c)
        self.bn0 = nn.BatchNorm2d(c.n_mels)
        if c.arch == "cnn14":
            if not c.channels:
                raise ConfigError("PANNsConfig.channels must name at least one ConvBlock")
            ins = (1, *c.channels[:-1])
            for i, (cin, cout) in enumerate(zip(ins, c.channels)):
                self.add_module(f"conv_block{i + 1}", ConvBlock2d(cin, cout))
            self.time_downsample = 2 ** (len(c.channels) - 1)
            dim = c.channels[-1]
        else:
            layers, cin = [_conv_bn(1, c.stem_channels, 2)], c.stem_channels
            for cout, pool in c.dw_layers:
                layers.append(_conv_dw(cin, cout, pool))
                cin = cout
            self.features = nn.Sequential(*layers)
            self.time_downsample = 2 * _prod(p for _, p in c.dw_layers)
            dim = cin
        self.embed_dim = dim
        self.fc1 = nn.Linear(dim, dim)
        self.fc_audioset = nn.Linear(dim, c.num_classes)
        if not self.fc1.weight.is_meta:
            _init_panns_(self)

    def _body(self, x: Tensor) -> Tensor:
        """``(B, 1, L, F)`` -> ``(B, C, L', F')``."""
        if self.config.arch == "mobilenetv1":
            return self.features(x)
        blocks = [m for n, m in self.named_children() if n.startswith("conv_block")]
        for i, block in enumerate(blocks):
            pool = (2, 2) if i < len(blocks) - 1 else (1, 1)
            x = F.dropout(block(x, pool_size=pool, pool_type="avg"), p=self.config.dropout, training=self.training)
        return x

    def forward_features(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``(B, n_mels, L)`` -> clip embedding ``(B, D)``: max + mean over time of the frequency-mean map."""
        if features.ndim != 3 or features.shape[1] != self.config.n_mels:
            raise AudioError(
                f"PANNs expects log-mel features (B, {self.config.n_mels}, L), got shape {tuple(features.shape)}"
            )
        # The official layout is (B, 1, time, mel); bn0 normalises each mel bin (channels after transpose).
        x = features.transpose(1, 2).unsqueeze(1)
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        if x.shape[2] < self.time_downsample:
            # Too short for the pooling pyramid: pad with zeros (the reference raises here).
            x = F.pad(x, (0, 0, 0, self.time_downsample - x.shape[2]))
        x = self._body(x).mean(dim=3)  # (B, C, L')
        if lengths is None:
            return x.amax(dim=2) + x.mean(dim=2)
        # Average pooling floors: a frame survives if its whole pooling window was valid; keep >= 1.
        valid_len = torch.clamp(lengths.to(x.device) // self.time_downsample, min=1, max=x.shape[2])
        valid = torch.arange(x.shape[2], device=x.device)[None, :] < valid_len[:, None]  # (B, L')
        x_max = x.masked_fill(~valid[:, None, :], float("-inf")).amax(dim=2)
        x_mean = (x * valid[:, None, :]).sum(dim=2) / valid_len[:, None].to(x.dtype)
        return x_max + x_mean

    def forward_head(self, embedding: Tensor) -> Tensor:
        """``(B, D)`` -> logits ``(B, num_classes)``."""
        x = F.dropout(embedding, p=self.config.head_dropout, training=self.training)
        return self.fc_audioset(F.relu(self.fc1(x)))

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.forward_head(self.forward_features(features, lengths))

    def reset_classifier(self, num_classes: int) -> None:
        self.config.num_classes = self.num_classes = num_classes
        self.fc_audioset = nn.Linear(self.embed_dim, num_classes).to(self.fc1.weight.device)
        _init_panns_(self.fc_audioset)


def _prod(values) -> int:
    out = 1
    for v in values:
        out *= v
    return out


# --------------------------------------------------------------------------- checkpoint converter
_FRONTEND_KEYS = ("spectrogram_extractor.", "logmel_extractor.", "spec_augmenter.")


def checkpoint_filter_fn(state: dict[str, Tensor], model: PANNs) -> dict[str, Tensor]:
    """Map an official / ``panns_inference`` state dict (``Cnn14_mAP=0.431.pth``'s ``"model"``) to audiozoo.

    Parameter names are the official ones; only the frozen front-end tensors (torchlibrosa's DFT conv
    weights and ``melW``, recomputed here by :mod:`audiozoo.dsp`) and a DataParallel ``module.`` prefix
    are dropped.
    """
    if "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    out: dict[str, Tensor] = {}
    for k, v in state.items():
        if k.startswith("module."):
            k = k[len("module."):]
        if k.startswith(_FRONTEND_KEYS):
            continue
        out[k] = v
    return out


# --------------------------------------------------------------------------- registered variants
_PAPER = dict(
    family="classify",
    paper="PANNs: Large-Scale Pretrained Audio Neural Networks for Audio Pattern Recognition "
          "(Kong et al., IEEE/ACM TASLP 2020)",
    arxiv="1912.10211",
    official_repo="https://github.com/qiuqiangkong/audioset_tagging_cnn",
    license="MIT",
    converter=checkpoint_filter_fn,
)

_INPUT = {"sample_rate": 32000, "frontend": "log_mel_db", "n_mels": 64, "n_fft": 1024, "win_length": 1024,
          "hop_length": 320, "window": "hann", "center": True, "pad_mode": "reflect", "f_min": 50,
          "f_max": 14000, "mel_scale": "slaney", "db": "power_to_db(ref=1.0, amin=1e-10, top_db=None)",
          "features": "(B, n_mels, L)", "output": "logits; sigmoid(logits) = clipwise_output"}


def _panns(base: dict, overrides: dict) -> PANNs:
    return PANNs(build_config(PANNsConfig, base, **overrides))


@register_model(params=80_753_615, params_source="official Cnn14, 527 classes, trainable parameters (the "
                "frozen torchlibrosa front-end tensors excluded); paper: 80.8M", input=_INPUT, verified="AP",
                tiny=dict(n_mels=32, channels=(8, 16, 16), num_classes=5), **_PAPER)
def panns_cnn14(**overrides) -> PANNs:
    """Canonical CNN14 (AudioSet, 527 classes, 32 kHz log-mel 64)."""
    return _panns(dict(arch="cnn14"), overrides)


@register_model(params=4_796_303, params_source="official MobileNetV1, 527 classes, trainable parameters",
                input=_INPUT, verified="A",
                tiny=dict(n_mels=32, stem_channels=8, dw_layers=((16, 2), (16, 1), (24, 2)), num_classes=5),
                **_PAPER)
def panns_mobilenetv1(**overrides) -> PANNs:
    """Canonical PANNs MobileNetV1 (AudioSet, 527 classes, 32 kHz log-mel 64)."""
    return _panns(dict(arch="mobilenetv1"), overrides)
