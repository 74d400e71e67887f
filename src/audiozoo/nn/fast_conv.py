"""CPU inference rewrites for 1-D convolutional generators (HiFi-GAN-family trunks), same function, less time.

:class:`FusedHiFiGANTrunk` computes :class:`audiozoo.nn.vocoder.HiFiGANTrunk`'s forward (Kong et al. 2020,
arXiv:2010.05646; official ``jik876/hifi-gan`` ``Generator``) with oneDNN convolutions called directly:

- every ``Conv1d``/``ConvTranspose1d`` runs as a 2-D oneDNN convolution on ``(B, C, 1, T)`` tensors in
  channels-last memory (NWC, oneDNN's brgemm kernels) instead of PyTorch's NCW path (reordered to a blocked
  layout around every call): 1.1-1.5x faster per conv for most of HiFi-GAN's shapes (k=3 and small channel
  counts gain most), but ~1.3x slower for k=11 with dilation 3/5 at 128 channels (per-conv table, 1 thread:
  ``benchmarks/results/hifigan_per_conv_cpu.json``);
- weights are reordered once into oneDNN's blocked layout (``torch.ops.mkldnn._reorder_convolution_weight``,
  as inductor's freezing pass does) instead of at every call, with weight norm folded in first (the reference
  ``transformers`` HiFi-GANs and the official ``remove_weight_norm`` do the same at inference);
- oneDNN post-ops fuse the elementwise work into the convolutions: ``conv1`` + ``leaky_relu`` (eltwise
  post-op), ``conv2`` + the residual add (``sum`` post-op, written in place into the residual when the
  residual is a temporary), ``conv_post`` + ``tanh``;
- the three resblocks of one MRF share ``leaky_relu(x)`` of their common input, and the MRF's ``/ n`` is
  folded into the next layer's weights (``leaky_relu`` is positively homogeneous, so
  ``W leaky_relu(s / n) = (W / n) leaky_relu(s)``).

Per upsampling stage of HiFi-GAN V1 that leaves 10 elementwise passes over the activations instead of 31.
Whole V1 on 10 s of speech (529 GFLOP): 1.39x (2 threads) / 1.30x (1 thread) faster than transformers'
``FastSpeech2ConformerHifiGan`` on this project's CPU, at ~95 GFLOP/s = the measured fp32 matmul rate, so
direct fp32 convolutions leave little more to gain (``benchmarks/hifigan_vs_reference.py``).
Float rounding differs from the eager module only by reassociation (max abs difference to transformers'
HiFi-GAN V1 on 10 s of speech in ``benchmarks/results/hifigan_cpu.json``; tests bound it at 1e-5 on tiny
configs).

The fused trunk is inference only (no autograd through the oneDNN ops), float32, CPU, and holds its own
copies of the weights: it does not follow later changes of the module it was built from.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import AudioError, ConfigError
from .resblocks import ResBlock1, ResBlock2

__all__ = ["FusedHiFiGANTrunk", "PackedConv1d", "fast_conv_available"]

_ACTS = ("none", "leaky_relu", "tanh")


def fast_conv_available() -> bool:
    """Whether this PyTorch build has the oneDNN fused-convolution ops used here (x86/ARM builds with mkldnn)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        torch.ops.mkldnn._convolution_pointwise  # noqa: B018 (raises if the op is not registered)
        torch.ops.mkldnn._reorder_convolution_weight  # noqa: B018
    except (AttributeError, RuntimeError):
        return False
    return True


def _plain_weight(conv: nn.Module) -> Tensor:
    """The effective weight of ``conv`` (weight norm evaluated once when present), detached, float32."""
    w = conv.weight  # a parametrized weight is recomputed from (g, v) on access
    return w.detach().float().clone()


