"""Autoregressive decoding: a key/value cache, logits processing and a generic sampling loop.

* :class:`KVCache` stores each attention layer's keys and values ``(B, H, L, D_h)`` so that decoding token
  ``n`` costs one query against the cached ``n - 1`` keys instead of a full forward (the standard incremental
  decoding of Transformer decoders, Vaswani et al. 2017; Ott et al. 2019, fairseq). It is what
  :class:`audiozoo.nn.attention.MultiHeadAttention` / :class:`~audiozoo.nn.attention.CrossAttention` and the
  transformer blocks take as ``cache=``.
* Logits processing: temperature, top-k (Fan et al. 2018), nucleus / top-p (Holtzman et al. 2020,
  arXiv:1904.09751, Section 3.1), the CTRL repetition penalty (Keskar et al. 2019, arXiv:1909.05858,
  Section 4.1) and classifier-free guidance on logits (Ho & Salimans 2022, arXiv:2207.12598, eq. 6; applied to
  token logits as in AudioGen/MusicGen, Kreuk et al. 2023, Section 3.3). Filtered entries are set to ``-inf``.
* :func:`sample_tokens` draws the next token; :func:`generate` runs prefill + one-token steps with a cache.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..errors import ConfigError

__all__ = [
    "KVCache", "apply_repetition_penalty", "cfg_logits", "generate", "process_logits", "sample_tokens",
    "temperature_scale", "top_k_filter", "top_p_filter",
]


class KVCache:
    """Keys and values of every attention layer for incremental decoding.

    ``update(layer, k, v)`` appends ``(B, H, n, D_h)`` and returns the layer's keys/values so far. With
    ``max_length`` the buffers are allocated once (at the first update) and filled in place, so decoding does
    not re-copy the growing cache at every token. Cross-attention keys/values of a fixed memory (encoder
    output) are stored once per layer with :meth:`set_cross` / :meth:`get_cross`.
    """

    def __init__(self, max_length: int | None = None):
        if max_length is not None and max_length < 1:
            raise ConfigError(f"KVCache max_length must be positive, got {max_length}")
        self.max_length = max_length
        self._k: dict[int, Tensor] = {}
        self._v: dict[int, Tensor] = {}
        self._len: dict[int, int] = {}
        self._cross: dict[int, tuple[Tensor, Tensor]] = {}

    def get_length(self, layer_idx: int = 0) -> int:
        """Cached positions of ``layer_idx`` (0 before the first update)."""
        return self._len.get(layer_idx, 0)

    def __len__(self) -> int:
        return self.get_length(0)

    def update(self, layer_idx: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append ``k, v (B, H, n, D_h)`` to layer ``layer_idx``; return its keys/values ``(B, H, L, D_h)``."""
        if k.ndim != 4 or k.shape != v.shape:
            raise ConfigError(f"KVCache.update expects k, v of equal shape (B, H, n, D_h), got {tuple(k.shape)}, "
                              f"{tuple(v.shape)}")
        past = self._len.get(layer_idx, 0)
        new = past + k.shape[2]
        if self.max_length is None:
            if past:
                k, v = torch.cat([self._k[layer_idx], k], 2), torch.cat([self._v[layer_idx], v], 2)
            self._k[layer_idx], self._v[layer_idx], self._len[layer_idx] = k, v, new
            return k, v
        if new > self.max_length:
            raise ConfigError(f"KVCache is full: {new} positions > max_length {self.max_length}")
        if layer_idx not in self._k:
            shape = (k.shape[0], k.shape[1], self.max_length, k.shape[3])
            self._k[layer_idx] = k.new_empty(shape)
            self._v[layer_idx] = v.new_empty(shape)
        kb, vb = self._k[layer_idx], self._v[layer_idx]
        if kb.shape[:2] != k.shape[:2] or kb.shape[3] != k.shape[3]:
            raise ConfigError(f"KVCache layer {layer_idx}: new keys {tuple(k.shape)} do not match the cache "
                              f"{tuple(kb.shape)}")
        kb[:, :, past:new] = k
        vb[:, :, past:new] = v
        self._len[layer_idx] = new
        return kb[:, :, :new], vb[:, :, :new]

    def get_cross(self, layer_idx: int) -> tuple[Tensor, Tensor] | None:
        """The stored cross-attention keys/values of ``layer_idx`` (None before :meth:`set_cross`)."""
        return self._cross.get(layer_idx)

    def set_cross(self, layer_idx: int, k: Tensor, v: Tensor) -> None:
        self._cross[layer_idx] = (k, v)

    def reorder(self, index: Tensor) -> None:
        """Select batch rows ``index (B',)`` in every layer (beam search re-ranking)."""
        for d in (self._k, self._v):
            for i in d:
                d[i] = d[i].index_select(0, index.to(d[i].device))
        for i, (k, v) in list(self._cross.items()):
            self._cross[i] = (k.index_select(0, index.to(k.device)), v.index_select(0, index.to(v.device)))

    def crop(self, length: int) -> None:
        """Forget every position from ``length`` on (e.g. to rewind a prompt)."""
        for i in list(self._len):
            if length < self._len[i]:
                self._len[i] = max(0, length)
                if self.max_length is None:
                    self._k[i], self._v[i] = self._k[i][:, :, :length], self._v[i][:, :, :length]

    def reset(self) -> None:
        self._k.clear()
        self._v.clear()
        self._len.clear()
        self._cross.clear()


