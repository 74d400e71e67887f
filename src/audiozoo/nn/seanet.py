"""SEANet encoder / decoder as EnCodec uses them (the shared base of the codec family).

Défossez, Copet, Synnaeve & Adi, "High Fidelity Neural Audio Compression", arXiv:2210.13438 (2022), Section 3.1
(architecture after SEANet, Tagliasacchi et al. 2020, and SoundStream, Zeghidour et al. 2021): a first conv
(k7, ``n_filters`` channels), then per stride ``r`` one residual unit (kernel 3 then 1, hidden channels
``C / compress`` -- Demucs v3's compression) and an ELU + strided conv (kernel ``2r``, stride ``r``) that doubles the
channels; two LSTM layers with a skip around them; ELU + a final conv (k7) to ``dimension`` channels. The decoder
mirrors it with transposed convolutions. Every convolution is weight-normalised (24 kHz model) or followed by a
one-group GroupNorm ("time_group_norm", 48 kHz model).

Padding follows the official ``encodec`` package (CC BY-NC, read for the facts only): a conv of kernel ``k``,
dilation ``d`` and stride ``s`` is padded by ``(k - 1) d - (s - 1)`` samples (all on the left when causal, else split
with the extra sample on the left) plus the few samples on the right that make the last window full, so an input of
``T`` samples gives ``ceil(T / s)`` frames; reflect padding on inputs shorter than the pad is done after extra zeros
on the right. Transposed convs trim ``k - s`` samples (all on the right when causal with ``trim_right_ratio=1``).
So ``encoder(T samples) -> ceil(T / hop)`` frames and ``decoder(L frames) -> L * hop`` samples.

Module names follow EnCodec's state-dict layout (``model.<i>.conv.conv.*``, ``model.<i>.block.<j>.conv.conv.*``,
``model.<i>.shortcut.conv.conv.*``, ``model.<i>.lstm.*``, ``model.<i>.convtr.convtr.*``) so official checkpoints
load after renaming the legacy weight-norm keys (:func:`audiozoo.nn.weight_norm.convert_legacy_weight_norm_keys`).
Parity with ``encodec.modules.SEANetEncoder/SEANetDecoder`` under the same weights: ``tests/nn/test_seanet.py``.

Streaming: these modules are offline (the whole signal at once); long inputs are chunked with context by
:class:`audiozoo.pipelines.streaming.StreamingMixin` in the codec pipeline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from ..errors import AudioError, ConfigError

__all__ = [
    "CONV_NORMS", "SEANetDecoder", "SEANetEncoder", "SEANetResnetBlock", "SLSTM", "StreamableConv1d",
    "StreamableConvTranspose1d", "extra_padding_for_conv1d", "pad1d",
]

#: normalisations of EnCodec's convolutions: weight norm (24 kHz), one-group GroupNorm over time (48 kHz), none
CONV_NORMS = ("none", "weight_norm", "time_group_norm")


def _check_norm(norm: str, causal: bool) -> None:
    if norm not in CONV_NORMS:
        raise ConfigError(f"unknown conv norm {norm!r}; choose one of {CONV_NORMS}")
    if norm == "time_group_norm" and causal:
        # GroupNorm pools over the whole time axis: a causal model cannot use it (EnCodec raises the same)
        raise ConfigError("time_group_norm is not causal; use weight_norm or none with causal=True")


def extra_padding_for_conv1d(length: int, kernel: int, stride: int, padding_total: int = 0) -> int:
    """Samples to add on the right so that the last window of a strided conv is full (EnCodec's
    ``get_extra_padding_for_conv1d``): the output then has ``ceil((T + padding_total - kernel) / stride) + 1``
    frames and a transposed conv can rebuild every input sample."""
    # = (ceil(n_frames) - 1) * stride + kernel - padding_total - length with n_frames = (length - kernel +
    # padding_total) / stride + 1, in integers. A stride-1 conv's last window is always full: 0 without looking
    # at the length, so a traced (ONNX) graph keeps its time axis dynamic; a strided conv's padding is frozen
    # at the traced length's value, right for every length that is a multiple of the hop, as the example is.
    if stride == 1:
        return 0
    return int((-(length - kernel + padding_total)) % stride)


def pad1d(x: Tensor, left: int, right: int, mode: str = "constant") -> Tensor:
    """``F.pad`` of ``(..., T)`` that also reflects when ``T <= max(left, right)``: zeros are appended first, the
    reflection is taken, then the appended zeros are cut again (as EnCodec's ``pad1d``)."""
    if left < 0 or right < 0:
        raise ConfigError(f"negative padding ({left}, {right})")
    if mode != "reflect":
        return F.pad(x, (left, right), mode=mode)
    length = x.shape[-1]
    extra = max(left, right) - length + 1 if length <= max(left, right) else 0
    if not extra:  # no slice: a traced ``y.shape[-1]`` would freeze the time axis in an exported graph
        return F.pad(x, (left, right), mode="reflect")
    y = F.pad(F.pad(x, (0, extra)), (left, right), mode="reflect")
    return y[..., :-extra]


class _NormConv(nn.Module):
    """A convolution and its normalisation: ``conv`` (weight-normalised for ``weight_norm``) then ``norm``
    (``GroupNorm(1, C)`` for ``time_group_norm``, else identity)."""

    def __init__(self, conv: nn.Module, norm: str, attr: str = "conv"):
        super().__init__()
        self.attr = attr
        setattr(self, attr, weight_norm(conv) if norm == "weight_norm" else conv)
        self.norm = nn.GroupNorm(1, conv.out_channels) if norm == "time_group_norm" else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(getattr(self, self.attr)(x))


class StreamableConv1d(nn.Module):
    """Conv1d ``(B, C_in, T) -> (B, C_out, ceil(T / stride))`` with EnCodec's causal / asymmetric padding."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, dilation: int = 1,
                 groups: int = 1, bias: bool = True, causal: bool = False, norm: str = "none",
                 pad_mode: str = "reflect"):
        super().__init__()
        _check_norm(norm, causal)
        self.conv = _NormConv(nn.Conv1d(in_channels, out_channels, kernel_size, stride, dilation=dilation,
                                        groups=groups, bias=bias), norm)
        self.kernel_size, self.stride, self.dilation = kernel_size, stride, dilation
        self.causal, self.pad_mode = causal, pad_mode

    def forward(self, x: Tensor) -> Tensor:
        k_eff = (self.kernel_size - 1) * self.dilation + 1
        padding_total = k_eff - self.stride
        extra = extra_padding_for_conv1d(x.shape[-1], k_eff, self.stride, padding_total)
        if self.causal:
            left, right = padding_total, extra
        else:  # the odd sample goes to the left (EnCodec), unlike "same" padding
            right = padding_total // 2
            left, right = padding_total - right, right + extra
        return self.conv(pad1d(x, left, right, self.pad_mode))


class StreamableConvTranspose1d(nn.Module):
    """ConvTranspose1d ``(B, C_in, L) -> (B, C_out, L * stride)``: the ``kernel - stride`` overhanging samples are
    trimmed (causal: ``ceil(trim_right_ratio * (k - s))`` on the right, the rest on the left; else split, the odd
    one on the left)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, causal: bool = False,
                 norm: str = "none", trim_right_ratio: float = 1.0):
        super().__init__()
        _check_norm(norm, causal)
        if not 0.0 <= trim_right_ratio <= 1.0 or (not causal and trim_right_ratio != 1.0):
            raise ConfigError(f"trim_right_ratio must be in [0, 1] and only differ from 1 when causal, got "
                              f"{trim_right_ratio}")
        self.convtr = _NormConv(nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride), norm, "convtr")
        self.kernel_size, self.stride = kernel_size, stride
        self.causal, self.trim_right_ratio = causal, trim_right_ratio

    def forward(self, x: Tensor) -> Tensor:
        y = self.convtr(x)
        total = self.kernel_size - self.stride
        right = math.ceil(total * self.trim_right_ratio) if self.causal else total // 2
        left = total - right
        return y[..., left: y.shape[-1] - right]


