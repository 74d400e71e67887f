"""Convolution building blocks: conv-norm-activation, PANNs' CNN14 block, causal conv, channel LayerNorm.

Conventions: 1-D inputs are ``(B, C, T)``, 2-D inputs ``(B, C, F, T)`` (or any ``(B, C, H, W)``).
"Same" padding follows TensorFlow/``torch``'s ``padding="same"``: the total padding is
``dilation * (kernel - 1)``, split evenly, the odd sample going to the right; with ``stride > 1`` the output
length is ``ceil(L / stride)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import AudioError, ConfigError

__all__ = [
    "CausalConv1d", "ChannelLayerNorm", "ConvBlock2d", "ConvNormAct", "get_activation", "get_padding",
    "same_padding",
]


def get_padding(kernel: int, dilation: int = 1) -> int:
    """Symmetric padding that keeps the length of a stride-1 conv: ``dilation * (kernel - 1) // 2``.

    Same formula as HiFi-GAN's ``utils.get_padding`` (``int((k * d - d) / 2)``); exact "same" padding only
    for odd kernels (for even ones the output is one sample shorter, as in the official code).
    """
    if kernel < 1 or dilation < 1:
        raise ConfigError(f"kernel ({kernel}) and dilation ({dilation}) must be >= 1")
    return dilation * (kernel - 1) // 2


def same_padding(kernel: int, dilation: int = 1) -> tuple[int, int]:
    """``(left, right)`` padding giving "same" output length; the extra sample (even kernels) goes right."""
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2


_ACTIVATIONS = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "mish": nn.Mish,
    "prelu": nn.PReLU,
    "leaky_relu": nn.LeakyReLU,
    "identity": nn.Identity,
}


def get_activation(act: str | nn.Module | None, **kwargs) -> nn.Module:
    """An activation module from a name (``relu``, ``gelu``, ``silu``/``swish``, ``elu``, ``tanh``,
    ``sigmoid``, ``mish``, ``prelu``, ``leaky_relu`` — pass ``negative_slope=...``), a module, or None
    (identity)."""
    if act is None:
        return nn.Identity()
    if isinstance(act, nn.Module):
        return act
    try:
        return _ACTIVATIONS[act.lower()](**kwargs)
    except KeyError:
        raise ConfigError(f"unknown activation {act!r}; choose one of {sorted(_ACTIVATIONS)}") from None


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel dimension of ``(B, C, T)`` (or ``(B, C, *)``), as ConvNeXt's
    ``LayerNorm(data_format="channels_first")``: every time step is normalised over its ``C`` channels."""

    def __init__(self, channels: int, eps: float = 1e-5, affine: bool = True):
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(channels)) if affine else None

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim < 2 or x.shape[1] != self.channels:
            raise AudioError(f"ChannelLayerNorm({self.channels}) expects (B, {self.channels}, ...), "
                             f"got shape {tuple(x.shape)}")
        # Move channels last so F.layer_norm's fused kernel does the work, then move them back. Positive axis
        # indices: a negative one is traced into an ONNX Transpose perm that ONNX Runtime rejects.
        last = x.ndim - 1
        y = F.layer_norm(x.movedim(1, last), (self.channels,), self.weight, self.bias, self.eps)
        return y.movedim(last, 1)

    def extra_repr(self) -> str:
        return f"{self.channels}, eps={self.eps}, affine={self.weight is not None}"


def _tuple(v: int | Sequence[int], n: int, what: str) -> tuple[int, ...]:
    if isinstance(v, int):
        return (v,) * n
    v = tuple(int(i) for i in v)
    if len(v) != n:
        raise ConfigError(f"{what} must be an int or a {n}-tuple, got {v}")
    return v


