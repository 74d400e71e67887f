"""Mask generators for masked-prediction pretraining (SSAST, TERA, and the BERT-style audio models after them).

All generators draw from an optional :class:`torch.Generator` (CPU), so a validation pass can use fixed masks, and
they respect per-item valid lengths: nothing past an item's valid part is ever chosen.

- :func:`patch_mask_indices`: ``count`` masked patches per item on a ``(gf, gt)`` patch grid, either in square
  clusters (SSAST's cluster masking for 16x16 patches, Gong et al. 2022, Sec. 2.2) or uniformly at random
  (SSAST's frame variant, whose cluster masking "hurts the performance" in the official code);
- :func:`span_starts` / :func:`span_mask`: random spans of consecutive frames (TERA's time alteration, Liu et al.
  2021, Sec. III-A; the wav2vec 2.0 / HuBERT span masking is the same idea);
- :func:`band_mask`: one random band of channels per item (TERA's frequency alteration, Sec. III-B).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError

__all__ = ["band_mask", "patch_mask_indices", "span_mask", "span_starts"]


def _randint(low: int, high: int, generator: torch.Generator | None) -> int:
    """Uniform integer in ``[low, high)``."""
    return int(torch.randint(low, high, (1,), generator=generator))


def _cluster_cells(gf: int, valid_t: int, count: int, size_range: tuple[int, int],
                   generator: torch.Generator | None) -> Tensor:
    """``count`` distinct cells ``f * gt + t`` (``t < valid_t``) covered by random ``c x c`` squares."""
    c = _randint(size_range[0], size_range[1], generator)  # one cluster factor per item, as the official code
    chosen = torch.zeros(gf, valid_t, dtype=torch.bool)
    total = gf * valid_t
    while True:
        anchor = _randint(0, total, generator)
        f0, t0 = divmod(anchor, valid_t)
        block = torch.zeros_like(chosen)
        block[f0:f0 + c, t0:t0 + c] = True  # clipped at the grid edges (the official code wraps to the next row)
        new = block & ~chosen
        have = int(chosen.sum())
        if have + int(new.sum()) >= count:
            # keep a random subset of the last square's new cells so exactly `count` are masked
            cells = new.flatten().nonzero().squeeze(1)
            keep = cells[torch.randperm(len(cells), generator=generator)[: count - have]]
            chosen.view(-1)[keep] = True
            return chosen
        chosen |= block


def patch_mask_indices(grid: tuple[int, int], count: int, valid_t: Tensor | None = None, batch: int | None = None,
                       strategy: str = "cluster", cluster_size: tuple[int, int] = (3, 6),
                       generator: torch.Generator | None = None) -> Tensor:
    """Indices of masked patches, ``(B, count)`` long, sorted, in the frequency-major token order of
    :class:`~audiozoo.nn.PatchEmbed` (``index = f * gt + t``).

    Args:
        grid: ``(gf, gt)`` patches along frequency and time.
        count: patches to mask per item (the same for every item, so targets stack into ``(B, count, P)``).
        valid_t: ``(B,)`` time columns holding valid frames per item (default: all ``gt``); masks stay inside.
        batch: ``B`` when ``valid_t`` is not given.
        strategy: ``"cluster"``: union of random ``c x c`` squares, ``c`` drawn per item uniformly from
            ``[cluster_size[0], cluster_size[1])`` (SSAST: [3, 6)); ``"random"``: a uniform random subset.
        generator: CPU random generator (``None``: the global one).
    """
    gf, gt = int(grid[0]), int(grid[1])
    if valid_t is None:
        if batch is None:
            raise ConfigError("patch_mask_indices needs valid_t or batch")
        valid_t = torch.full((int(batch),), gt, dtype=torch.long)
    valid_t = valid_t.detach().cpu().long().clamp(1, gt)
    if strategy not in ("cluster", "random"):
        raise ConfigError(f"patch masking strategy must be 'cluster' or 'random', got {strategy!r}")
    lo, hi = int(cluster_size[0]), int(cluster_size[1])
    if strategy == "cluster" and not 1 <= lo < hi:
        raise ConfigError(f"cluster_size must be [low, high) with 1 <= low < high, got {cluster_size}")
    least = int(valid_t.min()) * gf
    if not 1 <= count <= least:
        raise ConfigError(f"cannot mask {count} patches: the shortest item has {least} valid patches")
    rows = []
    for vt in valid_t.tolist():
        if strategy == "cluster":
            cells = _cluster_cells(gf, vt, count, (lo, hi), generator).nonzero()
        else:
            flat = torch.randperm(gf * vt, generator=generator)[:count]
            cells = torch.stack([flat // vt, flat % vt], dim=1)
        rows.append((cells[:, 0] * gt + cells[:, 1]).sort().values)
    return torch.stack(rows)


def span_starts(length: int, span: int, count: int, generator: torch.Generator | None = None) -> Tensor:
    """``count`` distinct span starts in ``[0, max(length - span - 1, 0)]`` (fewer if there are not as many),
    as TERA draws them (``torch.randperm(valid_start_max + 1)[:count]``; spans may overlap)."""
    top = max(int(length) - int(span) - 1, 0)
    return torch.randperm(top + 1, generator=generator)[: max(int(count), 0)]


def span_mask(lengths: Tensor, max_len: int, proportion: float, span: int,
              generator: torch.Generator | None = None) -> tuple[Tensor, list[Tensor]]:
    """Random spans of ``span`` consecutive frames covering about ``proportion`` of each item's valid frames.

    Each item of valid length ``n`` gets ``round(n * proportion / span)`` span starts (:func:`span_starts`).
    Returns ``(mask (B, max_len) bool, starts)`` with ``starts[i]`` the item's span starts (long).
    """
    if not 0.0 <= proportion <= 1.0 or span < 1:
        raise ConfigError(f"span masking needs 0 <= proportion <= 1 and span >= 1, got {proportion}, {span}")
    lengths = lengths.detach().cpu().long()
    mask = torch.zeros(len(lengths), int(max_len), dtype=torch.bool)
    starts = []
    offs = torch.arange(span)
    for i, n in enumerate(lengths.tolist()):
        s = span_starts(n, span, round(n * proportion / span), generator)
        starts.append(s)
        if len(s):
            idx = (s[:, None] + offs[None]).flatten().clamp(max=max_len - 1)
            mask[i, idx] = True
    return mask, starts


def band_mask(batch: int, channels: int, max_fraction: float, generator: torch.Generator | None = None) -> Tensor:
    """One band of random width in ``[0, int(channels * max_fraction)]`` at a random offset per item: ``(B, C)``
    bool, True inside the band (TERA's frequency alteration)."""
    if not 0.0 <= max_fraction <= 1.0:
        raise ConfigError(f"band masking needs 0 <= max_fraction <= 1, got {max_fraction}")
    top = int(channels * max_fraction)
    mask = torch.zeros(batch, channels, dtype=torch.bool)
    for i in range(batch):
        width = _randint(0, top + 1, generator)
        start = _randint(0, channels - width, generator) if width < channels else 0  # TERA: randperm(C - w)[:1]
        mask[i, start:start + width] = True
    return mask
