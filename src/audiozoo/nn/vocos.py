"""Vocos backbone and iSTFT head (Siuzdak, "Vocos: Closing the gap between time-domain and Fourier-based neural
vocoders for high-quality audio synthesis", arXiv:2306.00112, Section 3), and the attention "pos_net" that
WavTokenizer puts in front of it (Ji et al., arXiv:2408.16532, Section 3.3).

* :class:`VocosBackbone` ``(B, C_in, L) -> (B, L, dim)``: a k7 conv embedding, LayerNorm (or AdaLayerNorm with one
  learned scale/shift per bandwidth id, as Vocos' EnCodec variant and WavTokenizer), ``num_layers`` 1-D ConvNeXt
  blocks (depthwise k7 conv, LayerNorm, Linear ``dim -> intermediate``, GELU, Linear back, layer scale
  initialised to ``1 / num_layers``, residual), a final LayerNorm. ``pos_net=True`` adds WavTokenizer's block after
  the embedding: two ResNet blocks, one single-head self-attention block, two ResNet blocks and a GroupNorm (32
  groups, eps 1e-6, swish activations, dropout 0.1 -- the latent-diffusion VAE blocks in 1-D; official
  ``wavtokenizer/decoder/models.py``).
* :class:`ISTFTHead` ``(B, L, dim) -> (B, L * hop)``: Linear to ``n_fft + 2``, magnitude ``exp(.)`` clipped at 100,
  phase through ``cos``/``sin``, then the inverse STFT with "same" padding (``(win - hop) / 2`` trimmed at both
  ends, so every frame yields exactly ``hop`` samples) or "center" padding (``torch.istft(center=True)``).

The iSTFT is an overlap-add transposed convolution (:class:`audiozoo.dsp.stft.OverlapAddISTFT`, no FFT, exports to
ONNX). Module and parameter names are those of ``vocos`` 0.1.0 (MIT) and the WavTokenizer repository, so their
state dicts load unchanged (the head's ``istft.window`` buffer is recomputed here and dropped by the converters).
Parity with ``vocos.models.VocosBackbone`` + ``vocos.heads.ISTFTHead``: ``tests/nn/test_vocos.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..dsp.stft import OverlapAddISTFT
from ..errors import AudioError, ConfigError

__all__ = [
    "AdaLayerNorm", "AttnBlock1d", "ISTFTHead", "ResnetBlock1d", "SameISTFT", "VocosBackbone", "VocosConvNeXtBlock",
]


class AdaLayerNorm(nn.Module):
    """LayerNorm ``(B, L, D)`` without affine weights, then a scale and shift looked up by a condition id
    (``(1,)`` for the whole batch, as Vocos, or ``(B,)`` per item); scales start at 1, shifts at 0."""

    def __init__(self, num_embeddings: int, dim: int, eps: float = 1e-6):
        super().__init__()
        self.dim, self.eps = dim, eps
        self.scale = nn.Embedding(num_embeddings, dim)
        self.shift = nn.Embedding(num_embeddings, dim)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: Tensor, cond_id: Tensor) -> Tensor:
        scale, shift = self.scale(cond_id), self.shift(cond_id)
        if scale.ndim == 2 and x.ndim == 3:
            scale, shift = scale[:, None], shift[:, None]
        return F.layer_norm(x, (self.dim,), eps=self.eps) * scale + shift


class VocosConvNeXtBlock(nn.Module):
    """Vocos' 1-D ConvNeXt block ``(B, C, L) -> (B, C, L)`` (no GRN; layer scale ``gamma``; AdaLayerNorm when
    ``adanorm_num_embeddings`` is set)."""

    def __init__(self, dim: int, intermediate_dim: int, layer_scale_init_value: float,
                 adanorm_num_embeddings: int | None = None):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, 7, padding=3, groups=dim)
        self.adanorm = adanorm_num_embeddings is not None
        self.norm = AdaLayerNorm(adanorm_num_embeddings, dim) if self.adanorm else nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(dim)) if layer_scale_init_value > 0 else None

    def forward(self, x: Tensor, cond_id: Tensor | None = None) -> Tensor:
        h = self.dwconv(x).transpose(1, 2)
        h = self.norm(h, cond_id) if self.adanorm else self.norm(h)
        h = self.pwconv2(self.act(self.pwconv1(h)))
        if self.gamma is not None:
            h = self.gamma * h
        return x + h.transpose(1, 2)


def _group_norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels, eps=1e-6, affine=True)


class ResnetBlock1d(nn.Module):
    """``x + conv2(drop(swish(GN(conv1(swish(GN(x)))))))``, k3 convs, ``channels`` in and out (WavTokenizer's
    ``ResnetBlock`` with equal channels and no time embedding)."""

    def __init__(self, channels: int, dropout: float = 0.1, groups: int = 32):
        super().__init__()
        self.norm1 = _group_norm(channels, groups)
        self.conv1 = nn.Conv1d(channels, channels, 3, padding=1)
        self.norm2 = _group_norm(channels, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv1d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return x + h


class AttnBlock1d(nn.Module):
    """Single-head self-attention over time with 1x1-conv projections and a residual: ``x + proj_out(softmax(q^T k
    / sqrt(C)) v)`` on the GroupNorm of ``x (B, C, L)``. Attends over the whole sequence (not causal)."""

    def __init__(self, channels: int, groups: int = 32):
        super().__init__()
        self.norm = _group_norm(channels, groups)
        self.q = nn.Conv1d(channels, channels, 1)
        self.k = nn.Conv1d(channels, channels, 1)
        self.v = nn.Conv1d(channels, channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm(x)
        q, k, v = (m(h).transpose(1, 2)[:, None] for m in (self.q, self.k, self.v))  # (B, 1, L, C)
        a = F.scaled_dot_product_attention(q, k, v)[:, 0].transpose(1, 2)  # default scale 1 / sqrt(C)
        return x + self.proj_out(a)


class VocosBackbone(nn.Module):
    """Features ``(B, input_channels, L)`` -> hidden states ``(B, L, dim)`` (see the module docstring).

    ``forward(x, bandwidth_id=None)``: with AdaLayerNorm the id selects the scale/shift rows (default 0, the id
    WavTokenizer decodes with).
    """

    def __init__(self, input_channels: int, dim: int, intermediate_dim: int, num_layers: int,
                 layer_scale_init_value: float | None = None, adanorm_num_embeddings: int | None = None,
                 pos_net: bool = False, pos_net_dropout: float = 0.1, pos_net_groups: int = 32):
        super().__init__()
        if min(input_channels, dim, intermediate_dim, num_layers) < 1:
            raise ConfigError("VocosBackbone needs input_channels, dim, intermediate_dim and num_layers >= 1")
        if pos_net and dim % pos_net_groups:
            raise ConfigError(f"pos_net GroupNorm needs dim ({dim}) divisible by {pos_net_groups} groups")
        self.input_channels, self.dim = input_channels, dim
        self.embed = nn.Conv1d(input_channels, dim, 7, padding=3)
        self.adanorm = adanorm_num_embeddings is not None
        self.norm = AdaLayerNorm(adanorm_num_embeddings, dim) if self.adanorm else nn.LayerNorm(dim, eps=1e-6)
        scale = layer_scale_init_value or 1.0 / num_layers
        self.convnext = nn.ModuleList(VocosConvNeXtBlock(dim, intermediate_dim, scale, adanorm_num_embeddings)
                                      for _ in range(num_layers))
        self.final_layer_norm = nn.LayerNorm(dim, eps=1e-6)
        self.apply(self._init_weights)  # before pos_net: its layers keep torch's default init, as the official code
        self.pos_net = None
        if pos_net:
            blocks: list[nn.Module] = [ResnetBlock1d(dim, pos_net_dropout, pos_net_groups) for _ in range(2)]
            blocks.append(AttnBlock1d(dim, pos_net_groups))
            blocks += [ResnetBlock1d(dim, pos_net_dropout, pos_net_groups) for _ in range(2)]
            blocks.append(_group_norm(dim, pos_net_groups))
            self.pos_net = nn.Sequential(*blocks)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv1d, nn.Linear)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.constant_(m.bias, 0)

    def forward(self, x: Tensor, bandwidth_id: Tensor | None = None) -> Tensor:
        if x.ndim != 3 or x.shape[1] != self.input_channels:
            raise AudioError(f"VocosBackbone expects (B, {self.input_channels}, L), got {tuple(x.shape)}")
        if self.adanorm and bandwidth_id is None:
            bandwidth_id = torch.zeros(1, dtype=torch.long, device=x.device)
        x = self.embed(x)
        if self.pos_net is not None:
            x = self.pos_net(x)
        h = x.transpose(1, 2)
        x = (self.norm(h, bandwidth_id) if self.adanorm else self.norm(h)).transpose(1, 2)
        for block in self.convnext:
            x = block(x, bandwidth_id)
        return self.final_layer_norm(x.transpose(1, 2))


class SameISTFT(OverlapAddISTFT):
    """Inverse STFT of ``(B, F, L)`` real/imag parts with ``padding="same"`` (Vocos): ``(win - hop) / 2`` samples
    trimmed at both ends, so the output has ``L * hop`` samples; ``"center"`` is ``torch.istft(center=True)``
    (``(L - 1) * hop`` samples)."""

    def __init__(self, n_fft: int, hop_length: int, win_length: int, padding: str = "same"):
        super().__init__(n_fft, hop_length, win_length)
        if padding not in ("same", "center"):
            raise ConfigError(f"iSTFT padding must be 'same' or 'center', got {padding!r}")
        if padding == "same" and (win_length - hop_length) % 2:
            raise ConfigError(f"'same' iSTFT needs win_length - hop_length even, got {win_length} - {hop_length}")
        self.padding = padding

    def forward(self, real: Tensor, imag: Tensor, frame_mask: Tensor | None = None) -> Tensor:
        if self.padding == "center":
            return super().forward(real, imag, frame_mask)
        spec = torch.cat([real, imag], dim=1)
        y = F.conv_transpose1d(spec, self.kernel.to(spec.dtype), stride=self.hop_length)
        ones = frame_mask if frame_mask is not None else torch.ones_like(real[:1, :1])
        env = F.conv_transpose1d(ones.to(spec.dtype), self.window_sq.to(spec.dtype), stride=self.hop_length)
        y = y / torch.where(env > torch.finfo(env.dtype).tiny, env, torch.ones_like(env))
        # the window sits centred in the n_fft frame: trim (n_fft - hop) / 2 (= (win - hop) / 2 for win = n_fft)
        pad = (self.n_fft - self.hop_length) // 2
        return y[:, 0, pad: y.shape[-1] - pad]


class ISTFTHead(nn.Module):
    """Hidden states ``(B, L, dim)`` -> waveform ``(B, L * hop_length)`` ("same") through a predicted complex
    spectrum (magnitude ``exp`` clipped at 1e2, phase as ``cos``/``sin``)."""

    def __init__(self, dim: int, n_fft: int, hop_length: int, padding: str = "same"):
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        self.out = nn.Linear(dim, n_fft + 2)
        self.istft = SameISTFT(n_fft, hop_length, n_fft, padding)

    def spectrum(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(magnitude, phase)`` each ``(B, n_fft // 2 + 1, L)``."""
        mag, phase = self.out(x).transpose(1, 2).chunk(2, dim=1)
        return torch.exp(mag).clamp(max=1e2), phase  # Vocos' safeguard against huge magnitudes

    def forward(self, x: Tensor) -> Tensor:
        mag, phase = self.spectrum(x)
        return self.istft(mag * torch.cos(phase), mag * torch.sin(phase))
