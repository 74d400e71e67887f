"""Transformer encoder blocks (pre-LN as ViT/AST, or post-LN as the original Transformer).

Each block has two adapter slots, ``adapter_attn`` and ``adapter_mlp`` (None by default), called as
``adapter(h, x) -> h'`` on a sub-layer's output ``h`` with that sub-layer's input ``x`` — sequential
adapters (Houlsby et al. 2019; Pfeiffer et al. 2021) use ``h``, parallel ones (He et al. 2022) use ``x``.
See ``audiozoo.nn.adapters``.

``causal=True`` / ``cache=`` (a :class:`~audiozoo.nn.autoregressive.KVCache`) turn the blocks into decoder
layers with incremental decoding; :class:`TransformerDecoder` adds cross-attention to an encoder memory.

:func:`fuse_for_inference` is a CPU inference fast path (oneDNN prepacked GEMMs with the bias, GELU and
residual add fused in; see ``benchmarks/ast_vs_transformers.py`` for what it buys).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .attention import CrossAttention, MultiHeadAttention
from .autoregressive import KVCache


def vit_head(dim: int, num_classes: int, device: torch.device | str | None = None) -> nn.Linear:
    """A fresh ViT/DeiT classification head ``(B, dim) -> (B, num_classes)``: weights ~ truncated N(0, 0.02),
    zero bias (timm's ``reset_classifier`` initialisation), on ``device``."""
    head = nn.Linear(dim, num_classes, device=device)
    nn.init.trunc_normal_(head.weight, std=0.02)
    nn.init.zeros_(head.bias)
    return head


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): drop a residual branch per sample in training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


_ACTS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}


class Mlp(nn.Module):
    """Position-wise feed-forward ``fc1 -> act -> drop -> fc2 -> drop``."""

    def __init__(self, dim: int, hidden: int, act: str = "gelu", drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        if act not in _ACTS:
            raise ConfigError(f"unknown activation {act!r}; expected one of {sorted(_ACTS)}")
        self.act = _ACTS[act]()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class TransformerBlock(nn.Module):
    """One encoder layer ``(B, N, D) -> (B, N, D)``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 norm_first: bool = True, eps: float = 1e-6, drop: float = 0.0, attn_drop: float = 0.0,
                 drop_path: float = 0.0, act: str = "gelu"):
        super().__init__()
        self.norm_first = norm_first
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = MultiHeadAttention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act=act, drop=drop)
        self.drop_path = DropPath(drop_path)
        self.adapter_attn: nn.Module | None = None
        self.adapter_mlp: nn.Module | None = None

    def _attn(self, x: Tensor, key_padding_mask: Tensor | None, causal: bool, cache: KVCache | None,
              layer_idx: int) -> Tensor:
        if causal or cache is not None:
            return self.attn(x, key_padding_mask, causal=causal, cache=cache, layer_idx=layer_idx)
        return self.attn(x, key_padding_mask)  # the plain call: LoRA/PEFT wrappers of attn keep working

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None, *, causal: bool = False,
                cache: KVCache | None = None, layer_idx: int = 0) -> Tensor:
        """``x (B, N, D)``; ``causal``/``cache``/``layer_idx`` as :class:`MultiHeadAttention` (decoder use)."""
        if self.norm_first:
            h_in = self.norm1(x)
            h = self._attn(h_in, key_padding_mask, causal, cache, layer_idx)
            if self.adapter_attn is not None:
                h = self.adapter_attn(h, h_in)
            x = x + self.drop_path(h)
            h_in = self.norm2(x)
            h = self.mlp(h_in)
            if self.adapter_mlp is not None:
                h = self.adapter_mlp(h, h_in)
            return x + self.drop_path(h)
        h = self._attn(x, key_padding_mask, causal, cache, layer_idx)
        if self.adapter_attn is not None:
            h = self.adapter_attn(h, x)
        x = self.norm1(x + self.drop_path(h))
        h = self.mlp(x)
        if self.adapter_mlp is not None:
            h = self.adapter_mlp(h, x)
        return self.norm2(x + self.drop_path(h))


class TransformerEncoder(nn.Module):
    """A stack of :class:`TransformerBlock` with linearly increasing drop-path and an optional final norm."""

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 norm_first: bool = True, eps: float = 1e-6, drop: float = 0.0, attn_drop: float = 0.0,
                 drop_path: float = 0.0, act: str = "gelu", final_norm: bool = True):
        super().__init__()
        # Plain Python (not torch.linspace) so the block also builds under a `meta` device context.
        rates = [drop_path * i / (depth - 1) for i in range(depth)] if depth > 1 else [drop_path] * depth
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, num_heads, mlp_ratio, qkv_bias, norm_first, eps, drop, attn_drop, r, act)
            for r in rates
        )
        self.norm = nn.LayerNorm(dim, eps=eps) if final_norm else nn.Identity()

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None,
                return_hidden: bool = False, *, causal: bool = False,
                cache: KVCache | None = None) -> Tensor | tuple[Tensor, list[Tensor]]:
        """``x (B, N, D)`` -> ``(B, N, D)`` (and every block's output before the final norm).

        ``causal`` / ``cache``: decoder-only use (block ``i`` stores its keys/values as cache layer ``i``).
        """
        hidden = []
        for i, blk in enumerate(self.blocks):
            if causal or cache is not None:
                x = blk(x, key_padding_mask, causal=causal, cache=cache, layer_idx=i)
            else:
                x = blk(x, key_padding_mask)
            hidden.append(x)
        x = self.norm(x)
        return (x, hidden) if return_hidden else x


class TransformerDecoderBlock(nn.Module):
    """Pre-LN decoder layer ``(B, N, D) -> (B, N, D)``: causal self-attention, optional cross-attention to a
    memory ``(B, M, D_mem)``, MLP (Vaswani et al. 2017, Section 3.1, with the pre-LN placement of Xiong et al.
    2020 used by GPT-2, Whisper and most audio decoders)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 cross_attention: bool = False, memory_dim: int | None = None, eps: float = 1e-5,
                 drop: float = 0.0, attn_drop: float = 0.0, act: str = "gelu"):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = MultiHeadAttention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.cross: CrossAttention | None = None
        if cross_attention:
            self.norm_cross = nn.LayerNorm(dim, eps=eps)
            self.cross = CrossAttention(dim, num_heads, memory_dim, qkv_bias=qkv_bias, attn_drop=attn_drop,
                                        proj_drop=drop)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act=act, drop=drop)

    def forward(self, x: Tensor, memory: Tensor | None = None, key_padding_mask: Tensor | None = None,
                memory_padding_mask: Tensor | None = None, *, cache: KVCache | None = None,
                layer_idx: int = 0) -> Tensor:
        x = x + self.attn(self.norm1(x), key_padding_mask, causal=True, cache=cache, layer_idx=layer_idx)
        if self.cross is not None:
            x = x + self.cross(self.norm_cross(x), memory, memory_padding_mask, cache=cache, layer_idx=layer_idx)
        return x + self.mlp(self.norm2(x))