class ConvNormAct(nn.Module):
    """``conv -> norm -> act`` for 1-D ``(B, C_in, T) -> (B, C_out, T')`` or 2-D ``(B, C_in, H, W)`` inputs.

    Args:
        padding: ``"same"`` (output ``ceil(L / stride)``, any kernel/dilation; asymmetric padding is done
            with ``F.pad`` only when the kernel's receptive field is even), ``"valid"`` or explicit ints.
        norm: ``"batch"``, ``"layer"`` (:class:`ChannelLayerNorm`), or ``None``.
        bias: defaults to ``norm != "batch"`` (BatchNorm's shift makes a conv bias redundant).
        act: a name for :func:`get_activation`, a module, or ``None``; ``act_kwargs`` go to its constructor.

    Submodules are ``conv``, ``norm``, ``act``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int] = 3,
                 stride: int | Sequence[int] = 1, padding: str | int | Sequence[int] = "same",
                 dilation: int | Sequence[int] = 1, groups: int = 1, bias: bool | None = None,
                 norm: str | None = "batch", act: str | nn.Module | None = "relu", dims: int = 1,
                 norm_eps: float = 1e-5, act_kwargs: dict | None = None):
        super().__init__()
        if dims not in (1, 2):
            raise ConfigError(f"ConvNormAct supports dims=1 or 2, got {dims}")
        if norm not in ("batch", "layer", None):
            raise ConfigError(f"unknown norm {norm!r}; choose 'batch', 'layer' or None")
        self.dims = dims
        k = _tuple(kernel_size, dims, "kernel_size")
        s = _tuple(stride, dims, "stride")
        d = _tuple(dilation, dims, "dilation")
        self._pad: tuple[int, ...] | None = None  # F.pad spec when "same" needs asymmetric padding
        if padding == "same":
            lr = [same_padding(ki, di) for ki, di in zip(k, d)]
            if all(a == b for a, b in lr):
                conv_pad: tuple[int, ...] | str = tuple(a for a, _ in lr)
            else:
                conv_pad = 0
                # F.pad lists the last dimension first.
                self._pad = tuple(p for a, b in reversed(lr) for p in (a, b))
        elif padding == "valid":
            conv_pad = 0
        elif isinstance(padding, str):
            raise ConfigError(f"padding must be 'same', 'valid' or ints, got {padding!r}")
        else:
            conv_pad = _tuple(padding, dims, "padding")
        conv_cls = nn.Conv1d if dims == 1 else nn.Conv2d
        self.conv = conv_cls(in_channels, out_channels, k, s, conv_pad, d, groups,
                             bias=(norm != "batch") if bias is None else bias)
        if norm == "batch":
            self.norm: nn.Module = (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(out_channels, eps=norm_eps)
        elif norm == "layer":
            self.norm = ChannelLayerNorm(out_channels, eps=norm_eps)
        else:
            self.norm = nn.Identity()
        self.act = get_activation(act, **(act_kwargs or {}))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != self.dims + 2:
            raise AudioError(f"ConvNormAct(dims={self.dims}) expects a {self.dims + 2}-D input "
                             f"(B, C, {'T' if self.dims == 1 else 'H, W'}), got shape {tuple(x.shape)}")
        if self._pad is not None:
            x = F.pad(x, self._pad)
        return self.act(self.norm(self.conv(x)))


class CausalConv1d(nn.Conv1d):
    """1-D convolution that sees only the past: ``(B, C_in, T) -> (B, C_out, ceil(T / stride))``.

    Left-pads ``dilation * (kernel - 1)`` zeros, so output ``t`` depends on inputs ``<= t * stride``
    (WaveNet, van den Oord et al. 2016). A plain ``nn.Conv1d`` subclass: parameters are ``weight``/``bias``
    and :func:`audiozoo.nn.weight_norm.apply_weight_norm` treats it as a Conv1d.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 dilation: int = 1, groups: int = 1, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride, 0, dilation, groups, bias)
        self.causal_padding = dilation * (kernel_size - 1)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.pad(x, (self.causal_padding, 0)))


def _init_panns(block: ConvBlock2d) -> None:
    # PANNs ``init_layer``/``init_bn``: Xavier-uniform convs, BatchNorm weight 1 and bias 0.
    for conv in (block.conv1, block.conv2):
        nn.init.xavier_uniform_(conv.weight)
    for bn in (block.bn1, block.bn2):
        nn.init.ones_(bn.weight)
        nn.init.zeros_(bn.bias)


class ConvBlock2d(nn.Module):
    """PANNs' CNN14 ``ConvBlock`` (Kong et al. 2020, qiuqiangkong/audioset_tagging_cnn ``models.py``).

    Two ``3x3 conv (no bias) -> BatchNorm -> ReLU`` then pooling: ``(B, C_in, T, F) -> (B, C_out, T/p0, F/p1)``.
    Parameter names (``conv1``, ``bn1``, ``conv2``, ``bn2``) match the official code so checkpoints load
    unchanged.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if not self.conv1.weight.is_meta:
            _init_panns(self)

    def forward(self, x: Tensor, pool_size: int | tuple[int, int] = (2, 2), pool_type: str = "avg") -> Tensor:
        """``pool_type``: ``"avg"``, ``"max"`` or ``"avg+max"`` (the sum of both, as PANNs)."""
        if x.ndim != 4:
            raise AudioError(f"ConvBlock2d expects (B, C, T, F), got shape {tuple(x.shape)}")
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        if pool_type == "avg":
            return F.avg_pool2d(x, pool_size)
        if pool_type == "max":
            return F.max_pool2d(x, pool_size)
        if pool_type == "avg+max":
            return F.avg_pool2d(x, pool_size) + F.max_pool2d(x, pool_size)
        raise ConfigError(f"pool_type must be 'avg', 'max' or 'avg+max', got {pool_type!r}")