class SLSTM(nn.Module):
    """LSTM over ``(B, C, T)`` (time-major inside, as EnCodec), ``C`` in and out, with a skip connection."""

    def __init__(self, dim: int, num_layers: int = 2, skip: bool = True):
        super().__init__()
        self.skip = skip
        self.lstm = nn.LSTM(dim, dim, num_layers)

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(2, 0, 1)
        y, _ = self.lstm(x)
        if self.skip:
            y = y + x
        return y.permute(1, 2, 0)


class SEANetResnetBlock(nn.Module):
    """Residual unit ``x -> shortcut(x) + block(x)``: ``block`` = (ELU, conv k_i dilation d_i) per kernel, the inner
    channels ``dim // compress``; ``shortcut`` a 1x1 conv (``true_skip=False``, EnCodec) or the identity."""

    def __init__(self, dim: int, kernel_sizes: Sequence[int] = (3, 1), dilations: Sequence[int] = (1, 1),
                 alpha: float = 1.0, norm: str = "weight_norm", causal: bool = False, pad_mode: str = "reflect",
                 compress: int = 2, true_skip: bool = True):
        super().__init__()
        if len(kernel_sizes) != len(dilations):
            raise ConfigError("SEANetResnetBlock needs one dilation per kernel size")
        hidden = dim // compress
        layers: list[nn.Module] = []
        for i, (k, d) in enumerate(zip(kernel_sizes, dilations)):
            cin = dim if i == 0 else hidden
            cout = dim if i == len(kernel_sizes) - 1 else hidden
            layers += [nn.ELU(alpha), StreamableConv1d(cin, cout, k, dilation=d, norm=norm, causal=causal,
                                                       pad_mode=pad_mode)]
        self.block = nn.Sequential(*layers)
        self.shortcut = nn.Identity() if true_skip else StreamableConv1d(dim, dim, 1, norm=norm, causal=causal,
                                                                         pad_mode=pad_mode)

    def forward(self, x: Tensor) -> Tensor:
        return self.shortcut(x) + self.block(x)