class PackedConv1d:
    """One ``nn.Conv1d``/``nn.ConvTranspose1d`` as a prepacked oneDNN convolution on ``(B, C_in, 1, T)``.

    Inputs and outputs are 4-D channels-last float32 tensors ``(B, C, 1, T)`` (a 1-D conv is a 2-D conv with
    a height-1 kernel; padding, stride and dilation act on the width only, and the padding happens inside
    the kernel, with no padded copy). ``scale`` multiplies the weight (not the bias) at packing time.

    Not an ``nn.Module`` on purpose: the packed weight is an opaque oneDNN tensor that is neither a parameter
    nor a buffer, so it never enters a state dict.
    """

    def __init__(self, conv: nn.Conv1d | nn.ConvTranspose1d, scale: float = 1.0):
        if not isinstance(conv, (nn.Conv1d, nn.ConvTranspose1d)) or conv.groups != 1:
            raise ConfigError(f"PackedConv1d packs an ungrouped Conv1d/ConvTranspose1d, got {conv!r}")
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ConfigError("PackedConv1d needs integer zero padding (HiFi-GAN's convs all have it)")
        self.transposed = isinstance(conv, nn.ConvTranspose1d)
        self.padding, self.stride = [0, int(conv.padding[0])], [1, int(conv.stride[0])]
        self.dilation = [1, int(conv.dilation[0])]
        self.output_padding = [0, int(conv.output_padding[0])] if self.transposed else None
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        w = (_plain_weight(conv) * scale).unsqueeze(2)  # (C_out, C_in, 1, k) or (C_in, C_out, 1, k)
        self.bias = None if conv.bias is None else conv.bias.detach().float().clone()
        mk = torch.ops.mkldnn
        with torch.no_grad():
            if self.transposed:
                self.weight = mk._reorder_convolution_transpose_weight(w, self.padding, self.output_padding,
                                                                       self.stride, self.dilation, 1, None)
            else:
                self.weight = mk._reorder_convolution_weight(w, self.padding, self.stride, self.dilation, 1, None)

    def __call__(self, x: Tensor, act: str = "none", slope: float = 0.0) -> Tensor:
        """``conv(x)`` then ``act`` (``"none"``, ``"leaky_relu"`` with ``slope``, ``"tanh"``) in one oneDNN call."""
        scalars = [slope] if act == "leaky_relu" else []
        if self.transposed:
            return torch.ops.mkldnn._convolution_transpose_pointwise(
                x, self.weight, self.bias, self.padding, self.output_padding, self.stride, self.dilation, 1, act,
                scalars, None)
        return torch.ops.mkldnn._convolution_pointwise(x, self.weight, self.bias, self.padding, self.stride,
                                                       self.dilation, 1, act, scalars, None)

    def add(self, x: Tensor, residual: Tensor) -> Tensor:
        """``conv(x) + residual`` as a new tensor (oneDNN binary post-op)."""
        return torch.ops.mkldnn._convolution_pointwise.binary(x, residual, self.weight, self.bias, self.padding,
                                                              self.stride, self.dilation, 1, "add", None, None,
                                                              [], None)

    def add_(self, x: Tensor, acc: Tensor) -> Tensor:
        """``acc += conv(x)`` in place (oneDNN ``sum`` post-op: no new activation buffer); returns ``acc``."""
        return torch.ops.mkldnn._convolution_pointwise_.binary(acc, x, self.weight, self.bias, self.padding,
                                                               self.stride, self.dilation, 1, "add", None, None,
                                                               [], None)


class _FusedMRF:
    """One MRF (mean of resblocks, each ``ResBlock1`` or ``ResBlock2``) on channels-last ``(B, C, 1, T)``.

    Returns the *sum* of the resblocks; the caller folds the ``1 / n`` into the next convolution.
    """

    def __init__(self, mrf: nn.Module, slope: float):
        self.slope = slope
        self.blocks: list[list[tuple[PackedConv1d, ...]]] = []
        for rb in mrf.resblocks:
            if type(rb) is ResBlock1:
                self.blocks.append([(PackedConv1d(c1), PackedConv1d(c2)) for c1, c2 in zip(rb.convs1, rb.convs2)])
            elif type(rb) is ResBlock2:
                self.blocks.append([(PackedConv1d(c),) for c in rb.convs])
            else:
                raise ConfigError(f"FusedHiFiGANTrunk knows ResBlock1/ResBlock2, got {type(rb).__name__}")
            if not self.blocks[-1]:
                raise ConfigError("a fused resblock needs at least one dilation")
            if abs(rb.lrelu_slope - slope) > 0:
                raise ConfigError("all resblocks of a fused trunk must share the trunk's leaky-ReLU slope")

    def __call__(self, x: Tensor) -> Tensor:
        s = self.slope
        shared = F.leaky_relu(x, s)  # every resblock's first layer starts from lrelu(x): compute it once
        acc: Tensor | None = None
        for layers in self.blocks:
            h = x
            for i, convs in enumerate(layers):
                a = shared if i == 0 else F.leaky_relu(h, s)
                if len(convs) == 2:  # ResBlock1: h + conv2(lrelu(conv1_d(lrelu(h))))
                    a = convs[0](a, "leaky_relu", s)
                # h is the caller's x on the first layer (keep it), a temporary of ours afterwards (reuse it)
                h = convs[-1].add(a, h) if i == 0 else convs[-1].add_(a, h)
            acc = h if acc is None else acc.add_(h)
        assert acc is not None
        return acc


