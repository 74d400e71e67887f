"""MossFormer2 blocks (Zhao et al., "MossFormer2: Combining Transformer and RNN-Free Recurrent Network for Enhanced
Time-Domain Monaural Speech Separation", ICASSP 2024, arXiv:2312.11825), as HiFi-SR's encoder uses them.

Official code: modelscope/ClearerVoice-Studio (Apache-2.0), read from the ``clearvoice`` 0.1.2 wheel
(``models/mossformer2_sr/mossformer2.py``, ``mossformer2_block.py``, ``fsmn.py``, ``conv_module.py``); re-implemented
here. Sequences are ``(B, N, D)`` (tokens last) unless a docstring says otherwise.

- :class:`ScaleNorm`, :class:`FFConvM`: FLASH's scale norm and its norm -> Linear -> SiLU -> residual depthwise conv
  branch;
- :class:`FLASHLayer`: the gated attention unit of FLASH (Hua et al. 2022, "Transformer Quality in Linear Time",
  arXiv:2202.10447) as MossFormer2's ``FLASH_ShareA_FFConvM``: token shift of half the channels, four per-dim
  offset/scales of one shared query/key, rotary embedding (:mod:`audiozoo.nn.rope`, interleaved pairs), quadratic
  ``relu(q k^T / g)^2`` attention inside chunks of ``group_size`` tokens plus a global linear attention, output
  ``(att_u * v) * sigmoid(att_v * u)``;
- :class:`UniDeepFsmn`, :class:`GatedFSMN`, :class:`GatedFSMNBlock`: the RNN-free recurrent (FSMN memory) module;
- :class:`MossFormer2Encoder`: the "mask net" body of one computation block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .rope import apply_rotary, rope_inv_freq

__all__ = ["FFConvM", "FLASHLayer", "GatedFSMN", "GatedFSMNBlock", "MossFormer2Encoder", "ScaleNorm", "UniDeepFsmn"]


class ScaleNorm(nn.Module):
    """``x / max(||x|| / sqrt(d), eps) * g`` over the last dim, one learned scalar ``g`` (FLASH)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.scale, self.eps = dim ** -0.5, eps
        self.g = nn.Parameter(torch.ones(1))

    def forward(self, x: Tensor) -> Tensor:
        return x / (torch.linalg.vector_norm(x, dim=-1, keepdim=True) * self.scale).clamp(min=self.eps) * self.g