def _check_common(ratios: Sequence[int], n_filters: int, dimension: int) -> list[int]:
    ratios = [int(r) for r in ratios]
    if not ratios or any(r < 1 for r in ratios) or n_filters < 1 or dimension < 1:
        raise ConfigError(f"SEANet needs ratios >= 1, n_filters >= 1 and dimension >= 1; got ratios={ratios}, "
                          f"n_filters={n_filters}, dimension={dimension}")
    return ratios


class SEANetEncoder(nn.Module):
    """Waveform ``(B, channels, T)`` -> latents ``(B, dimension, ceil(T / hop_length))``.

    ``ratios`` are given in the decoder's (upsampling) order, as EnCodec; the encoder downsamples by them in
    reverse. ``hop_length = prod(ratios)`` (EnCodec 24 kHz: (8, 5, 4, 2) = 320, 75 frames/s).
    """

    def __init__(self, channels: int = 1, dimension: int = 128, n_filters: int = 32, n_residual_layers: int = 1,
                 ratios: Sequence[int] = (8, 5, 4, 2), alpha: float = 1.0, norm: str = "weight_norm",
                 kernel_size: int = 7, last_kernel_size: int = 7, residual_kernel_size: int = 3, dilation_base: int = 2,
                 causal: bool = False, pad_mode: str = "reflect", true_skip: bool = False, compress: int = 2,
                 lstm: int = 2):
        super().__init__()
        ratios = _check_common(ratios, n_filters, dimension)
        self.channels, self.dimension = channels, dimension
        self.ratios = list(reversed(ratios))
        self.hop_length = math.prod(ratios)
        kw = dict(norm=norm, causal=causal, pad_mode=pad_mode)
        mult = 1
        layers: list[nn.Module] = [StreamableConv1d(channels, n_filters, kernel_size, **kw)]
        for r in self.ratios:
            for j in range(n_residual_layers):
                layers.append(SEANetResnetBlock(mult * n_filters, (residual_kernel_size, 1), (dilation_base ** j, 1),
                                                alpha=alpha, compress=compress, true_skip=true_skip, **kw))
            layers += [nn.ELU(alpha), StreamableConv1d(mult * n_filters, 2 * mult * n_filters, 2 * r, stride=r, **kw)]
            mult *= 2
        if lstm:
            layers.append(SLSTM(mult * n_filters, num_layers=lstm))
        layers += [nn.ELU(alpha), StreamableConv1d(mult * n_filters, dimension, last_kernel_size, **kw)]
        self.model = nn.Sequential(*layers)

    def num_frames(self, num_samples: int) -> int:
        """Latent frames for ``num_samples`` input samples: ``ceil(T / hop_length)``."""
        return -(-int(num_samples) // self.hop_length)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 3 or x.shape[1] != self.channels:
            raise AudioError(f"SEANetEncoder expects (B, {self.channels}, T), got {tuple(x.shape)}")
        if x.shape[-1] < 1:
            raise AudioError("SEANetEncoder got an empty waveform")
        return self.model(x)


class SEANetDecoder(nn.Module):
    """Latents ``(B, dimension, L)`` -> waveform ``(B, channels, L * hop_length)`` (upsampling by ``ratios`` in
    order). ``final_activation``: an optional ``torch.nn`` activation name applied last (e.g. ``"Tanh"``)."""

    def __init__(self, channels: int = 1, dimension: int = 128, n_filters: int = 32, n_residual_layers: int = 1,
                 ratios: Sequence[int] = (8, 5, 4, 2), alpha: float = 1.0, final_activation: str | None = None,
                 norm: str = "weight_norm", kernel_size: int = 7, last_kernel_size: int = 7,
                 residual_kernel_size: int = 3, dilation_base: int = 2, causal: bool = False,
                 pad_mode: str = "reflect", true_skip: bool = False, compress: int = 2, lstm: int = 2,
                 trim_right_ratio: float = 1.0):
        super().__init__()
        ratios = _check_common(ratios, n_filters, dimension)
        self.channels, self.dimension, self.ratios = channels, dimension, ratios
        self.hop_length = math.prod(ratios)
        kw = dict(norm=norm, causal=causal, pad_mode=pad_mode)
        mult = 2 ** len(ratios)
        layers: list[nn.Module] = [StreamableConv1d(dimension, mult * n_filters, kernel_size, **kw)]
        if lstm:
            layers.append(SLSTM(mult * n_filters, num_layers=lstm))
        for r in ratios:
            layers += [nn.ELU(alpha), StreamableConvTranspose1d(mult * n_filters, mult * n_filters // 2, 2 * r,
                                                                stride=r, causal=causal, norm=norm,
                                                                trim_right_ratio=trim_right_ratio)]
            for j in range(n_residual_layers):
                layers.append(SEANetResnetBlock(mult * n_filters // 2, (residual_kernel_size, 1),
                                                (dilation_base ** j, 1), alpha=alpha, compress=compress,
                                                true_skip=true_skip, **kw))
            mult //= 2
        layers += [nn.ELU(alpha), StreamableConv1d(n_filters, channels, last_kernel_size, **kw)]
        if final_activation is not None:
            act = getattr(nn, final_activation, None)
            if act is None:
                raise ConfigError(f"unknown final_activation {final_activation!r} (a torch.nn class name)")
            layers.append(act())
        self.model = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        if z.ndim != 3 or z.shape[1] != self.dimension:
            raise AudioError(f"SEANetDecoder expects (B, {self.dimension}, L), got {tuple(z.shape)}")
        return self.model(z)
