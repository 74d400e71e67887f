"""Multi-head self-attention on ``torch.nn.functional.scaled_dot_product_attention`` (SDPA).

Fused ``qkv`` projection (timm/ViT layout). Two hooks used by parameter-efficient fine-tuning
(``audiozoo.nn.adapters``): ``prefix`` (prefix tuning, Li & Liang 2021: learned keys/values prepended to
every sequence) and LoRA, which wraps the ``qkv``/``proj`` linear layers in place.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError


class MultiHeadAttention(nn.Module):
    """Self-attention ``(B, N, D) -> (B, N, D)``.

    Args:
        key_padding_mask: ``(B, N)`` bool, True where a position is padding (it is never attended to).
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, proj_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        self.attn_drop = attn_drop
        self.proj_drop = nn.Dropout(proj_drop)
        # Optional module returning (k, v) of shape (B, P, D) for prefix tuning.
        self.prefix: nn.Module | None = None

    def _heads(self, t: Tensor) -> Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        mask = None if key_padding_mask is None else ~key_padding_mask
        if self.prefix is not None:
            pk, pv = self.prefix(b)
            k, v = torch.cat([pk.to(k.dtype), k], 1), torch.cat([pv.to(v.dtype), v], 1)
            if mask is not None:
                mask = torch.cat([mask.new_ones(b, pk.shape[1]), mask], 1)
        if mask is not None:
            mask = mask[:, None, None, :]  # (B, 1, 1, N_kv): True = attend
        out = F.scaled_dot_product_attention(
            self._heads(q), self._heads(k), self._heads(v), attn_mask=mask,
            dropout_p=self.attn_drop if self.training else 0.0,
        )
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, d)))
