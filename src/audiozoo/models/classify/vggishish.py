"""VGGish-ish: the VGG-16-like mel-spectrogram classifier behind SpecVQGAN's perceptual loss LPAPS.

Paper: Vladimir Iashin, Esa Rahtu, "Taming Visually Guided Sound Generation", BMVC 2021, arXiv:2110.08791,
Sec. 3.1 (the codebook's perceptual loss uses "VGGish-ish", a VGG trained on VGGSound spectrograms; Top-1
34.70 in the official README). Official code: https://github.com/v-iashin/SpecVQGAN (MIT),
``specvqgan/modules/losses/vggishish/model.py`` (``VGGishish``), ``configs/vggish.yaml`` (the VGG-16 layer list
without BatchNorm) and ``specvqgan/modules/losses/lpaps.py`` (``vggishish16``: the five ReLU stages LPAPS
compares).

Architecture: VGG-16's convolutions (3x3, padding 1, ReLU; 2x2 max-pool between stages) on a 1-channel
``(B, 1, 80, L)`` mel, without VGG's last max-pool; adaptive average pooling to ``5 x 10``; a 3-layer MLP
``C*5*10 -> 4096 -> 4096 -> num_classes`` (no dropout, as the official). Module names follow the official
(``features.<i>``, ``classifier.<i>``), so its checkpoint loads through :func:`checkpoint_filter_fn`.
:meth:`VGGishish.feature_maps` returns the activations at the end of each stage (for VGG-16: relu1_2,
relu2_2, relu3_3, relu4_3, relu5_3, LPAPS's ``vggishish16`` slices).

Front end: :class:`audiozoo.dsp.SpecVQGANMel`, standardised per mel bin (VGGSound statistics for the paper
config, the training set's own for models trained here), as :mod:`.melception`.

Departures: ``lengths`` — each item is pooled over its own valid frames (scaled through the max-pools), so a
zero-padded batch item gives its lone output up to the receptive field; ``lengths=None`` is the official
pooling. Inputs shorter than one frame per max-pool stage are zero-padded on the time axis.
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

VGG16 = (64, 64, "MP", 128, 128, "MP", 256, 256, 256, "MP", 512, 512, 512, "MP", 512, 512, 512)


@dataclass
class VGGishishConfig:
    num_classes: int = 309  # VGGSound
    n_mels: int = 80
    conv_layers: tuple = VGG16  # output channels of the 3x3 convs, "MP" = 2x2 max-pool
    use_bn: bool = False  # BatchNorm after each conv (configs/vggish.yaml: False)
    pool_size: tuple[int, int] = (5, 10)  # adaptive average pooling (mels, frames) before the MLP
    hidden: int = 4096
    # front end (dsp.SpecVQGANMel) and its per-bin standardisation (None: the [0, 1] mel)
    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    f_min: float = 125.0
    f_max: float = 7600.0
    norm_means: tuple[float, ...] | None = VGGSOUND_MEL_MEANS
    norm_stds: tuple[float, ...] | None = VGGSOUND_MEL_STDS


class VGGishishFrontend(SpecVQGANMel):
    """Waveform ``(B, T)`` at 22.05 kHz -> standardised SpecVQGAN log-mel ``(B, n_mels, T // hop + 1)``."""

    config_class = VGGishishConfig
    config_fields = ("sample_rate", "n_fft", "hop_length", "n_mels", "f_min", "f_max", "norm_means", "norm_stds")

    def __init__(self, config: VGGishishConfig):
        c = config
        super().__init__(c.sample_rate, c.n_fft, c.hop_length, c.n_mels, c.f_min, c.f_max,
                         means=c.norm_means, stds=c.norm_stds)
        self.config = config


class VGGishish(ClassifierModel):
    """VGGish-ish: ``forward(features (B, n_mels, L), lengths (B,) | None) -> logits (B, num_classes)``.

    :meth:`forward_features` gives the flattened pooled map ``(B, C * 5 * 10)`` (the MLP's input);
    :meth:`feature_maps` the per-stage activations ``[(B, C_s, n_mels / 2^s, L / 2^s)]`` for LPAPS.
    """

    def __init__(self, config: VGGishishConfig):
        super().__init__()
        c = self.config = config
        layers: list[nn.Module] = []
        cin, pools = 1, 0
        self.stage_ends: list[int] = []  # index in `features` of the last module of each stage (a ReLU)
        for v in c.conv_layers:
            if v == "MP":
                if not layers or isinstance(layers[-1], nn.MaxPool2d):
                    raise ConfigError(f"VGGishishConfig.conv_layers: 'MP' must follow a conv, got {c.conv_layers}")
                self.stage_ends.append(len(layers) - 1)
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                pools += 1
            elif isinstance(v, int) and v > 0:
                layers.append(nn.Conv2d(cin, v, kernel_size=3, padding=1))
                if c.use_bn:
                    layers.append(nn.BatchNorm2d(v))
                layers.append(nn.ReLU(inplace=True))
                cin = v
            else:
                raise ConfigError(f"VGGishishConfig.conv_layers holds channel counts and 'MP', got {v!r}")
        if isinstance(layers[-1], nn.MaxPool2d):
            raise ConfigError("VGGishishConfig.conv_layers must end with a conv (the official drops VGG's last pool)")
        self.stage_ends.append(len(layers) - 1)
        self.time_downsample = 2 ** pools
        if c.n_mels < self.time_downsample:
            raise ConfigError(f"VGGish-ish with {pools} max-pools needs n_mels >= {self.time_downsample}, "
                              f"got {c.n_mels}")
        self.num_classes = c.num_classes
        self.frontend = VGGishishFrontend(c)
        self.features = nn.Sequential(*layers)
        self.embed_dim = cin * c.pool_size[0] * c.pool_size[1]
        self.classifier = nn.Sequential(
            nn.Linear(self.embed_dim, c.hidden), nn.ReLU(True), nn.Linear(c.hidden, c.hidden), nn.ReLU(True),
            nn.Linear(c.hidden, c.num_classes))
        if not self.classifier[0].weight.is_meta:
            _init_vggishish_(self)

    def _input(self, features: Tensor) -> Tensor:
        if features.ndim != 3 or features.shape[1] != self.config.n_mels:
            raise AudioError(f"VGGish-ish expects standardised log-mels (B, {self.config.n_mels}, L) as its frontend "
                             f"returns them, got shape {tuple(features.shape)}")
        x = features.unsqueeze(1)
        if x.shape[-1] < self.time_downsample:
            x = F.pad(x, (0, self.time_downsample - x.shape[-1]))
        return x

    def feature_maps(self, features: Tensor) -> list[Tensor]:
        """``(B, n_mels, L)`` -> the activation at the end of every stage (before each max-pool, and the last)."""
        x, out = self._input(features), []
        ends = set(self.stage_ends)
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in ends:
                out.append(x)
        return out

    def forward_features(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``(B, n_mels, L)`` -> ``(B, C * pool_h * pool_w)``: the adaptive-average-pooled conv map, flattened."""
        x = self.features(self._input(features))  # (B, C, H', L')
        size = tuple(self.config.pool_size)
        if lengths is None:
            return torch.flatten(F.adaptive_avg_pool2d(x, size), 1)
        valid = torch.clamp(lengths.long() // self.time_downsample, min=1, max=x.shape[-1]).tolist()
        return torch.cat([torch.flatten(F.adaptive_avg_pool2d(x[i:i + 1, ..., :n], size), 1)
                          for i, n in enumerate(valid)])

    def forward_head(self, embedding: Tensor) -> Tensor:
        """``(B, embed_dim)`` -> logits ``(B, num_classes)``."""
        return self.classifier(embedding)

    def forward(self, features: Tensor, lengths: Tensor | None = None) -> Tensor:
        return self.forward_head(self.forward_features(features, lengths))

    def export_length(self, length: int | None) -> int:
        return int(length or 64)

    def reset_classifier(self, num_classes: int) -> None:
        self.config.num_classes = self.num_classes = num_classes
        fc = nn.Linear(self.config.hidden, num_classes).to(self.classifier[0].weight.device)
        _init_vggishish_(fc)
        self.classifier[4] = fc


def _init_vggishish_(module: nn.Module) -> None:
    # Official reset_parameters (torchvision VGG's): Kaiming-normal fan-out convs, N(0, 0.01) linears, zero biases.
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)


def checkpoint_filter_fn(state: dict[str, Tensor], model: VGGishish) -> dict[str, Tensor]:
    """Map the official checkpoint (``vggishish16.pt``: ``{"model": state_dict}``) to audiozoo (names kept;
    a DataParallel ``module.`` prefix is dropped)."""
    if "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


_PAPER = dict(
    family="classify",
    paper="Taming Visually Guided Sound Generation (Iashin & Rahtu, BMVC 2021): VGGish-ish (LPAPS)",
    arxiv="2110.08791",
    official_repo="https://github.com/v-iashin/SpecVQGAN",
    license="MIT",
    converter=checkpoint_filter_fn,
)
_TINY = dict(conv_layers=(4, "MP", 8, "MP", 8), pool_size=(2, 3), hidden=16, n_mels=32, num_classes=5,
             norm_means=None, norm_stds=None)


def _vggishish(base: dict, overrides: dict) -> VGGishish:
    return VGGishish(build_config(VGGishishConfig, base, **overrides))


@register_model(params=137_622_517, params_source="official VGGishish (configs/vggish.yaml: VGG-16 convs, no BN) "
                "with 309 VGGSound classes, counted from its architecture", verified="A", tiny=_TINY, **_PAPER)
def vggishish(**overrides) -> VGGishish:
    """Canonical VGGish-ish (VGG-16 layers, 309 VGGSound classes, 80 mels at 22.05 kHz)."""
    return _vggishish({}, overrides)


@register_model(params=1_757_626, params_source="computed from this config (VGG-16 layout at a quarter of the "
                "channels, 128-d MLP), 10 classes", verified="AU", tiny=_TINY, weights={
                    "project8": WeightSet(
                        "8 coarse classes of project data (as melception_small.project8): the trained feature "
                        "network for LPAPS (feature_maps); 74.8 % on 274 held-out clips",
                        sha256="827cb34675eb988f69b85acd3c689d27edd31d68a7a22570d5faa7a66671d35b",
                        recipe="recipes/classify/vggishish_small.yaml", commit="b27c79b",
                        license="CC-BY-SA-4.0 (FSDD in the training data; the rest CC0, generated or CC-BY-4.0)",
                        metrics={"held_out": "274 test clips, 8 classes", "accuracy": 0.748, "macro_f1": 0.655,
                                 "majority_accuracy": 0.146, "logreg_mean_std_logmel_accuracy": 0.803})},
                **_PAPER)
def vggishish_small(**overrides) -> VGGishish:
    """A quarter-width VGGish-ish with a small MLP for CPU training (same 5 stages as VGG-16)."""
    return _vggishish(dict(conv_layers=tuple(v if v == "MP" else v // 4 for v in VGG16), hidden=128,
                           num_classes=10), overrides)
