"""MaskGIT confidence-based iterative decoding (Chang et al. 2022, arXiv:2202.04200), as used by SoundStorm,
MaskGCT, VampNet and other masked-token audio generators.

Decoding (paper Section 3.2): start from all unknown tokens set to ``mask_id``; at step ``t`` of ``T``
(1) predict logits for every position, (2) sample a token at every masked position, its confidence being the
sampled token's probability (already known tokens get confidence ``+inf``), (3) keep
``n = floor(gamma(t / T) * N_0)`` positions masked (``N_0`` the unknown count at the start, ``gamma`` the mask
schedule, Section 3.3) — the ones with the lowest confidence, where the official code ranks
``log p + tau (1 - t / T) g`` with Gumbel noise ``g`` ("choice temperature" ``tau``, 4.5 in the official
ImageNet config) — and (4) repeat; the last step fills every position. Training masks a
``gamma(r)`` fraction, ``r ~ U(0, 1)`` (Section 3.1): :func:`random_mask`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..errors import ConfigError

__all__ = ["MASK_SCHEDULES", "gumbel_noise", "mask_by_confidence", "mask_schedule", "maskgit_decode", "random_mask"]

MASK_SCHEDULES = ("cosine", "linear", "square", "cubic", "sqrt")


def mask_schedule(r: Tensor | float, kind: str = "cosine") -> Tensor:
    """Masked fraction ``gamma(r)`` for ``r in [0, 1]``: decreasing from 1 to 0 (paper Section 3.3, Fig. 3).

    ``"cosine"``: ``cos(pi r / 2)`` (the paper's choice); ``"linear"``: ``1 - r``; ``"square"``: ``1 - r^2``;
    ``"cubic"``: ``1 - r^3``; ``"sqrt"``: ``1 - sqrt(r)``.
    """
    r = torch.as_tensor(r, dtype=torch.float64)
    if kind == "cosine":
        return torch.cos(0.5 * math.pi * r)
    if kind == "linear":
        return 1.0 - r
    if kind == "square":
        return 1.0 - r**2
    if kind == "cubic":
        return 1.0 - r**3
    if kind == "sqrt":
        return 1.0 - r.sqrt()
    raise ConfigError(f"unknown mask schedule {kind!r}; expected one of {MASK_SCHEDULES}")


def gumbel_noise(shape: tuple[int, ...], generator: torch.Generator | None = None,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """Standard Gumbel samples ``-log(-log u)``, ``u ~ U(0, 1)`` kept away from 0 and 1."""
    u = torch.rand(shape, generator=generator, device=device, dtype=dtype)
    tiny = torch.finfo(dtype).tiny
    return -torch.log(-torch.log(u.clamp(min=tiny, max=1.0 - torch.finfo(dtype).eps)))


def mask_by_confidence(confidence: Tensor, mask_len: Tensor) -> Tensor:
    """``(B, N)`` bool: True at the ``mask_len[b]`` lowest-confidence positions of each row (exact counts;
    ties broken by position)."""
    if confidence.ndim != 2:
        raise ConfigError(f"confidence must be (B, N), got {tuple(confidence.shape)}")
    order = torch.sort(confidence, dim=-1, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(confidence.shape[-1], device=confidence.device).expand_as(order))
    return rank < mask_len.to(confidence.device).view(-1, 1)


def random_mask(tokens: Tensor, mask_id: int, schedule: str = "cosine", lengths: Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """MaskGIT training corruption of ``tokens (B, N)``: per item ``r ~ U(0, 1)``, mask
    ``ceil(gamma(r) * n)`` random valid positions (at least one; ``n`` from ``lengths``, default ``N``).

    Returns ``(masked_tokens, mask)`` with ``mask (B, N)`` bool True where a token was replaced by ``mask_id``
    (the positions the loss is computed on).
    """
    if tokens.ndim != 2:
        raise ConfigError(f"random_mask expects tokens (B, N), got {tuple(tokens.shape)}")
    b, n = tokens.shape
    valid = torch.ones(b, n, dtype=torch.bool, device=tokens.device) if lengths is None else (
        torch.arange(n, device=tokens.device)[None] < lengths.to(tokens.device).view(-1, 1))
    n_valid = valid.sum(-1)
    r = torch.rand(b, generator=generator, dtype=torch.float64).to(tokens.device)
    n_mask = torch.ceil(mask_schedule(r, schedule) * n_valid).long().clamp(min=1)
    n_mask = torch.minimum(n_mask, n_valid)
    score = torch.rand(b, n, generator=generator).to(tokens.device).masked_fill(~valid, 2.0)
    mask = mask_by_confidence(score, n_mask) & valid
    return tokens.masked_fill(mask, mask_id), mask


def maskgit_decode(logits_fn: Callable[[Tensor], Tensor], tokens: Tensor, mask_id: int, steps: int = 12, *,
                   temperature: float = 1.0, choice_temperature: float = 4.5, schedule: str = "cosine",
                   lengths: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
    """Iterative parallel decoding of ``tokens (B, N)``: positions equal to ``mask_id`` are generated, the
    others are kept (prompts, inpainting).

    Args:
        logits_fn: ``(B, N) tokens -> (B, N, V)`` logits (classifier-free guidance goes inside it).
        steps: decoding iterations ``T``; the last fills every remaining position.
        temperature: sampling temperature of the tokens (0: argmax).
        choice_temperature: Gumbel noise scale ``tau`` on the log-confidence, annealed by ``1 - t / T``
            (0: pure confidence ranking).
        lengths: ``(B,)`` valid lengths; positions past them are never generated (left as they are).
    Returns:
        ``(B, N)`` tokens with no ``mask_id`` left at valid unknown positions.
    """
    if tokens.ndim != 2:
        raise ConfigError(f"maskgit_decode expects tokens (B, N), got {tuple(tokens.shape)}")
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise ConfigError(f"maskgit_decode: steps must be a positive integer, got {steps!r}")
    if temperature < 0 or choice_temperature < 0:
        raise ConfigError("maskgit_decode: temperatures must be >= 0")
    b, n = tokens.shape
    dev = tokens.device
    valid = torch.ones(b, n, dtype=torch.bool, device=dev) if lengths is None else (
        torch.arange(n, device=dev)[None] < lengths.to(dev).view(-1, 1))
    unknown = (tokens == mask_id) & valid
    n0 = unknown.sum(-1)
    x = tokens.clone()
    for step in range(int(steps)):
        if not bool(unknown.any()):
            break
        logits = logits_fn(x)
        if logits.shape[:2] != (b, n):
            raise ConfigError(f"logits_fn must return (B, N, V) = ({b}, {n}, V), got {tuple(logits.shape)}")
        logits = logits.float()
        if temperature > 0:
            sampled = (logits / temperature + gumbel_noise(logits.shape, generator, dev)).argmax(-1)
        else:
            sampled = logits.argmax(-1)
        logp = torch.log_softmax(logits, -1).gather(-1, sampled[..., None])[..., 0]
        sampled = torch.where(unknown, sampled, x)
        ratio = (step + 1) / steps
        if step == steps - 1:
            x = sampled
            break
        conf = logp
        if choice_temperature > 0:
            conf = conf + choice_temperature * (1.0 - ratio) * gumbel_noise((b, n), generator, dev)
        conf = conf.masked_fill(~unknown, math.inf)  # known tokens are never re-masked
        n_unknown = unknown.sum(-1)
        # official: max(1, min(unknown - 1, floor(N_0 gamma(r)))), so one more token is fixed every step at least
        mask_len = torch.floor(n0.double() * mask_schedule(ratio, schedule)).long()
        mask_len = torch.maximum(torch.ones_like(mask_len), torch.minimum(n_unknown - 1, mask_len))
        mask_len = torch.minimum(mask_len, n_unknown)
        remask = mask_by_confidence(conf, mask_len) & unknown
        x = sampled.masked_fill(remask, mask_id)
        unknown = remask
    return x
