"""wav2vec 2.0 / HuBERT convolutional feature encoder and HuBERT's span masks.

Generic pieces of the fairseq raw-waveform encoders (wav2vec 2.0, Baevski et al. 2020, arXiv:2006.11477;
HuBERT, Hsu et al. 2021, arXiv:2106.07447; MERT, arXiv:2306.00107):

- :class:`ConvFeatureEncoder`: a stack of bias-free 1-D convolutions over the waveform, each followed by GELU;
  ``norm="group"`` (fairseq ``extractor_mode="default"``, transformers ``feat_extract_norm="group"``) puts a
  GroupNorm with one group per channel after the first convolution only; ``norm="layer"`` puts a LayerNorm over
  channels after every convolution. Base layout ``[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2``:
  stride 320, receptive field 400 samples.
- :func:`hubert_span_mask`: fairseq's ``compute_mask_indices`` (``mask_selection="static"``): per item,
  ``int(p * n / span + u)`` (at least ``min_masks``) distinct span starts in ``[0, n - span]``, spans of
  ``span`` frames (overlaps allowed), then every item cut to the batch's smallest masked count.

Parameter names follow transformers' ``HubertFeatureEncoder`` (``conv_layers.{i}.conv``, ``conv_layers.0.layer_norm``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import AudioError, ConfigError

__all__ = ["ConvFeatureEncoder", "conv_output_lengths", "hubert_span_mask"]


def conv_output_lengths(lengths: Tensor | int, kernels: Sequence[int], strides: Sequence[int]) -> Tensor | int:
    """Frames after a stack of unpadded convolutions: ``n -> floor((n - k) / s) + 1`` per layer (0 if too short)."""
    out = lengths
    for k, s in zip(kernels, strides):
        if isinstance(out, Tensor):
            out = torch.div(out - k, s, rounding_mode="floor").add(1).clamp(min=0)
        else:
            out = max((int(out) - k) // s + 1, 0)
    return out


class _ConvLayer(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, bias: bool, norm: str | None):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel, stride, bias=bias)
        self.norm_kind = norm
        if norm == "group":
            self.layer_norm: nn.Module | None = nn.GroupNorm(cout, cout, affine=True)
        elif norm == "layer":
            self.layer_norm = nn.LayerNorm(cout, elementwise_affine=True)
        else:
            self.layer_norm = None

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.norm_kind == "group":
            x = self.layer_norm(x)
        elif self.norm_kind == "layer":
            x = self.layer_norm(x.transpose(1, 2)).transpose(1, 2)
        return F.gelu(x)


class ConvFeatureEncoder(nn.Module):
    """Waveform ``(B, T)`` -> features ``(B, C, L)``, ``L = conv_output_lengths(T)``.

    Args:
        dims, kernels, strides: one entry per convolution (channels, kernel size, stride).
        bias: convolution biases (wav2vec 2.0 / HuBERT / MERT base: False).
        norm: ``"group"`` (GroupNorm after the first convolution only) or ``"layer"`` (LayerNorm after each).
    """

    def __init__(self, dims: Sequence[int], kernels: Sequence[int], strides: Sequence[int], bias: bool = False,
                 norm: str = "group"):
        super().__init__()
        if not (len(dims) == len(kernels) == len(strides)) or not dims:
            raise ConfigError(f"conv feature encoder needs equally long dims/kernels/strides, got {len(dims)}, "
                              f"{len(kernels)}, {len(strides)}")
        if norm not in ("group", "layer"):
            raise ConfigError(f"conv feature encoder norm must be 'group' or 'layer', got {norm!r}")
        self.kernels, self.strides = tuple(int(k) for k in kernels), tuple(int(s) for s in strides)
        cin, layers = 1, []
        for i, (d, k, s) in enumerate(zip(dims, kernels, strides)):
            layer_norm = norm if (norm == "layer" or i == 0) else None
            layers.append(_ConvLayer(cin, int(d), int(k), int(s), bias, layer_norm))
            cin = int(d)
        self.conv_layers = nn.ModuleList(layers)
        self.out_dim = cin

    @property
    def total_stride(self) -> int:
        n = 1
        for s in self.strides:
            n *= s
        return n

    @property
    def receptive_field(self) -> int:
        """Samples seen by one output frame (the shortest input giving one frame)."""
        rf, jump = 1, 1
        for k, s in zip(self.kernels, self.strides):
            rf += (k - 1) * jump
            jump *= s
        return rf

    def output_lengths(self, lengths: Tensor | int) -> Tensor | int:
        return conv_output_lengths(lengths, self.kernels, self.strides)

    def forward(self, wav: Tensor) -> Tensor:
        if wav.ndim != 2:
            raise AudioError(f"conv feature encoder expects a waveform (B, T), got {tuple(wav.shape)}")
        if wav.shape[-1] < self.receptive_field:
            raise AudioError(f"conv feature encoder needs at least {self.receptive_field} samples, got {wav.shape[-1]}")
        x = wav[:, None]
        for layer in self.conv_layers:
            x = layer(x)
        return x


def hubert_span_mask(valid: Tensor, max_len: int, prob: float, span: int, min_masks: int = 2,
                     generator: torch.Generator | None = None) -> Tensor:
    """HuBERT / wav2vec 2.0 span mask ``(B, max_len)`` bool over each item's ``valid (B,)`` frames.

    fairseq ``compute_mask_indices(..., mask_selection="static", no_overlap=False)``: item ``i`` with ``n`` valid
    frames gets ``max(min_masks, int(prob * n / span + u))`` distinct starts (``u ~ U[0, 1)``) drawn from
    ``[0, n - span]`` (fewer frames: from ``[0, n - num - 1]``), each masking ``span`` frames clipped to ``n``; then
    every item keeps a random subset of its masked frames of the batch's smallest count, so all items mask the
    same number. Nothing at or past ``valid[i]`` is masked.
    """
    if not 0.0 < prob <= 1.0 or span < 1:
        raise ConfigError(f"span masking needs 0 < prob <= 1 and span >= 1, got prob={prob}, span={span}")
    valid = valid.detach().cpu().long().clamp(min=0, max=int(max_len))
    picked = []
    for n in valid.tolist():
        if n < 1:
            picked.append(torch.zeros(0, dtype=torch.long))
            continue
        u = float(torch.rand((), generator=generator))
        num = max(int(min_masks), int(prob * n / span + u))
        min_len = span
        if n - min_len <= num:
            min_len = n - num - 1
        top = max(n - min_len, 1)
        num = min(num, top)
        starts = torch.randperm(top, generator=generator)[:num]
        idx = torch.unique((starts[:, None] + torch.arange(span)[None]).flatten())
        picked.append(idx[idx < n])
    least = min(len(p) for p in picked)
    mask = torch.zeros(len(picked), int(max_len), dtype=torch.bool)
    for i, idx in enumerate(picked):
        if len(idx) > least:
            idx = idx[torch.randperm(len(idx), generator=generator)[:least]]
        mask[i, idx] = True
    return mask