# --------------------------------------------------------------------------- logits processing
def temperature_scale(logits: Tensor, temperature: float) -> Tensor:
    """``logits / temperature`` (``temperature > 0``)."""
    if not temperature > 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")
    return logits / temperature


def top_k_filter(logits: Tensor, k: int, min_keep: int = 1) -> Tensor:
    """Keep the ``k`` largest logits of the last axis (ties with the k-th are kept); the rest -> ``-inf``."""
    if k < 1:
        raise ConfigError(f"top_k must be >= 1, got {k}")
    k = min(max(k, min_keep), logits.shape[-1])
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, -float("inf"))


def top_p_filter(logits: Tensor, p: float, min_keep: int = 1) -> Tensor:
    """Nucleus filtering: keep the most likely tokens whose probabilities sum to at least ``p``.

    Equivalently, drop the least likely tokens whose total probability is at most ``1 - p`` (ranked in
    ascending order, cumulative sums from the least likely), always keeping ``min_keep`` tokens.
    """
    if not 0.0 <= p <= 1.0:
        raise ConfigError(f"top_p must be in [0, 1], got {p}")
    asc, idx = torch.sort(logits, dim=-1, descending=False)
    drop = asc.softmax(-1).cumsum(-1) <= (1 - p)
    drop[..., -min_keep:] = False
    return logits.masked_fill(drop.scatter(-1, idx, drop), -float("inf"))


def apply_repetition_penalty(logits: Tensor, previous: Tensor, penalty: float) -> Tensor:
    """CTRL penalty on tokens in ``previous (B, N)``: positive logits divided by ``penalty``, negative ones
    multiplied (so both become less likely for ``penalty > 1``). ``logits (B, V)``."""
    if not penalty > 0:
        raise ConfigError(f"repetition penalty must be > 0, got {penalty}")
    if previous.numel() == 0:
        return logits
    score = logits.gather(-1, previous)
    score = torch.where(score < 0, score * penalty, score / penalty)
    return logits.scatter(-1, previous, score)


def cfg_logits(cond: Tensor, uncond: Tensor, scale: float, log_probs: bool = False) -> Tensor:
    """Classifier-free guidance ``uncond + scale (cond - uncond)`` (``scale = 1``: the conditional logits).

    ``log_probs=True`` mixes log-softmaxed distributions instead of raw logits (some systems do).
    """
    if log_probs:
        cond, uncond = cond.log_softmax(-1), uncond.log_softmax(-1)
    return uncond + scale * (cond - uncond)