class FusedHiFiGANTrunk:
    """Inference-only fused copy of a :class:`~audiozoo.nn.vocoder.HiFiGANTrunk`'s forward, with an optional
    output head ``head_act(conv_post(leaky_relu(x, head_slope)))`` (HiFi-GAN: slope 0.01, ``tanh``).

    ``__call__(mel (B, n_mels, L)) -> (B, C, L * upsample_factor)`` where ``C`` is ``conv_post``'s output
    channels with a head, else the trunk's last channel count. float32 CPU tensors only; no autograd.

    Args:
        trunk: a ``HiFiGANTrunk`` (or subclass: HiFi-GAN, iSTFTNet), weight-normed or not; left unchanged.
        head: the output ``Conv1d`` applied after ``leaky_relu(head_slope)``; ``None`` returns the trunk output
            (the activation before ``head`` is not applied then).
        head_slope: slope of the leaky ReLU before ``head`` (the official generator uses PyTorch's default 0.01).
        head_act: ``"tanh"`` or ``"none"``, fused into ``head``.
    """

    def __init__(self, trunk: nn.Module, head: nn.Conv1d | None = None, head_slope: float = 0.01,
                 head_act: str = "tanh"):
        if not fast_conv_available():
            raise ConfigError("FusedHiFiGANTrunk needs PyTorch's oneDNN (mkldnn) fused convolution ops, "
                              "which this build lacks; use the module's plain forward")
        if head_act not in ("tanh", "none"):
            raise ConfigError(f"head_act must be 'tanh' or 'none', got {head_act!r}")
        for name in ("conv_pre", "ups", "mrfs", "lrelu_slope"):
            if not hasattr(trunk, name):
                raise ConfigError(f"FusedHiFiGANTrunk needs a HiFiGANTrunk, {type(trunk).__name__} has no {name!r}")
        p = next(trunk.parameters(), None)
        if p is not None and p.device.type != "cpu":
            raise ConfigError(f"FusedHiFiGANTrunk is a CPU (oneDNN) path; the model is on {p.device}")
        self.slope = float(trunk.lrelu_slope)
        self.n_mels = int(trunk.conv_pre.in_channels)
        self.conv_pre = PackedConv1d(trunk.conv_pre)
        self.ups: list[PackedConv1d] = []
        self.mrfs: list[_FusedMRF] = []
        fold = 1.0  # the previous MRF's 1 / n, folded into the next conv (see the module docstring)
        for up, mrf in zip(trunk.ups, trunk.mrfs):
            self.ups.append(PackedConv1d(up, scale=fold))
            self.mrfs.append(_FusedMRF(mrf, self.slope))
            fold = 1.0 / len(mrf.resblocks)
        self.trunk_fold = fold  # applied to the trunk output when there is no head
        self.head = None if head is None else PackedConv1d(head, scale=fold)
        self.head_slope, self.head_act = float(head_slope), head_act

    def forward4d(self, mel: Tensor) -> Tensor:
        """``(B, n_mels, L)`` -> channels-last ``(B, C, 1, T)`` (the trunk output times ``n`` when no head)."""
        x = self.conv_pre(mel.unsqueeze(2).contiguous(memory_format=torch.channels_last))
        for up, mrf in zip(self.ups, self.mrfs):
            # x is a temporary of ours (conv_pre's output or the previous MRF's sum): activate it in place
            x = mrf(up(F.leaky_relu(x, self.slope, inplace=True)))
        if self.head is None:
            return x
        return self.head(F.leaky_relu(x, self.head_slope, inplace=True), self.head_act)

    def __call__(self, mel: Tensor) -> Tensor:
        if mel.ndim != 3 or mel.shape[1] != self.n_mels:
            raise AudioError(f"FusedHiFiGANTrunk expects a mel (B, {self.n_mels}, L), got shape {tuple(mel.shape)}")
        if mel.dtype != torch.float32 or mel.device.type != "cpu":
            raise AudioError(f"FusedHiFiGANTrunk runs float32 on the CPU, got {mel.dtype} on {mel.device}")
        with torch.no_grad():  # the oneDNN fused ops have no autograd formulas
            y = self.forward4d(mel).squeeze(2)
        if self.head is None and self.trunk_fold != 1.0:
            y = y * self.trunk_fold
        return y.contiguous()
