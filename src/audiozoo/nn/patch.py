"""Patch embedding for spectrograms (overlapping patches, as AST) and position-embedding resampling."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import AudioError


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def conv_out_size(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


class PatchEmbed(nn.Module):
    """``(B, C, F, L)`` spectrogram -> ``(B, N, D)`` patch tokens with a strided conv.

    ``stride < patch_size`` gives overlapping patches (AST uses 16x16 patches at stride 10). Tokens
    are ordered frequency-major (``index = f * grid_t + t``), the order of AST/ViT ``flatten(2)``.
    """

    def __init__(self, input_size: tuple[int, int], patch_size: int | tuple[int, int] = 16,
                 stride: int | tuple[int, int] = 16, in_chans: int = 1, embed_dim: int = 768):
        super().__init__()
        self.input_size = _pair(input_size)
        self.patch_size = _pair(patch_size)
        self.stride = _pair(stride)
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=self.patch_size, stride=self.stride)

    def grid(self, freq: int, time: int) -> tuple[int, int]:
        return (conv_out_size(freq, self.patch_size[0], self.stride[0]),
                conv_out_size(time, self.patch_size[1], self.stride[1]))

    @property
    def grid_size(self) -> tuple[int, int]:
        return self.grid(*self.input_size)

    @property
    def num_patches(self) -> int:
        gf, gt = self.grid_size
        return gf * gt

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2] < self.patch_size[0] or x.shape[-1] < self.patch_size[1]:
            raise AudioError(f"input {tuple(x.shape[-2:])} (F, L) is smaller than one patch {self.patch_size}")
        return self.proj(x).flatten(2).transpose(1, 2)


def resample_pos_embed(pos: Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int],
                       num_prefix_tokens: int = 0, mode: str = "bilinear") -> Tensor:
    """Resize a grid position embedding ``(1, P + gf*gt, D)`` to a new ``(gf', gt')`` grid.

    Prefix tokens (cls/dist) are kept; the grid part is interpolated in 2-D (``align_corners=False``),
    as AST does when moving ImageNet DeiT embeddings onto a spectrogram grid.
    """
    if tuple(old_grid) == tuple(new_grid):
        return pos
    prefix, grid = pos[:, :num_prefix_tokens], pos[:, num_prefix_tokens:]
    d = grid.shape[-1]
    if grid.shape[1] != old_grid[0] * old_grid[1]:
        raise ValueError(f"position embedding has {grid.shape[1]} grid tokens, expected {old_grid}")
    grid = grid.reshape(1, old_grid[0], old_grid[1], d).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=tuple(new_grid), mode=mode, align_corners=False).to(pos.dtype)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], d)
    return grid if num_prefix_tokens == 0 else torch.cat([prefix, grid], dim=1)