class FFConvM(nn.Module):
    """``(B, N, D_in) -> (B, N, D_out)``: norm -> Linear -> SiLU -> ``x + depthwise_conv(x)`` -> dropout."""

    def __init__(self, dim_in: int, dim_out: int, norm: str = "scalenorm", kernel: int = 17, dropout: float = 0.1):
        super().__init__()
        self.norm = ScaleNorm(dim_in) if norm == "scalenorm" else nn.LayerNorm(dim_in)
        self.linear = nn.Linear(dim_in, dim_out)
        # the official ConvModule: depthwise, no bias, "same" padding, residual
        self.dwconv = nn.Conv1d(dim_out, dim_out, kernel, padding=(kernel - 1) // 2, groups=dim_out, bias=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        h = F.silu(self.linear(self.norm(x)))
        h = h + self.dwconv(h.transpose(1, 2)).transpose(1, 2)
        return self.drop(h)


class FLASHLayer(nn.Module):
    """MossFormer2's ``FLASH_ShareA_FFConvM``: gated attention unit with chunked quadratic + global linear
    attention, ``(B, N, D) -> (B, N, D)`` (residual included)."""

    def __init__(self, dim: int, group_size: int, query_key_dim: int, expansion_factor: float, kernel: int,
                 dropout: float):
        super().__init__()
        hidden = int(dim * expansion_factor)
        self.group_size = group_size
        self.to_hidden = FFConvM(dim, hidden, kernel=kernel, dropout=dropout)
        self.to_qk = FFConvM(dim, query_key_dim, kernel=kernel, dropout=dropout)
        self.gamma = nn.Parameter(torch.ones(4, query_key_dim))  # OffsetScale(heads=4): quad_q, lin_q, quad_k, lin_k
        self.beta = nn.Parameter(torch.zeros(4, query_key_dim))
        nn.init.normal_(self.gamma, std=0.02)
        self.to_out = FFConvM(hidden // 2, dim, kernel=kernel, dropout=dropout)
        self.attn_drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        b, n, _ = x.shape
        g = self.group_size
        # token shift (RWKV/FLASH): half the channels see the previous frame
        shift, keep = x.chunk(2, dim=-1)
        h = torch.cat((torch.cat((torch.zeros_like(shift[:, :1]), shift[:, :-1]), dim=1), keep), dim=-1)
        v, u = self.to_hidden(h).chunk(2, dim=-1)
        qk = self.to_qk(h)
        quad_q, lin_q, quad_k, lin_k = (apply_rotary(qk * self.gamma[i] + self.beta[i], cos, sin, interleaved=True)
                                        for i in range(4))
        pad = (-n) % g
        # zero padding: padded keys give relu(0)^2 = 0 attention and nothing to the linear sums
        quad_q, quad_k, lin_q, lin_k, v, u = (F.pad(t, (0, 0, 0, pad)).unflatten(1, (-1, g))
                                              for t in (quad_q, quad_k, lin_q, lin_k, v, u))
        attn = self.attn_drop(F.relu(quad_q @ quad_k.transpose(-1, -2) / g) ** 2)  # (B, G, g, g)
        # global linear attention, normalised by the true length n (padded rows are zero)
        lin_kv = torch.einsum("bgnd,bgne->bde", lin_k, v) / n
        lin_ku = torch.einsum("bgnd,bgne->bde", lin_k, u) / n
        att_v = (attn @ v + torch.einsum("bgnd,bde->bgne", lin_q, lin_kv)).flatten(1, 2)[:, :n]
        att_u = (attn @ u + torch.einsum("bgnd,bde->bgne", lin_q, lin_ku)).flatten(1, 2)[:, :n]
        v, u = v.flatten(1, 2)[:, :n], u.flatten(1, 2)[:, :n]
        return x + self.to_out((att_u * v) * torch.sigmoid(att_v * u))


class UniDeepFsmn(nn.Module):
    """FSMN memory: ``x + p + dwconv(p)`` with ``p = project(relu(linear(x)))``, a symmetric depthwise conv of
    ``2 * lorder - 1`` taps over time (official: a Conv2d ``(2 lorder - 1, 1)`` on ``(B, C, T, 1)``)."""

    def __init__(self, dim: int, hidden: int, lorder: int):
        super().__init__()
        self.linear = nn.Linear(dim, hidden)
        self.project = nn.Linear(hidden, dim, bias=False)
        self.conv1 = nn.Conv1d(dim, dim, 2 * lorder - 1, padding=lorder - 1, groups=dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        p = self.project(F.relu(self.linear(x)))
        return x + p + self.conv1(p.transpose(1, 2)).transpose(1, 2)


class GatedFSMN(nn.Module):
    """``to_v(x) * fsmn(to_u(x)) + x`` on ``(B, N, C)`` (LayerNorm FFConvM branches)."""

    def __init__(self, dim: int, lorder: int, kernel: int, dropout: float):
        super().__init__()
        self.to_u = FFConvM(dim, dim, norm="layernorm", kernel=kernel, dropout=dropout)
        self.to_v = FFConvM(dim, dim, norm="layernorm", kernel=kernel, dropout=dropout)
        self.fsmn = UniDeepFsmn(dim, dim, lorder)

    def forward(self, x: Tensor) -> Tensor:
        return self.to_v(x) * self.fsmn(self.to_u(x)) + x


class GatedFSMNBlock(nn.Module):
    """``(B, N, D) -> (B, N, D)``: 1x1 conv to ``inner`` + PReLU -> LN -> gated FSMN -> LN -> 1x1 conv + skip."""

    def __init__(self, dim: int, inner: int, lorder: int, kernel: int, dropout: float):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv1d(dim, inner, 1), nn.PReLU())
        self.norm1 = nn.LayerNorm(inner)  # official CLayerNorm: LayerNorm over channels, eps 1e-5
        self.gated_fsmn = GatedFSMN(inner, lorder, kernel, dropout)
        self.norm2 = nn.LayerNorm(inner)
        self.conv2 = nn.Conv1d(inner, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm1(self.conv1(x.transpose(1, 2)).transpose(1, 2))
        h = self.norm2(self.gated_fsmn(h))
        return self.conv2(h.transpose(1, 2)).transpose(1, 2) + x


class MossFormer2Encoder(nn.Module):
    """MossFormer2 "mask net" as HiFi-SR uses it: features ``(B, in_channels, L)`` -> ``(B, in_channels, L)`` (>= 0).

    Official ``MossFormer_MaskNet(in_channels=80, out_channels=512, out_channels_final=80)`` with one
    ``Computation_Block`` of ``MossformerBlock_GFSMN`` (``depth`` FLASH layers, each followed by a gated-FSMN
    block): GroupNorm -> 1x1 conv to ``channels`` -> + scaled sinusoidal position embedding -> layers -> LayerNorm ->
    GroupNorm + skip -> PReLU -> 1x1 conv -> tanh/sigmoid gate -> 1x1 conv to ``in_channels`` -> ReLU. Rotary
    embeddings (interleaved pairs, first ``rotary_dim`` dims of the shared query/key) as ``rotary_embedding_torch``.
    Layer names are the official ones where it costs nothing (HiFi-SR's converter maps the rest).
    """

    def __init__(self, in_channels: int = 80, channels: int = 512, depth: int = 24, group_size: int = 256,
                 query_key_dim: int = 128, expansion_factor: float = 4.0, rotary_dim: int = 32,
                 fsmn_channels: int = 256, fsmn_lorder: int = 20, conv_kernel: int = 17, dropout: float = 0.1):
        super().__init__()
        d = channels
        if rotary_dim % 2 or rotary_dim > query_key_dim or d % 2:
            raise ConfigError(f"need an even rotary_dim <= query_key_dim ({query_key_dim}) and an even "
                              f"channels, got {rotary_dim}, {d}")
        self.norm = nn.GroupNorm(1, in_channels, eps=1e-8)
        self.conv1d_encoder = nn.Conv1d(in_channels, d, 1, bias=False)
        self.pos_scale = nn.Parameter(torch.ones(1))  # ScaledSinuEmbedding.scale
        self.register_buffer("pos_inv_freq", 1.0 / 10000 ** (torch.arange(0, d, 2).float() / d), persistent=False)
        self.register_buffer("rot_freqs", rope_inv_freq(rotary_dim), persistent=False)
        self.layers = nn.ModuleList(
            FLASHLayer(d, group_size, query_key_dim, expansion_factor, conv_kernel, dropout) for _ in range(depth))
        self.fsmn = nn.ModuleList(GatedFSMNBlock(d, fsmn_channels, fsmn_lorder, conv_kernel, dropout)
                                  for _ in range(depth))
        self.intra_mdl_norm = nn.LayerNorm(d, eps=1e-6)
        self.intra_norm = nn.GroupNorm(1, d, eps=1e-8)
        self.prelu = nn.PReLU()
        self.conv1d_out = nn.Conv1d(d, d, 1)
        self.output = nn.Conv1d(d, d, 1)
        self.output_gate = nn.Conv1d(d, d, 1)
        self.conv1_decoder = nn.Conv1d(d, in_channels, 1, bias=False)

    def forward(self, mel: Tensor) -> Tensor:
        x = self.conv1d_encoder(self.norm(mel))  # (B, D, L)
        n = x.shape[-1]
        pos = torch.arange(n, device=x.device, dtype=self.pos_inv_freq.dtype)
        sinu = pos[:, None] * self.pos_inv_freq[None]
        x = x + (torch.cat((sinu.sin(), sinu.cos()), dim=-1) * self.pos_scale).t().to(x.dtype)
        # rotary angles: frequency f_i repeated for the two dims of pair i (interleaved layout)
        ang = (pos[:, None] * self.rot_freqs[None]).repeat_interleave(2, dim=-1).to(x.dtype)
        cos, sin = ang.cos(), ang.sin()
        h = x.transpose(1, 2)
        for flash, fsmn in zip(self.layers, self.fsmn):
            h = fsmn(flash(h, cos, sin))
        h = self.intra_norm(self.intra_mdl_norm(h).transpose(1, 2)) + x
        h = self.conv1d_out(self.prelu(h))
        h = torch.tanh(self.output(h)) * torch.sigmoid(self.output_gate(h))
        return F.relu(self.conv1_decoder(h))
