"""WavLM / BEATs transformer blocks: gated relative position bias attention, convolutional positions, deep-norm.

Generic pieces of the fairseq-derived encoders of WavLM (Chen et al., 2022, arXiv:2110.13900) and BEATs
(arXiv:2212.09058, ``beats/backbone.py``):

- :func:`relative_position_bucket`: T5's bidirectional log-spaced buckets of key - query offsets;
- :class:`RelativePositionBias`: one learned scalar per (bucket, head), computed once and shared by every layer;
- :class:`GatedRelPosAttention`: multi-head self-attention on SDPA whose bias is scaled per query and head by
  WavLM's gate ``g = a * (b * grep_a - 1) + 2`` (``a, b = sigmoid`` of a linear map of the query, WavLM Eq. 6);
- :class:`ConvPositionalEmbedding`: wav2vec 2.0's grouped convolution over time with weight normalisation
  along the kernel axis (``dim=2``), trimmed to the input length ("same" padding), GELU;
- :class:`RelPosTransformerLayer`: post-LN (optionally DeepNet's ``x * alpha + f(x)``, Wang et al. 2022) or
  pre-LN transformer layer around that attention;
- :class:`RelPosTransformerEncoder`: the official ``TransformerEncoder`` (conv positions, LayerNorm, a stack of those
  layers sharing one relative position table) with fairseq's ``init_bert_params`` and DeepNet's initialisation.

Parameter names follow the official layout (``q_proj``, ``grep_linear``, ``self_attn_layer_norm``, ``fc1``,
``weight_g``/``weight_v``), so official checkpoints load with few renames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ConvPositionalEmbedding", "GatedRelPosAttention", "RelPosTransformerEncoder", "RelPosTransformerLayer",
           "RelativePositionBias", "init_relpos_weights_", "relative_position_bucket"]


def relative_position_bucket(relative: Tensor, num_buckets: int, max_distance: int) -> Tensor:
    """Bidirectional T5 buckets of integer offsets ``relative = key - query`` (any shape, long).

    Half of the buckets hold positive offsets; within a half, offsets below ``n/2`` (``n = num_buckets // 2``) get
    their own bucket and larger ones share log-spaced buckets up to ``max_distance`` (the last bucket is open).
    """
    n = num_buckets // 2
    buckets = (relative > 0).long() * n
    dist = relative.abs()
    exact = n // 2
    large = exact + (torch.log(dist.float().clamp(min=1) / exact) / math.log(max_distance / exact)
                     * (n - exact)).long()
    large = large.clamp(max=n - 1)
    return buckets + torch.where(dist < exact, dist, large)


class RelativePositionBias(nn.Module):
    """Learned relative position bias ``(H, N, N)`` of a length-``N`` sequence (``relative_attention_bias``)."""

    def __init__(self, num_buckets: int, num_heads: int, max_distance: int):
        super().__init__()
        self.num_buckets, self.max_distance = int(num_buckets), int(max_distance)
        self.relative_attention_bias = nn.Embedding(num_buckets, num_heads)

    def forward(self, length: int) -> Tensor:
        pos = torch.arange(length, device=self.relative_attention_bias.weight.device)
        buckets = relative_position_bucket(pos[None, :] - pos[:, None], self.num_buckets, self.max_distance)
        return self.relative_attention_bias(buckets).permute(2, 0, 1)


class GatedRelPosAttention(nn.Module):
    """Self-attention ``(B, N, D) -> (B, N, D)`` with an additive, optionally gated, relative position bias.

    Args (forward):
        x: ``(B, N, D)``; position_bias: ``(H, N, N)`` from :class:`RelativePositionBias` or ``None``;
        key_padding_mask: ``(B, N)`` bool, True where a key is padding.
    The official code computes ``softmax(alpha * (q k^T / (alpha sqrt(d)) - rowmax) + bias)`` with ``alpha = 32``
    for fp16 range; the row shift cancels in the softmax, so plain SDPA with the bias as mask is the same function.
    """

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0, gated: bool = True):
        super().__init__()
        self.num_heads, self.head_dim, self.dropout = num_heads, dim // num_heads, float(dropout)
        self.k_proj, self.v_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.q_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.gated = bool(gated)
        if gated:  # WavLM's gated relative position bias: 8 = 2 gates x 4 summed outputs per head
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, num_heads, 1, 1))

    def forward(self, x: Tensor, position_bias: Tensor | None = None,
                key_padding_mask: Tensor | None = None) -> Tensor:
        b, n, d = x.shape
        h, hd = self.num_heads, self.head_dim
        q = self.q_proj(x).view(b, n, h, hd).transpose(1, 2)  # (B, H, N, hd)
        k = self.k_proj(x).view(b, n, h, hd).transpose(1, 2)
        v = self.v_proj(x).view(b, n, h, hd).transpose(1, 2)
        mask = None
        if position_bias is not None:
            bias = position_bias.to(q.dtype)[None]  # (1, H, N, N)
            if self.gated:
                gate_a, gate_b = torch.sigmoid(self.grep_linear(q).view(b, h, n, 2, 4).sum(-1)).chunk(2, dim=-1)
                bias = (gate_a * (gate_b * self.grep_a - 1.0) + 2.0) * bias  # (B, H, N, 1) * (1, H, N, N)
            mask = bias
        if key_padding_mask is not None:
            pad = torch.zeros(b, 1, 1, n, dtype=q.dtype, device=q.device).masked_fill(
                key_padding_mask[:, None, None, :], float("-inf"))
            mask = pad if mask is None else mask + pad
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


class ConvPositionalEmbedding(nn.Module):
    """wav2vec 2.0 / BEATs convolutional position embedding ``(B, N, D) -> (B, N, D)`` (added by the caller).

    ``Conv1d(D, D, kernel, padding=kernel // 2, groups)`` with weight normalisation over the kernel axis
    (``w = g * v / ||v||``, the norm taken over the output and input channels for each tap: ``dim=2``), one
    trailing step dropped for an even kernel, then GELU. Parameters keep the legacy ``weight_g``/``weight_v`` names.
    """

    def __init__(self, dim: int, kernel_size: int = 128, groups: int = 16):
        super().__init__()
        self.kernel_size, self.groups = int(kernel_size), int(groups)
        self.weight_v = nn.Parameter(torch.empty(dim, dim // groups, kernel_size))
        self.weight_g = nn.Parameter(torch.empty(1, 1, kernel_size))
        self.bias = nn.Parameter(torch.zeros(dim))
        if not self.weight_v.is_meta:
            # wav2vec 2.0 init: N(0, sqrt(4 / (kernel * dim))), g = ||v|| (so w = v at init)
            nn.init.normal_(self.weight_v, std=math.sqrt(4.0 / (kernel_size * dim)))
            with torch.no_grad():
                self.weight_g.copy_(self.weight_v.norm(dim=(0, 1), keepdim=True))

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight_g * self.weight_v / self.weight_v.norm(dim=(0, 1), keepdim=True)
        y = F.conv1d(x.transpose(1, 2), w, self.bias, padding=self.kernel_size // 2, groups=self.groups)
        if self.kernel_size % 2 == 0:
            y = y[..., :-1]
        return F.gelu(y).transpose(1, 2)


class RelPosTransformerLayer(nn.Module):
    """One WavLM / BEATs encoder layer ``(B, N, D) -> (B, N, D)``.

    Post-LN (``norm_first=False``): ``x = LN(alpha x + Attn(x)); x = LN(alpha x + FFN(x))``, ``alpha = (2 L)^(1/4)``
    with ``deep_norm`` (DeepNet, ``L`` = number of layers) else 1. Pre-LN: ``x = x + Attn(LN(x))``, ``x + FFN(LN(x))``.
    FFN = ``fc2(GELU(fc1(x)))``.
    """

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, *, num_layers: int = 12, deep_norm: bool = False,
                 norm_first: bool = False, gated: bool = True, dropout: float = 0.0, attention_dropout: float = 0.0,
                 activation_dropout: float = 0.0, eps: float = 1e-5):
        super().__init__()
        self.self_attn = GatedRelPosAttention(dim, num_heads, attention_dropout, gated)
        self.self_attn_layer_norm = nn.LayerNorm(dim, eps=eps)
        self.fc1, self.fc2 = nn.Linear(dim, ffn_dim), nn.Linear(ffn_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim, eps=eps)
        self.norm_first = bool(norm_first)
        self.alpha = math.pow(2 * num_layers, 0.25) if deep_norm else 1.0
        self.drop, self.act_drop = nn.Dropout(dropout), nn.Dropout(activation_dropout)

    def _ffn(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.act_drop(F.gelu(self.fc1(x)))))

    def forward(self, x: Tensor, position_bias: Tensor | None = None,
                key_padding_mask: Tensor | None = None) -> Tensor:
        if self.norm_first:
            x = x + self.drop(self.self_attn(self.self_attn_layer_norm(x), position_bias, key_padding_mask))
            return x + self._ffn(self.final_layer_norm(x))
        x = self.self_attn_layer_norm(x * self.alpha + self.drop(self.self_attn(x, position_bias, key_padding_mask)))
        return self.final_layer_norm(x * self.alpha + self._ffn(x))


def init_relpos_weights_(module: nn.Module, layers: Sequence[RelPosTransformerLayer], deep_norm: bool) -> None:
    """The official BEATs / WavLM initialisation, in place: every Linear / Embedding of ``module`` N(0, 0.02) with zero
    biases (fairseq ``init_bert_params``), then with ``deep_norm`` Xavier normal of the ``layers``' projections with
    gains 1 (q, k) and ``(8 len(layers))^(-1/4)`` (v, out, fc1, fc2; DeepNet)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
    if deep_norm:
        beta = math.pow(8 * len(layers), -0.25)
        for layer in layers:
            a = layer.self_attn
            for lin, gain in ((a.k_proj, 1.0), (a.v_proj, beta), (a.q_proj, 1.0), (a.out_proj, beta),
                              (layer.fc1, beta), (layer.fc2, beta)):
                nn.init.xavier_normal_(lin.weight, gain=gain)


class RelPosTransformerEncoder(nn.Module):
    """The WavLM / BEATs ``TransformerEncoder`` (``beats/backbone.py``): ``(B, N, D)`` -> ``(B, N, D)``.

    Padding positions are zeroed, ``x + ConvPositionalEmbedding(x)``, LayerNorm (post-LN layers: before the stack;
    pre-LN: after it), dropout, then ``depth`` :class:`RelPosTransformerLayer` s sharing one
    :class:`RelativePositionBias` table. Attribute names follow the official layout (``pos_conv``, ``layers``,
    ``layer_norm``; the shared table is ``relative_position``, stored under every layer officially). Initialised as
    the official: Linear N(0, 0.02) with zero biases (fairseq ``init_bert_params``), then with ``deep_norm`` Xavier
    normal of the projections with gains 1 (q, k) and ``(8 depth)^(-1/4)`` (v, out, fc1, fc2).

    ``forward(x, padding_mask (B, N) bool | None, return_hidden)`` -> ``(x, hidden)``: ``hidden`` (when asked) holds
    the first layer's input and every layer's output (the last after the final LayerNorm when pre-LN).
    """

    def __init__(self, dim: int, depth: int, num_heads: int, ffn_dim: int, *, conv_pos: int = 128,
                 conv_pos_groups: int = 16, relative_position: bool = True, num_buckets: int = 320,
                 max_distance: int = 800, gated: bool = True, deep_norm: bool = True, norm_first: bool = False,
                 dropout: float = 0.0, attention_dropout: float = 0.0, activation_dropout: float = 0.0,
                 eps: float = 1e-5):
        super().__init__()
        self.norm_first, self.deep_norm, self.depth = bool(norm_first), bool(deep_norm), int(depth)
        self.pos_conv = ConvPositionalEmbedding(dim, conv_pos, conv_pos_groups)
        self.relative_position = (RelativePositionBias(num_buckets, num_heads, max_distance)
                                  if relative_position else None)
        self.layers = nn.ModuleList(
            RelPosTransformerLayer(dim, num_heads, ffn_dim, num_layers=depth, deep_norm=deep_norm,
                                   norm_first=norm_first, gated=gated, dropout=dropout,
                                   attention_dropout=attention_dropout, activation_dropout=activation_dropout, eps=eps)
            for _ in range(depth))
        self.layer_norm = nn.LayerNorm(dim, eps=eps)
        self.drop = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if not self.layer_norm.weight.is_meta:
            init_relpos_weights_(self, self.layers, self.deep_norm)

    def forward(self, x: Tensor, padding_mask: Tensor | None = None,
                return_hidden: bool = False) -> tuple[Tensor, list[Tensor]]:
        if padding_mask is not None:
            x = x.masked_fill(padding_mask[..., None], 0.0)
        x = x + self.pos_conv(x)
        if not self.norm_first:
            x = self.layer_norm(x)
        x = self.drop(x)
        bias = self.relative_position(x.shape[1]) if self.relative_position is not None else None
        hidden = [x] if return_hidden else []
        for layer in self.layers:
            x = layer(x, bias, padding_mask)
            if return_hidden:
                hidden.append(x)
        if self.norm_first:
            x = self.layer_norm(x)
            if return_hidden:
                hidden[-1] = x
        return x, hidden