def process_logits(logits: Tensor, *, temperature: float = 1.0, top_k: int | None = None,
                   top_p: float | None = None, repetition_penalty: float | None = None,
                   previous: Tensor | None = None) -> Tensor:
    """Repetition penalty, temperature, top-k, then top-p (the order transformers' ``generate`` applies them).
    ``logits (B, V)``; ``temperature`` must be > 0 here (greedy decoding skips processing)."""
    if repetition_penalty is not None and repetition_penalty != 1.0 and previous is not None:
        logits = apply_repetition_penalty(logits, previous, repetition_penalty)
    if temperature != 1.0:
        logits = temperature_scale(logits, temperature)
    if top_k is not None and top_k > 0:
        logits = top_k_filter(logits, top_k)
    if top_p is not None and top_p < 1.0:
        logits = top_p_filter(logits, top_p)
    return logits


def sample_tokens(logits: Tensor, *, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None, repetition_penalty: float | None = None,
                  previous: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
    """The next token ``(B,)`` from ``logits (B, V)``: greedy (argmax) when ``temperature == 0``, else a draw
    from the processed distribution (:func:`process_logits`) with ``generator``."""
    if logits.ndim != 2:
        raise ConfigError(f"sample_tokens expects logits (B, V), got {tuple(logits.shape)}")
    if temperature < 0:
        raise ConfigError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        if repetition_penalty is not None and repetition_penalty != 1.0 and previous is not None:
            logits = apply_repetition_penalty(logits, previous, repetition_penalty)
        return logits.argmax(-1)
    logits = process_logits(logits.float(), temperature=temperature, top_k=top_k, top_p=top_p,
                            repetition_penalty=repetition_penalty, previous=previous)
    return torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]


def generate(step_fn: Callable[[Tensor, KVCache], Tensor], prompt: Tensor, max_new_tokens: int, *,
             eos_id: int | None = None, pad_id: int = 0, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, repetition_penalty: float | None = None,
             generator: torch.Generator | None = None, cache: KVCache | None = None) -> tuple[Tensor, Tensor]:
    """Sample a continuation of ``prompt (B, N0)`` (``N0 >= 1``) token by token with a KV cache.

    ``step_fn(tokens (B, n), cache) -> logits (B, n, V)`` runs the decoder on new tokens only (the cache holds
    the past; positions start at ``len(cache)`` — classifier-free guidance and conditioning are its business).
    The first call gets the whole prompt (prefill), then one token per call. Items that emit ``eos_id`` stop;
    their later positions hold ``pad_id``.

    Returns ``(tokens (B, N0 + n_new), lengths (B,))`` — lengths count the prompt and the generated tokens up
    to and including ``eos``.
    """
    if prompt.ndim != 2 or prompt.shape[1] < 1:
        raise ConfigError(f"generate needs a prompt (B, N0) with N0 >= 1, got {tuple(prompt.shape)}")
    if max_new_tokens < 0:
        raise ConfigError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    cache = KVCache() if cache is None else cache
    b = prompt.shape[0]
    tokens = prompt
    lengths = torch.full((b,), prompt.shape[1], dtype=torch.long, device=prompt.device)
    done = torch.zeros(b, dtype=torch.bool, device=prompt.device)
    new = prompt
    for _ in range(int(max_new_tokens)):
        logits = step_fn(new, cache)[:, -1]
        nxt = sample_tokens(logits, temperature=temperature, top_k=top_k, top_p=top_p,
                            repetition_penalty=repetition_penalty, previous=tokens, generator=generator)
        nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
        lengths = lengths + (~done).long()
        tokens = torch.cat([tokens, nxt[:, None]], 1)
        if eos_id is not None:
            done = done | (nxt == eos_id)
            if bool(done.all()):
                break
        new = nxt[:, None]
    return tokens, lengths
