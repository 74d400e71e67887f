"""Non-causal gated WaveNet stack (``WN``) of WaveGlow / Glow-TTS / VITS / PortaSpeech, and NATSpeech's residual
conv blocks.

* :class:`WN`: ``n_layers`` dilated convolutions ``hidden -> 2 hidden`` (weight-normalised), each gated
  ``tanh(a) * sigmoid(b)`` after adding its slice of a 1x1-projected condition, then a 1x1 ``res_skip`` layer whose
  first half updates the residual stream and whose second half is summed into the output (the last layer has only
  the skip half). Prenger et al., WaveGlow (arXiv:1811.00002) Section 2; the layout (parameter names ``in_layers``,
  ``res_skip_layers``, ``cond_layer``) follows the Glow-TTS / NATSpeech ``WN`` so their checkpoints load after
  :func:`audiozoo.nn.weight_norm.convert_legacy_weight_norm_keys`.
* :class:`ResConvBlocks` / :class:`ConditionalResConvBlocks`: NATSpeech's ``ConvBlocks`` (residual blocks of
  ``LayerNorm -> conv k (2x channels) -> * k^-0.5 -> GELU -> 1x1 conv``, a final LayerNorm and an output conv), the
  "conv" encoder / decoder of PortaSpeech's fVAE (``fvae_encoder_type: conv``) and its text-encoder post-net.

Tensors are channels first ``(B, C, T)``; ``mask`` is ``(B, 1, T)`` with 1 on valid frames.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

__all__ = ["WN", "ConditionalResConvBlocks", "ResConvBlocks"]


class WN(nn.Module):
    """Gated WaveNet stack: ``forward(x (B, H, T), mask (B, 1, T) | None, cond (B, C_cond, T) | None) -> (B, H, T)``.

    Args:
        hidden: residual / skip width ``H`` (even).
        kernel_size: odd kernel of the dilated convolutions ("same" padding).
        dilation_rate: layer ``i`` has dilation ``dilation_rate ** i``.
        n_layers: number of gated layers.
        cond_channels: width of the condition (0 = none); one weight-normalised 1x1 conv maps it to
            ``2 H n_layers`` channels, sliced per layer.
        dropout: dropout on each dilated conv output.
        share_cond_layers: the condition is already projected by the caller (Glow's shared ``cond_layer``).
    """

    def __init__(self, hidden: int, kernel_size: int, dilation_rate: int, n_layers: int, cond_channels: int = 0,
                 dropout: float = 0.0, share_cond_layers: bool = False) -> None:
        super().__init__()
        if kernel_size % 2 != 1 or hidden % 2:
            raise ValueError(f"WN needs an odd kernel and an even width, got {kernel_size}, {hidden}")
        self.hidden, self.n_layers, self.share_cond_layers = hidden, n_layers, share_cond_layers
        self.drop = nn.Dropout(dropout)
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        if cond_channels and not share_cond_layers:
            self.cond_layer = weight_norm(nn.Conv1d(cond_channels, 2 * hidden * n_layers, 1))
        for i in range(n_layers):
            d = dilation_rate ** i
            self.in_layers.append(weight_norm(nn.Conv1d(hidden, 2 * hidden, kernel_size, dilation=d,
                                                        padding=(kernel_size * d - d) // 2)))
            out = 2 * hidden if i < n_layers - 1 else hidden
            self.res_skip_layers.append(weight_norm(nn.Conv1d(hidden, out, 1)))

    def forward(self, x: Tensor, mask: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        m = 1.0 if mask is None else mask
        h = self.hidden
        out = torch.zeros_like(x)
        if cond is not None and not self.share_cond_layers:
            cond = self.cond_layer(cond)
        for i in range(self.n_layers):
            a = self.drop(self.in_layers[i](x))
            if cond is not None:
                a = a + cond[:, i * 2 * h:(i + 1) * 2 * h]
            acts = torch.tanh(a[:, :h]) * torch.sigmoid(a[:, h:])
            rs = self.res_skip_layers[i](acts)
            if i < self.n_layers - 1:
                x = (x + rs[:, :h]) * m
                out = out + rs[:, h:]
            else:
                out = out + rs
        return out * m


class _ChannelLN(nn.LayerNorm):
    """LayerNorm over the channels of a ``(B, C, T)`` tensor (torch's, eps 1e-5)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.transpose(1, -1)).transpose(1, -1)


class _Scale(nn.Module):
    def __init__(self, s: float) -> None:
        super().__init__()
        self.s = s

    def forward(self, x: Tensor) -> Tensor:
        return x * self.s


class _ResidualBlock(nn.Module):
    """``n`` x [LN -> conv k (c_multiple x) -> * k^-0.5 -> GELU -> 1x1], each residual, masked by non-zero frames."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, n: int = 2, c_multiple: int = 2) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(
            _ChannelLN(channels),
            nn.Conv1d(channels, c_multiple * channels, kernel_size, dilation=dilation,
                      padding=dilation * (kernel_size - 1) // 2),
            _Scale(kernel_size ** -0.5), nn.GELU(), nn.Conv1d(c_multiple * channels, channels, 1))
            for _ in range(n))

    def forward(self, x: Tensor) -> Tensor:
        keep = (x.abs().sum(1) > 0).to(x.dtype)[:, None]
        for b in self.blocks:
            x = (x + b(x)) * keep
        return x


class ResConvBlocks(nn.Module):
    """NATSpeech ``ConvBlocks`` (LayerNorm variant): ``(B, C, T) -> (B, out, T)`` (``btc=True``: ``(B, T, C)``).

    Padding is recognised as all-zero frames (as the reference) unless ``mask (B, 1, T)`` is given."""

    def __init__(self, hidden: int, out_dims: int, dilations: Sequence[int], kernel_size: int,
                 layers_in_block: int = 2, c_multiple: int = 2, post_net_kernel: int = 3, btc: bool = True) -> None:
        super().__init__()
        self.btc = btc
        self.res_blocks = nn.Sequential(*[_ResidualBlock(hidden, kernel_size, d, layers_in_block, c_multiple)
                                          for d in dilations])
        self.last_norm = _ChannelLN(hidden)
        self.post_net1 = nn.Conv1d(hidden, out_dims, post_net_kernel, padding=post_net_kernel // 2)
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                nn.init.xavier_uniform_(m.weight)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if self.btc:
            x = x.transpose(1, 2)
            mask = None if mask is None else mask.transpose(1, 2)
        keep = (x.abs().sum(1) > 0).to(x.dtype)[:, None] if mask is None else mask
        x = self.res_blocks(x) * keep
        x = self.last_norm(x) * keep
        x = self.post_net1(x) * keep
        return x.transpose(1, 2) if self.btc else x


class ConditionalResConvBlocks(ResConvBlocks):
    """NATSpeech ``ConditionalConvBlocks``: ``x + conv3(cond)`` then :class:`ResConvBlocks`, channels first.

    ``forward(x (B, H, T), mask (B, 1, T), cond (B, C_cond, T)) -> (B, H, T)`` (the :class:`WN` signature)."""

    def __init__(self, hidden: int, cond_channels: int, out_dims: int, n_layers: int, kernel_size: int,
                 layers_in_block: int = 2) -> None:
        super().__init__(hidden, out_dims, [1] * n_layers, kernel_size, layers_in_block, btc=False)
        self.g_prenet = nn.Conv1d(cond_channels, hidden, 3, padding=1)
        nn.init.xavier_uniform_(self.g_prenet.weight)

    def forward(self, x: Tensor, mask: Tensor | None = None, cond: Tensor | None = None) -> Tensor:
        if cond is None:
            raise ValueError("ConditionalResConvBlocks needs a condition")
        x = x + self.g_prenet(cond)
        if mask is not None:
            x = x * mask
        return super().forward(x)  # the reference re-derives the mask from the non-zero frames
