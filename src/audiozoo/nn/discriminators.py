"""HiFi-GAN's discriminators: multi-period (MPD) and multi-scale (MSD).

Kong, Kim & Bae, "HiFi-GAN", NeurIPS 2020, arXiv:2010.05646, Sec. 2.2-2.3; official ``jik876/hifi-gan``
``models.py`` (``DiscriminatorP``, ``MultiPeriodDiscriminator``, ``DiscriminatorS``, ``MultiScaleDiscriminator``).
Layer names, shapes, paddings and activations are the official ones, so official ``do_*`` checkpoints load after
:func:`convert_official_discriminator_keys` (legacy weight/spectral-norm keys only; names already match).

Output format (what :mod:`audiozoo.train.losses` and :class:`audiozoo.train.tasks.gan.GANTask` consume): one call
on a waveform batch returns ``(logits, fmaps)``: ``logits[i]`` the flattened ``(B, N_i)`` output of
sub-discriminator ``i``, ``fmaps[i]`` the list of its feature maps (every conv output after its leaky ReLU,
plus the final conv output). The official classes take ``(y, y_hat)`` pairs; here real and fake are separate
calls (or one concatenated batch, as GANTask does): no layer uses batch statistics, so this is equivalent.

Parameter counts (measured on the meta device, ``tests/nn/test_discriminators.py``): trainable as built (weight
norm's ``g`` and ``v`` both counted, as ``sum(p.numel())`` on the official modules gives) MPD 41,105,770 and MSD
29,618,821, the commonly cited 41.1M / 29.6M. Counting each normalised weight once (no gains): MPD 41,092,165
(5 x 8,218,433), MSD 29,610,627 (3 x 9,870,209).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

from ..errors import AudioError, ConfigError
from .conv import get_padding
from .resblocks import LRELU_SLOPE
from .weight_norm import convert_legacy_weight_norm_keys

__all__ = [
    "run_discriminators",
    "DiscriminatorP", "DiscriminatorS", "MultiPeriodDiscriminator", "MultiScaleDiscriminator",
    "convert_official_discriminator_keys",
]

Outputs = tuple[list[Tensor], list[list[Tensor]]]


def _as_b1t(y: Tensor) -> Tensor:
    """Waveform ``(B, T)`` or ``(B, 1, T)`` -> ``(B, 1, T)``."""
    if y.ndim == 2:
        return y.unsqueeze(1)
    if y.ndim == 3 and y.shape[1] == 1:
        return y
    raise AudioError(f"discriminators take a mono waveform (B, T) or (B, 1, T), got shape {tuple(y.shape)}")


def run_discriminators(discriminators: Sequence[nn.Module], y: Tensor) -> Outputs:
    """Every sub-discriminator on the same input: ``([logits], [feature maps])`` in order."""
    logits, fmaps = [], []
    for d in discriminators:
        logit, fmap = d(y)
        logits.append(logit)
        fmaps.append(fmap)
    return logits, fmaps


def _conv_stack(x: Tensor, convs: nn.ModuleList, conv_post: nn.Module, slope: float) -> tuple[Tensor, list[Tensor]]:
    """The body every HiFi-GAN sub-discriminator shares: leaky-ReLU convs, then the output conv.

    Returns the flattened logits ``(B, N)`` and the feature maps (each conv's activation, then the logits'
    map) that feature matching compares.
    """
    fmap = []
    for conv in convs:
        x = F.leaky_relu(conv(x), slope)
        fmap.append(x)
    x = conv_post(x)
    fmap.append(x)
    return torch.flatten(x, 1, -1), fmap


class DiscriminatorP(nn.Module):
    """One MPD sub-discriminator: ``(B, T)`` -> ``(logits (B, N), fmaps)``.

    The waveform is right-padded (reflect) to a multiple of ``period`` and folded to ``(B, 1, T / p, p)``, so
    ``(k, 1)`` 2-D convs see every ``p``-th sample (Sec. 2.2). Channels 1-32-128-512-1024-1024, kernel (5, 1),
    stride (3, 1) on the first four, then a (3, 1) output conv.
    """

    def __init__(self, period: int, kernel_size: int = 5, stride: int = 3, use_spectral_norm: bool = False,
                 channels: Sequence[int] = (32, 128, 512, 1024, 1024), lrelu_slope: float = LRELU_SLOPE):
        super().__init__()
        if period < 1:
            raise ConfigError(f"DiscriminatorP period must be >= 1, got {period}")
        self.period, self.lrelu_slope = period, lrelu_slope
        norm = spectral_norm if use_spectral_norm else weight_norm
        # The official padding is get_padding(5, 1) = 2 whatever kernel_size is; kept for checkpoint fidelity.
        pad = (get_padding(5, 1), 0)
        ins = (1, *channels[:-1])
        self.convs = nn.ModuleList(
            norm(nn.Conv2d(cin, cout, (kernel_size, 1), (stride if i < len(channels) - 1 else 1, 1), padding=pad))
            for i, (cin, cout) in enumerate(zip(ins, channels))
        )
        self.conv_post = norm(nn.Conv2d(channels[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, y: Tensor) -> tuple[Tensor, list[Tensor]]:
        x = _as_b1t(y)
        b, c, t = x.shape
        if t % self.period:
            n_pad = self.period - t % self.period
            if n_pad >= t:
                raise AudioError(f"DiscriminatorP(period={self.period}) needs more than {n_pad} samples, got {t}")
            x = F.pad(x, (0, n_pad), "reflect")
            t += n_pad
        x = x.reshape(b, c, t // self.period, self.period)
        return _conv_stack(x, self.convs, self.conv_post, self.lrelu_slope)


class MultiPeriodDiscriminator(nn.Module):
    """MPD: one :class:`DiscriminatorP` per period (HiFi-GAN: 2, 3, 5, 7, 11; primes, to avoid overlap).

    ``forward(y (B, T) | (B, 1, T)) -> (logits: list of (B, N_p), fmaps: list of lists)``.
    """

    def __init__(self, periods: Sequence[int] = (2, 3, 5, 7, 11), channels: Sequence[int] = (32, 128, 512, 1024, 1024),
                 use_spectral_norm: bool = False):
        super().__init__()
        if not periods:
            raise ConfigError("MultiPeriodDiscriminator needs at least one period")
        self.periods = tuple(int(p) for p in periods)
        self.discriminators = nn.ModuleList(
            DiscriminatorP(p, use_spectral_norm=use_spectral_norm, channels=channels) for p in self.periods
        )

    def forward(self, y: Tensor) -> Outputs:
        return run_discriminators(self.discriminators, y)


# (out_channels, kernel, stride, groups) of the official DiscriminatorS convs after the first (1 -> 128, k15).
_MSD_LAYERS = ((128, 41, 2, 4), (256, 41, 2, 16), (512, 41, 4, 16), (1024, 41, 4, 16), (1024, 41, 1, 16),
               (1024, 5, 1, 1))


class DiscriminatorS(nn.Module):
    """One MSD sub-discriminator on a (possibly average-pooled) waveform: ``(B, T)`` -> ``(logits, fmaps)``.

    Conv1d 1->128 (k15), then strided grouped k41 convs up to 1024 channels, a k5 conv and a k3 output conv
    (MelGAN's discriminator with HiFi-GAN's widths). ``width`` scales every channel count (1.0 = official;
    group counts are kept, so widths must stay divisible by them).
    """

    def __init__(self, use_spectral_norm: bool = False, width: float = 1.0, lrelu_slope: float = LRELU_SLOPE):
        super().__init__()
        self.lrelu_slope = lrelu_slope
        norm = spectral_norm if use_spectral_norm else weight_norm
        ch = lambda c: max(16, int(round(c * width)))  # noqa: E731
        convs = [norm(nn.Conv1d(1, ch(128), 15, 1, padding=7))]
        cin = ch(128)
        for cout, k, s, g in _MSD_LAYERS:
            if ch(cout) % g or cin % g:
                raise ConfigError(f"DiscriminatorS width {width}: {cin}->{ch(cout)} channels not divisible by "
                                  f"{g} groups")
            convs.append(norm(nn.Conv1d(cin, ch(cout), k, s, groups=g, padding=get_padding(k, 1))))
            cin = ch(cout)
        self.convs = nn.ModuleList(convs)
        self.conv_post = norm(nn.Conv1d(cin, 1, 3, 1, padding=1))

    def forward(self, y: Tensor) -> tuple[Tensor, list[Tensor]]:
        x = _as_b1t(y)
        return _conv_stack(x, self.convs, self.conv_post, self.lrelu_slope)


class MultiScaleDiscriminator(nn.Module):
    """MSD: ``num_scales`` :class:`DiscriminatorS` on the raw waveform and on x2, x4 average-pooled copies
    (``AvgPool1d(4, 2, padding=2)`` between scales); spectral norm on the first (raw-audio) one, weight norm on
    the others (Sec. 2.3).

    ``forward(y (B, T) | (B, 1, T)) -> (logits: list of (B, N_s), fmaps: list of lists)``.
    """

    def __init__(self, num_scales: int = 3, width: float = 1.0):
        super().__init__()
        if num_scales < 1:
            raise ConfigError(f"MultiScaleDiscriminator needs num_scales >= 1, got {num_scales}")
        self.discriminators = nn.ModuleList(
            DiscriminatorS(use_spectral_norm=(i == 0), width=width) for i in range(num_scales)
        )
        self.meanpools = nn.ModuleList(nn.AvgPool1d(4, 2, padding=2) for _ in range(num_scales - 1))

    def forward(self, y: Tensor) -> Outputs:
        x = _as_b1t(y)
        logits, fmaps = [], []
        for i, d in enumerate(self.discriminators):
            if i:
                x = self.meanpools[i - 1](x)
            logit, fmap = d(x)
            logits.append(logit)
            fmaps.append(fmap)
        return logits, fmaps


def convert_official_discriminator_keys(state: Mapping[str, Tensor], prefix: str = "") -> dict[str, Tensor]:
    """Official ``do_*`` checkpoint (``{"mpd": ..., "msd": ...}`` sub-dicts) -> this module's layout.

    Pass ``state["mpd"]`` or ``state["msd"]``; keys with ``prefix`` (e.g. ``"mpd."``) are selected and
    stripped. Legacy ``weight_g``/``weight_v`` and spectral ``weight_orig``/``weight_u``/``weight_v`` become
    parametrization keys; layer names already match.
    """
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return convert_legacy_weight_norm_keys(dict(state))