class TransformerDecoder(nn.Module):
    """A stack of :class:`TransformerDecoderBlock` with a final LayerNorm: ``x (B, N, D)`` -> ``(B, N, D)``.

    Training: the whole sequence at once (causal masking). Decoding: pass a :class:`KVCache` and only the new
    positions; the output equals the corresponding rows of the full forward (block ``i`` is cache layer ``i``).
    Positional information is the caller's (add it to ``x`` at positions ``len(cache) ...``).
    """

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 cross_attention: bool = False, memory_dim: int | None = None, eps: float = 1e-5,
                 drop: float = 0.0, attn_drop: float = 0.0, act: str = "gelu"):
        super().__init__()
        self.blocks = nn.ModuleList(
            TransformerDecoderBlock(dim, num_heads, mlp_ratio, qkv_bias, cross_attention, memory_dim, eps, drop,
                                    attn_drop, act) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, x: Tensor, memory: Tensor | None = None, key_padding_mask: Tensor | None = None,
                memory_padding_mask: Tensor | None = None, *, cache: KVCache | None = None) -> Tensor:
        for i, blk in enumerate(self.blocks):
            x = blk(x, memory, key_padding_mask, memory_padding_mask, cache=cache, layer_idx=i)
        return self.norm(x)


# --------------------------------------------------------------------------- CPU inference fast path
# oneDNN ops (the ones torch.compile's CPU backend emits with ``freezing=True``), used here in eager mode:
# ``_reorder_linear_weight`` packs a weight once into oneDNN's blocked layout, ``_linear_pointwise`` runs
# y = act(x W^T + b) or y = other + (x W^T + b) in one GEMM call. In eager PyTorch, ``F.linear`` with a bias
# first copies the broadcast bias into the output (``addmm``) and GELU / the residual add are separate
# passes over the activations; on a 2-core CPU those passes cost ~25 % of an AST-base forward in bf16.
_FUSED_ACTS = {nn.GELU: "gelu", nn.ReLU: "relu"}


def _mkldnn_ok(dtype: torch.dtype) -> bool:
    if not torch.backends.mkldnn.is_available():
        return False
    if dtype == torch.bfloat16:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return dtype == torch.float32


