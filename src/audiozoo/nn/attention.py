"""Multi-head self-attention on ``torch.nn.functional.scaled_dot_product_attention`` (SDPA).

Fused ``qkv`` projection (timm/ViT layout). Two hooks used by parameter-efficient fine-tuning
(``audiozoo.nn.adapters``): ``prefix`` (prefix tuning, Li & Liang 2021: learned keys/values prepended to
every sequence) and LoRA, which wraps the ``qkv``/``proj`` linear layers in place.

Decoders: ``causal=True`` masks future keys, and a :class:`~audiozoo.nn.autoregressive.KVCache` passed as
``cache=`` makes decoding incremental (new queries attend to the cached keys plus their own). Without these
arguments the module computes exactly what it always did. :class:`CrossAttention` attends from a sequence to a
fixed memory (encoder output), whose keys/values a cache keeps after the first step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .autoregressive import KVCache


def causal_mask(n_q: int, n_k: int, device: torch.device | str | None = None) -> Tensor:
    """``(n_q, n_k)`` bool, True where query ``i`` may attend key ``j``: ``j <= i + n_k - n_q`` (the queries are
    the last ``n_q`` positions of the ``n_k`` keys, as in cached decoding)."""
    offset = n_k - n_q
    return torch.arange(n_k, device=device)[None, :] <= torch.arange(n_q, device=device)[:, None] + offset


class MultiHeadAttention(nn.Module):
    """Self-attention ``(B, N, D) -> (B, N, D)``.

    Args:
        key_padding_mask: ``(B, N_kv)`` bool, True where a key is padding (it is never attended to); with a
            ``cache`` it covers every key (cached and new), ``N_kv = len(cache) + N``.
        causal: query ``i`` attends only keys up to its own position.
        cache: a :class:`KVCache`; the new keys/values are appended to ``layer_idx``'s and attended with the
            past ones. Not combinable with prefix tuning.
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

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None, *, causal: bool = False,
                cache: KVCache | None = None, layer_idx: int = 0) -> Tensor:
        if causal or cache is not None:
            return self._forward_decoder(x, key_padding_mask, causal, cache, layer_idx)
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

    def _forward_decoder(self, x: Tensor, key_padding_mask: Tensor | None, causal: bool, cache: KVCache | None,
                         layer_idx: int) -> Tensor:
        b, n, d = x.shape
        q, k, v = (self._heads(t) for t in self.qkv(x).split(d, dim=-1))
        if self.prefix is not None:
            if cache is not None:
                raise ConfigError("MultiHeadAttention: prefix tuning cannot be combined with a KV cache")
            pk, pv = self.prefix(b)
            k = torch.cat([self._heads(pk.to(k.dtype)), k], 2)
            v = torch.cat([self._heads(pv.to(v.dtype)), v], 2)
            if key_padding_mask is not None:
                key_padding_mask = torch.cat([key_padding_mask.new_zeros(b, pk.shape[1]), key_padding_mask], 1)
        if cache is not None:
            k, v = cache.update(layer_idx, k, v)
        n_k = k.shape[2]
        mask = None
        if key_padding_mask is not None:
            if key_padding_mask.shape != (b, n_k):
                raise ConfigError(f"key_padding_mask must cover every key (B, N_kv) = ({b}, {n_k}), got "
                                  f"{tuple(key_padding_mask.shape)}")
            mask = ~key_padding_mask[:, None, None, :]
        if causal and n > 1:  # one new query may see every key: no mask needed
            cm = causal_mask(n, n_k, x.device)
            mask = cm if mask is None else mask & cm
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, d)))


class CrossAttention(nn.Module):
    """Attention from ``x (B, N, D)`` to a memory ``(B, M, D_mem)`` -> ``(B, N, D)``; ``q`` and fused ``kv``
    projections.

    Args:
        memory_padding_mask: ``(B, M)`` bool, True on padded memory frames.
        cache: the memory's keys/values are computed at the first call and reused from the cache after it
            (``memory`` may then be None).
    """

    def __init__(self, dim: int, num_heads: int, memory_dim: int | None = None, qkv_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0, proj_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(memory_dim or dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        self.attn_drop = attn_drop
        self.proj_drop = nn.Dropout(proj_drop)

    def _heads(self, t: Tensor) -> Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: Tensor, memory: Tensor | None, memory_padding_mask: Tensor | None = None, *,
                cache: KVCache | None = None, layer_idx: int = 0) -> Tensor:
        b, n, d = x.shape
        kv = None if cache is None else cache.get_cross(layer_idx)
        if kv is None:
            if memory is None:
                raise ConfigError("CrossAttention needs a memory (B, M, D) unless its keys/values are cached")
            k, v = (self._heads(t) for t in self.kv(memory).split(d, dim=-1))
            if cache is not None:
                cache.set_cross(layer_idx, k, v)
        else:
            k, v = kv
        mask = None if memory_padding_mask is None else ~memory_padding_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(self._heads(self.q(x)), k, v, attn_mask=mask,
                                             dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, n, d)))
