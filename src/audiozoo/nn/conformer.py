"""Conformer (Gulati et al. 2020, arXiv:2005.08100): convolution-augmented Transformer blocks.

One block (Section 2, eq. 1, Figure 1) is a macaron pair of half-step feed-forward modules around
multi-head self-attention and a convolution module, then a final LayerNorm::

    x = x + 1/2 FFN(x);  x = x + MHSA(x);  x = x + Conv(x);  y = LayerNorm(x + 1/2 FFN(x))

- MHSA (Section 2.1) uses relative sinusoidal positions with Transformer-XL's content/position biases
  ``u, v`` (Dai et al. 2019, Section 3.3; the ESPnet form with ``2L - 1`` relative positions), or rotary
  positions (``pos_type="rotary"``; :mod:`audiozoo.nn.rope`), or none.
- The convolution module (Section 2.2, Figure 2): LayerNorm -> pointwise conv to ``2C`` -> GLU -> depthwise conv
  -> BatchNorm (or LayerNorm) -> Swish -> pointwise conv -> dropout. Padded frames are zeroed before the
  depthwise conv so they do not leak into valid ones at a sequence's end.
- ESPnet's variants (the conformer FastSpeech 2): ``pre_norm=False`` (``normalize_before=False``: the same
  LayerNorms applied after each residual sum) and ``ffn_kind="conv"`` (FastSpeech's conv1d feed-forward, ReLU).
- :class:`ConformerEncoder` stacks blocks with ``lengths``; :class:`Conv2dSubsampling` is the usual 4x
  convolutional front-end (Section 2, Figure 1 "Convolution Subsampling").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .rope import RotaryEmbedding
from .transformer import DropPath

_POS_TYPES = ("relative", "rotary", "none")


def lengths_to_padding_mask(lengths: Tensor, max_len: int) -> Tensor:
    """``(B,)`` lengths -> ``(B, max_len)`` bool, True at padded frames."""
    return torch.arange(max_len, device=lengths.device)[None] >= lengths[:, None]


def relative_positional_encoding(length: int, dim: int, device: torch.device | str | None = None,
                                 dtype: torch.dtype = torch.float32) -> Tensor:
    """Sinusoidal encodings of the relative positions ``L-1, L-2, ..., -(L-1)``: ``(1, 2L - 1, dim)``.

    Even dims ``sin(p * w_i)``, odd dims ``cos(p * w_i)``, ``w_i = 10000^(-2i/dim)`` (Vaswani et al. 2017) —
    the table of ESPnet's/transformers' relative-position conformer.
    """
    if dim % 2:
        raise ConfigError(f"relative positional encoding needs an even dim, got {dim}")
    pos = torch.arange(length - 1, -length, -1, device=device).float()[:, None]
    div = torch.exp(torch.arange(0, dim, 2, device=device).float() * -(math.log(10000.0) / dim))
    pe = torch.zeros(2 * length - 1, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe[None].to(dtype)


class ConformerAttention(nn.Module):
    """Multi-head self-attention with relative, rotary or no positions: ``(B, L, D) -> (B, L, D)``.

    Args:
        pos_type: ``"relative"`` (Transformer-XL scores ``(q + u) k^T + (q + v) p^T`` on relative sinusoids
            ``p``, as Gulati et al.), ``"rotary"``, or ``"none"``.
        rotary_on_input: rotate the block input (viewed as heads) before the q/k projections, as fairseq's
            and transformers' wav2vec2-conformer do, instead of the projected q/k (RoFormer). Needed to
            load those checkpoints; the standard choice is False.
    """

    def __init__(self, dim: int, num_heads: int, pos_type: str = "relative", dropout: float = 0.0,
                 bias: bool = True, rope_base: float = 10000.0, rotary_on_input: bool = False):
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"dim {dim} is not divisible by num_heads {num_heads}")
        if pos_type not in _POS_TYPES:
            raise ConfigError(f"unknown pos_type {pos_type!r}; expected one of {_POS_TYPES}")
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.pos_type, self.dropout, self.rotary_on_input = pos_type, dropout, rotary_on_input
        self.q_proj = nn.Linear(dim, dim, bias=bias)
        self.k_proj = nn.Linear(dim, dim, bias=bias)
        self.v_proj = nn.Linear(dim, dim, bias=bias)
        self.out_proj = nn.Linear(dim, dim, bias=bias)
        if pos_type == "relative":
            self.pos_proj = nn.Linear(dim, dim, bias=False)
            # Transformer-XL's global content (u) and position (v) biases, one per head
            self.pos_bias_u = nn.Parameter(torch.empty(num_heads, self.head_dim))
            self.pos_bias_v = nn.Parameter(torch.empty(num_heads, self.head_dim))
            nn.init.xavier_uniform_(self.pos_bias_u)
            nn.init.xavier_uniform_(self.pos_bias_v)
        elif pos_type == "rotary":
            self.rope = RotaryEmbedding(self.head_dim, base=rope_base)

    def _heads(self, t: Tensor) -> Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, L, Dh)

    def forward(self, x: Tensor, pos_emb: Tensor | None = None, padding_mask: Tensor | None = None) -> Tensor:
        """``x (B, L, D)``; ``pos_emb (1, 2L - 1, D)`` for ``"relative"`` (computed when None);
        ``padding_mask (B, L)`` True at padded keys."""
        b, n, d = x.shape
        qk_in = x
        if self.pos_type == "rotary" and self.rotary_on_input:
            qk_in = self.rope(x.view(b, n, self.num_heads, self.head_dim), seq_dim=-3).reshape(b, n, d)
        q, k, v = self._heads(self.q_proj(qk_in)), self._heads(self.k_proj(qk_in)), self._heads(self.v_proj(x))
        bias = None
        if self.pos_type == "rotary" and not self.rotary_on_input:
            q, k = self.rope(q), self.rope(k)
        elif self.pos_type == "relative":
            if pos_emb is None:
                pos_emb = relative_positional_encoding(n, d, x.device, x.dtype)
            if pos_emb.shape[-2] != 2 * n - 1:
                raise ConfigError(f"pos_emb covers {pos_emb.shape[-2]} relative positions, need {2 * n - 1}")
            p = self.pos_proj(pos_emb).view(1, 2 * n - 1, self.num_heads, self.head_dim).transpose(1, 2)
            bd = ((q + self.pos_bias_v[:, None]) * self.head_dim ** -0.5) @ p.transpose(-1, -2)  # (B, H, L, 2L - 1)
            bias = _relative_shift(bd)
            q = q + self.pos_bias_u[:, None]
        if padding_mask is not None:
            if padding_mask.shape != (b, n):
                raise ConfigError(f"padding_mask must be {(b, n)}, got {tuple(padding_mask.shape)}")
            keep = ~padding_mask.bool()[:, None, None, :]
            if bias is None:
                bias = keep
            else:
                bias = bias.masked_fill(~keep, float("-inf"))
        if bias is not None and bias.is_floating_point() and k.dtype in (torch.bfloat16, torch.float16) \
                and q.device.type == "cpu" and not self.training:
            # measured on this project's CPU: softmax(q k^T s + bias) v is ~1.4x faster than SDPA's CPU kernel
            # with a float mask in bf16 (and ~1.1x slower in fp32, where SDPA stays)
            attn = torch.softmax((q * self.head_dim ** -0.5) @ k.transpose(-1, -2) + bias, dim=-1)
            out = attn.to(v.dtype) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias,
                                                 dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


def _relative_shift(bd: Tensor) -> Tensor:
    """``(B, H, L, 2L - 1)`` scores against the relative positions ``L-1 ... -(L-1)`` -> ``(B, H, L, L)`` with
    ``[i, j]`` = relative position ``i - j`` (column ``L - 1 - i + j``; Transformer-XL's shift).

    A strided view of ``bd`` (row ``i`` starts ``2L - 2`` elements after row ``i - 1``) when possible; a gather
    inside a traced graph (ONNX has no ``as_strided``) or for a non-contiguous input."""
    b, h, n, m = bd.shape
    if torch.jit.is_tracing() or not bd.is_contiguous():
        i = torch.arange(n, device=bd.device)
        idx = (n - 1) - i[:, None] + i[None, :]  # (L, L)
        return bd.gather(-1, idx.expand(b, h, n, n))
    return bd.as_strided((b, h, n, n), (h * n * m, n * m, m - 1, 1), bd.storage_offset() + n - 1)


class ConformerFeedForward(nn.Module):
    """Feed-forward module (Section 2.3), ``(B, L, D) -> (B, L, D)`` (residual and 1/2 scale are the block's).

    ``kind="linear"`` (the paper): LayerNorm -> Linear -> Swish -> Dropout -> Linear -> Dropout.
    ``kind="conv"``: FastSpeech's multi-layered conv1d in place of the linears (ESPnet's ``MultiLayeredConv1d``,
    the conformer FastSpeech 2's choice): Conv1d(``kernel_size``) -> ReLU -> Dropout -> Conv1d(``kernel_size``)
    -> Dropout; padded frames (``padding_mask``) are zeroed before each convolution.
    ``pre_norm=False`` skips the LayerNorm here: a post-norm block applies ``self.norm`` after its residual.
    """

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0, kind: str = "linear", kernel_size: int = 3,
                 pre_norm: bool = True):
        super().__init__()
        if kind not in ("linear", "conv"):
            raise ConfigError(f"feed-forward kind must be 'linear' or 'conv', got {kind!r}")
        if kind == "conv" and kernel_size % 2 == 0:
            raise ConfigError(f"a conv feed-forward needs an odd kernel_size for 'same' padding, got {kernel_size}")
        self.kind, self.pre_norm = kind, pre_norm
        self.norm = nn.LayerNorm(dim)
        if kind == "linear":
            self.fc1: nn.Module = nn.Linear(dim, hidden)
            self.fc2: nn.Module = nn.Linear(hidden, dim)
        else:
            self.fc1 = nn.Conv1d(dim, hidden, kernel_size, padding=kernel_size // 2)
            self.fc2 = nn.Conv1d(hidden, dim, kernel_size, padding=kernel_size // 2)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """``x (B, L, D)``; ``padding_mask (B, L)`` True at padded frames (used by ``kind="conv"``)."""
        if self.pre_norm:
            x = self.norm(x)
        if self.kind == "linear":
            return self.drop(self.fc2(self.drop(F.silu(self.fc1(x)))))
        h = x.transpose(1, 2)  # (B, D, L)
        pad = None if padding_mask is None else padding_mask[:, None, :]
        if pad is not None:
            h = h.masked_fill(pad, 0.0)
        h = self.fc1(h)
        if pad is not None:  # in place on the conv output (its backward needs no output), then ReLU in place
            h = h.masked_fill_(pad, 0.0)
        h = self.drop(F.relu(h, inplace=True))
        return self.drop(self.fc2(h).transpose(1, 2))


class ConformerConvModule(nn.Module):
    """Convolution module (Section 2.2, Figure 2), ``(B, L, D) -> (B, L, D)`` (residual is the block's).

    Args:
        kernel_size: depthwise kernel (31 in Conformer (S/M/L); odd unless ``causal``).
        norm: ``"batch"`` (the paper) or ``"layer"`` (over channels; batch-independent, as streaming models use).
        bias: biases of the three convolutions (ESPnet keeps them; fairseq/transformers do not).
        causal: left-only context (streaming).
        pre_norm: apply the module's LayerNorm first (the paper); False leaves ``self.norm`` to a post-norm block.
    """

    def __init__(self, dim: int, kernel_size: int = 31, dropout: float = 0.0, norm: str = "batch", bias: bool = True,
                 causal: bool = False, pre_norm: bool = True):
        super().__init__()
        if not causal and kernel_size % 2 == 0:
            raise ConfigError(f"a non-causal conformer conv needs an odd kernel_size for 'same' padding, "
                              f"got {kernel_size}")
        if norm not in ("batch", "layer"):
            raise ConfigError(f"norm must be 'batch' or 'layer', got {norm!r}")
        self.causal, self.kernel_size, self.pre_norm = causal, kernel_size, pre_norm
        self.norm = nn.LayerNorm(dim)
        self.pointwise_conv1 = nn.Conv1d(dim, 2 * dim, 1, bias=bias)
        self.depthwise_conv = nn.Conv1d(dim, dim, kernel_size, groups=dim, bias=bias,
                                        padding=0 if causal else (kernel_size - 1) // 2)
        self.conv_norm = nn.BatchNorm1d(dim) if norm == "batch" else nn.LayerNorm(dim)
        self.pointwise_conv2 = nn.Conv1d(dim, dim, 1, bias=bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        if self.pre_norm:
            x = self.norm(x)
        h = F.glu(self.pointwise_conv1(x.transpose(1, 2)), dim=1)  # (B, D, L)
        if padding_mask is not None:  # in place: GLU's backward needs its input, not its output
            h = h.masked_fill_(padding_mask[:, None, :], 0.0)
        if self.causal:
            h = F.pad(h, (self.kernel_size - 1, 0))
        h = self.depthwise_conv(h)
        if isinstance(self.conv_norm, nn.LayerNorm):
            h = self.conv_norm(h.transpose(1, 2)).transpose(1, 2)
        else:
            h = self.conv_norm(h)
        return self.drop(self.pointwise_conv2(F.silu(h))).transpose(1, 2)


class ConformerBlock(nn.Module):
    """One Conformer block ``(B, L, D) -> (B, L, D)``.

    Args:
        ffn_dim: feed-forward width (default ``4 * dim``, Section 3.2).
        dropout: residual dropout of every module (0.1 in the paper) and the FFN's inner dropout.
        attn_dropout: dropout on attention weights (default ``dropout``).
        pos_type, rope_base, rotary_on_input: see :class:`ConformerAttention`.
        conv_norm, conv_bias, causal: see :class:`ConformerConvModule`.
        ffn_kind, ffn_kernel: see :class:`ConformerFeedForward`.
        pre_norm: the paper's pre-norm (LayerNorm at the start of each module). False is ESPnet's
            ``normalize_before=False`` (post-norm, the conformer FastSpeech 2): the same LayerNorms, each applied
            after its module's residual sum, then ``final_norm``; same parameters and state-dict keys either way.
        drop_path: stochastic depth on each residual branch.
    """

    def __init__(self, dim: int, num_heads: int, ffn_dim: int | None = None, kernel_size: int = 31,
                 dropout: float = 0.1, attn_dropout: float | None = None, pos_type: str = "relative",
                 conv_norm: str = "batch", conv_bias: bool = True, causal: bool = False, rope_base: float = 10000.0,
                 rotary_on_input: bool = False, drop_path: float = 0.0, ffn_kind: str = "linear",
                 ffn_kernel: int = 3, pre_norm: bool = True):
        super().__init__()
        ffn_dim = 4 * dim if ffn_dim is None else ffn_dim
        self.pre_norm = pre_norm
        self.ffn1 = ConformerFeedForward(dim, ffn_dim, dropout, ffn_kind, ffn_kernel, pre_norm)
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = ConformerAttention(dim, num_heads, pos_type, dropout if attn_dropout is None else attn_dropout,
                                       rope_base=rope_base, rotary_on_input=rotary_on_input)
        self.attn_drop = nn.Dropout(dropout)
        self.conv = ConformerConvModule(dim, kernel_size, dropout, conv_norm, conv_bias, causal, pre_norm)
        self.ffn2 = ConformerFeedForward(dim, ffn_dim, dropout, ffn_kind, ffn_kernel, pre_norm)
        self.final_norm = nn.LayerNorm(dim)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor, padding_mask: Tensor | None = None, pos_emb: Tensor | None = None) -> Tensor:
        """``x (B, L, D)``; ``padding_mask (B, L)`` True at padded frames; ``pos_emb`` as
        :class:`ConformerAttention` (an encoder computes it once for all blocks)."""
        dp = self.drop_path
        if not self.pre_norm:  # post-norm: each LayerNorm after its residual sum
            x = self.ffn1.norm(x + 0.5 * dp(self.ffn1(x, padding_mask)))
            x = self.attn_norm(x + dp(self.attn_drop(self.attn(x, pos_emb, padding_mask))))
            x = self.conv.norm(x + dp(self.conv(x, padding_mask)))
            x = self.ffn2.norm(x + 0.5 * dp(self.ffn2(x, padding_mask)))
            return self.final_norm(x)
        x = x + 0.5 * dp(self.ffn1(x, padding_mask))
        x = x + dp(self.attn_drop(self.attn(self.attn_norm(x), pos_emb, padding_mask)))
        x = x + dp(self.conv(x, padding_mask))
        return self.final_norm(x + 0.5 * dp(self.ffn2(x, padding_mask)))


class ConformerEncoder(nn.Module):
    """A stack of :class:`ConformerBlock`: ``(x (B, L, D), lengths (B,)) -> (y (B, L, D), lengths)``.

    Padded frames are zeroed on input and output; keyword arguments go to every block (``drop_path`` may be
    a float or rise linearly to ``drop_path`` over depth with ``drop_path_linear=True``).
    """

    def __init__(self, dim: int, depth: int, num_heads: int, drop_path: float = 0.0, drop_path_linear: bool = True,
                 **block_kwargs):
        super().__init__()
        rates = [drop_path * i / max(depth - 1, 1) if drop_path_linear else drop_path for i in range(depth)]
        self.dim = dim
        self.blocks = nn.ModuleList(ConformerBlock(dim, num_heads, drop_path=r, **block_kwargs) for r in rates)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if x.ndim != 3 or x.shape[-1] != self.dim:
            raise ConfigError(f"expected x of shape (B, L, {self.dim}), got {tuple(x.shape)}")
        b, n, _ = x.shape
        if lengths is None:
            lengths = torch.full((b,), n, dtype=torch.long, device=x.device)
        lengths = lengths.to(x.device).long()
        if lengths.shape != (b,) or (lengths < 1).any() or (lengths > n).any():
            raise ConfigError(f"lengths must be ({b},) in [1, {n}], got {lengths.tolist()}")
        pad = lengths_to_padding_mask(lengths, n)
        mask = pad if bool(pad.any()) else None
        x = x.masked_fill(pad[..., None], 0.0)
        pos_emb = None
        if self.blocks and self.blocks[0].attn.pos_type == "relative":
            pos_emb = relative_positional_encoding(n, self.dim, x.device, x.dtype)
        for block in self.blocks:
            x = block(x, mask, pos_emb)
        return x.masked_fill(pad[..., None], 0.0), lengths


class Conv2dSubsampling(nn.Module):
    """Two 3x3 stride-2 convolutions with ReLU, then a linear layer: ``(B, L, F) -> (B, L', D)``,
    ``L' = ((L - 1) // 2 - 1) // 2`` (ESPnet's ``Conv2dSubsampling``; Conformer's 4x front-end)."""

    def __init__(self, in_features: int, dim: int, channels: int | None = None):
        super().__init__()
        channels = dim if channels is None else channels
        self.conv = nn.Sequential(nn.Conv2d(1, channels, 3, 2), nn.ReLU(), nn.Conv2d(channels, channels, 3, 2),
                                  nn.ReLU())
        freq = ((in_features - 1) // 2 - 1) // 2
        if freq < 1:
            raise ConfigError(f"Conv2dSubsampling needs at least 7 input features, got {in_features}")
        self.in_features = in_features
        self.out = nn.Linear(channels * freq, dim)

    @staticmethod
    def output_lengths(lengths: Tensor) -> Tensor:
        """Frames after subsampling for ``lengths`` input frames."""
        return torch.div(torch.div(lengths - 1, 2, rounding_mode="floor") - 1, 2, rounding_mode="floor")

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x (B, L, F)`` features, ``lengths (B,)`` -> ``(B, L', D)``, ``(B,)``; needs ``L >= 7``."""
        if x.ndim != 3 or x.shape[-1] != self.in_features:
            raise ConfigError(f"expected features (B, L, {self.in_features}), got {tuple(x.shape)}")
        if x.shape[1] < 7:
            raise ConfigError(f"Conv2dSubsampling needs at least 7 frames, got {x.shape[1]}")
        b, n, _ = x.shape
        lengths = torch.full((b,), n, dtype=torch.long, device=x.device) if lengths is None else lengths.long()
        h = self.conv(x[:, None])  # (B, C, L', F')
        y = self.out(h.transpose(1, 2).flatten(2))
        out_lengths = self.output_lengths(lengths).clamp(min=0)
        y = y.masked_fill(lengths_to_padding_mask(out_lengths, y.shape[1])[..., None], 0.0)
        return y, out_lengths