class _PackedLinear(nn.Module):
    """``nn.Linear`` with its weight prepacked for oneDNN; ``forward(x (M, in), act)`` -> ``(M, out)``."""

    def __init__(self, lin: nn.Linear):
        super().__init__()
        w = lin.weight.detach()
        self.weight = torch.ops.mkldnn._reorder_linear_weight(w)  # opaque oneDNN tensor, not a Parameter
        self.bias = None if lin.bias is None else lin.bias.detach()
        self.out_features = w.shape[0]

    def forward(self, x: Tensor, act: str = "none") -> Tensor:
        # "gelu" with algorithm "none" is the exact erf GELU (nn.GELU's default), "tanh" would be the approximation.
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, act, [], "none" if act == "gelu" else "")

    def add(self, x: Tensor, residual: Tensor) -> Tensor:
        """``residual + x W^T + b`` in one call: ``x (M, in)``, ``residual (M, out)``."""
        return torch.ops.mkldnn._linear_pointwise.binary(x, residual, self.weight, self.bias, "add")


class FusedTransformerBlock(nn.Module):
    """Inference-only twin of a pre-LN :class:`TransformerBlock` on CPU, ``(B, N, D) -> (B, N, D)``.

    Same maths as the block in ``eval()`` mode (dropout and drop-path are identities there); only the GEMM
    kernels and the order of float rounding differ. Built by :func:`fuse_for_inference`.
    """

    def __init__(self, block: TransformerBlock):
        super().__init__()
        if not fusable(block):
            raise ConfigError("FusedTransformerBlock needs a pre-LN TransformerBlock with plain nn.Linear layers, "
                              "no adapters or prefix, GELU/ReLU activation")
        self.norm1, self.norm2 = block.norm1, block.norm2
        self.num_heads, self.head_dim = block.attn.num_heads, block.attn.head_dim
        self.qkv, self.proj = _PackedLinear(block.attn.qkv), _PackedLinear(block.attn.proj)
        self.fc1, self.fc2 = _PackedLinear(block.mlp.fc1), _PackedLinear(block.mlp.fc2)
        self.act = _FUSED_ACTS[type(block.mlp.act)]

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        b, n, d = x.shape
        x2 = x.reshape(b * n, d)
        qkv = self.qkv(self.norm1(x2)).view(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]  # True = attend
        # SDPA reads the strided q/k/v views directly (CPU flash kernel); no copies.
        a = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=mask)
        x2 = self.proj.add(a.transpose(1, 2).reshape(b * n, d), x2)
        x2 = self.fc2.add(self.fc1(self.norm2(x2), self.act), x2)
        return x2.view(b, n, d)


def fusable(block: nn.Module) -> bool:
    """Whether :class:`FusedTransformerBlock` reproduces ``block`` (pre-LN, plain layers, no PEFT hooks)."""
    return (
        type(block) is TransformerBlock and block.norm_first and block.adapter_attn is None
        and block.adapter_mlp is None and block.attn.prefix is None
        and all(type(m) is nn.Linear for m in (block.attn.qkv, block.attn.proj, block.mlp.fc1, block.mlp.fc2))
        and type(block.mlp.act) in _FUSED_ACTS
        and (type(block.mlp.act) is not nn.GELU or block.mlp.act.approximate == "none")
    )


def fuse_for_inference(model: nn.Module, dtype: torch.dtype | None = None) -> nn.Module:
    """A copy of ``model`` for CPU inference, every fusable :class:`TransformerBlock` replaced by
    :class:`FusedTransformerBlock`; ``model`` itself is left unchanged.

    Args:
        model: any module containing ``TransformerBlock`` s (AST, PaSST...), on the CPU.
        dtype: cast the copy first (``torch.bfloat16`` for the fast path: bf16 oneDNN GEMMs with fp32
            accumulation; inputs must then be bf16 too). ``None`` keeps the model's dtype (float32 or bf16).

    The copy is for inference only: it is in ``eval()`` mode, its prepacked weights are not parameters
    (save the original model, not the copy), and moving or casting it afterwards is not supported.
    Blocks that are not :func:`fusable` (adapters, LoRA, post-LN) are kept as they are.
    """
    p = next(model.parameters(), None)
    if p is not None and p.device.type != "cpu":
        raise ConfigError(f"fuse_for_inference is a CPU (oneDNN) path; the model is on {p.device}")
    target = dtype or (p.dtype if p is not None else torch.float32)
    if not _mkldnn_ok(target):
        raise ConfigError(f"fuse_for_inference: oneDNN {target} GEMMs are not available in this PyTorch build/CPU")
    fused = copy.deepcopy(model).eval()
    if dtype is not None:
        fused = fused.to(dtype)
    with torch.no_grad():
        for mod in list(fused.modules()):
            for child_name, child in list(mod.named_children()):
                if fusable(child):
                    setattr(mod, child_name, FusedTransformerBlock(child))
    return fused
