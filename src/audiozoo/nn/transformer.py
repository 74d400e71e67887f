"""Transformer encoder blocks (pre-LN as ViT/AST, or post-LN as the original Transformer).

Each block has two adapter slots, ``adapter_attn`` and ``adapter_mlp`` (None by default), called as
``adapter(h, x) -> h'`` on a sub-layer's output ``h`` with that sub-layer's input ``x`` — sequential
adapters (Houlsby et al. 2019; Pfeiffer et al. 2021) use ``h``, parallel ones (He et al. 2022) use ``x``.
See ``audiozoo.nn.adapters``.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..errors import ConfigError
from .attention import MultiHeadAttention


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

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        if self.norm_first:
            h_in = self.norm1(x)
            h = self.attn(h_in, key_padding_mask)
            if self.adapter_attn is not None:
                h = self.adapter_attn(h, h_in)
            x = x + self.drop_path(h)
            h_in = self.norm2(x)
            h = self.mlp(h_in)
            if self.adapter_mlp is not None:
                h = self.adapter_mlp(h, h_in)
            return x + self.drop_path(h)
        h = self.attn(x, key_padding_mask)
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
                return_hidden: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        """``x (B, N, D)`` -> ``(B, N, D)`` (and every block's output before the final norm)."""
        hidden = []
        for blk in self.blocks:
            x = blk(x, key_padding_mask)
            hidden.append(x)
        x = self.norm(x)
        return (x, hidden) if return_hidden else x
