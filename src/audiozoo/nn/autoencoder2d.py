"""The 2-D convolutional encoder/decoder of VQGAN and the latent-diffusion autoencoders, and the PatchGAN
discriminator they train against.

* :class:`Encoder2d` / :class:`Decoder2d`: the "ddconfig" autoencoder of Esser et al., "Taming Transformers for
  High-Resolution Image Synthesis" (arXiv:2012.09841, Section 3.2 and App. B; CompVis/taming-transformers
  ``taming/modules/diffusionmodules/model.py``), used unchanged on mel spectrograms by SpecVQGAN (Iashin & Rahtu
  2021, arXiv:2110.08791; v-iashin/SpecVQGAN ``specvqgan/modules/diffusionmodules/model.py``) and on latents by
  the latent-diffusion VAEs. Per level ``i``: ``num_res_blocks`` :class:`ResnetBlock2d` (GroupNorm, swish, 3x3
  convs, a 1x1 shortcut when the width changes) with ``ch * ch_mult[i]`` channels, each followed by an
  :class:`AttnBlock2d` on the levels in ``attn_levels``; a strided 3x3 conv between levels (the decoder: nearest
  upsampling and a 3x3 conv, ``num_res_blocks + 1`` blocks per level); a middle of ResNet, attention, ResNet.
* Departure (an option; the defaults are the official layout): each level may downsample the two axes by
  different factors (``factors[i] = (f_freq, f_time)``, each 1 or 2): a speech codec keeps more time resolution
  than frequency resolution. The official code halves both axes at every level; with a factor 1 the conv keeps that
  axis with symmetric padding 1. The attention levels are given by index (the official code names them by the
  time length they occur at: ``attn_resolutions=[53]`` with ``resolution=848`` is the deepest level, 848 / 2^4).
* :class:`NLayerDiscriminator`: the PatchGAN of pix2pix (Isola et al. 2017, arXiv:1611.07004) as taming and
  SpecVQGAN build it (``specvqgan/modules/discriminator/model.py``): 4x4 convs, stride 2 then 1, BatchNorm, leaky
  ReLU 0.2, a 1-channel logit map; weights ~ N(0, 0.02), BatchNorm scales ~ N(1, 0.02).

Module names follow the official code (``down.{i}.block.{j}.norm1``, ``mid.attn_1``, ``up.{i}.upsample.conv``,
``main.{k}``...), so official state dicts load with a key map that only renames the codebook. Attention is one head
over all ``H * W`` positions (SDPA, scale ``1 / sqrt(C)``, as the official ``bmm`` + softmax).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

__all__ = ["AttnBlock2d", "Decoder2d", "Downsample2d", "Encoder2d", "NLayerDiscriminator", "ResnetBlock2d",
           "Upsample2d", "group_norm"]


def group_norm(channels: int, groups: int = 32) -> nn.GroupNorm:
    """GroupNorm(``groups``, eps 1e-6, affine), the autoencoder's ``Normalize``."""
    if channels % groups:
        raise ConfigError(f"GroupNorm needs channels ({channels}) divisible by num_groups ({groups})")
    return nn.GroupNorm(groups, channels, eps=1e-6, affine=True)


class ResnetBlock2d(nn.Module):
    """``x + conv2(drop(swish(norm2(conv1(swish(norm1(x)))))))``, ``x`` through a 1x1 conv when widths differ."""

    def __init__(self, in_channels: int, out_channels: int | None = None, dropout: float = 0.0, groups: int = 32):
        super().__init__()
        out_channels = out_channels or in_channels
        self.in_channels, self.out_channels = in_channels, out_channels
        self.norm1 = group_norm(in_channels, groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        if self.in_channels != self.out_channels:
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock2d(nn.Module):
    """Single-head self-attention over the ``H * W`` positions of ``x (B, C, H, W)`` with 1x1-conv projections
    and a residual."""

    def __init__(self, channels: int, groups: int = 32):
        super().__init__()
        self.norm = group_norm(channels, groups)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        n = self.norm(x)
        q, k, v = (m(n).reshape(b, 1, c, h * w).transpose(2, 3) for m in (self.q, self.k, self.v))  # (B, 1, HW, C)
        a = F.scaled_dot_product_attention(q, k, v)[:, 0].transpose(1, 2).reshape(b, c, h, w)
        return x + self.proj_out(a)


def _check_factor(factor: Sequence[int]) -> tuple[int, int]:
    f = tuple(int(v) for v in factor)
    if len(f) != 2 or any(v not in (1, 2) for v in f) or f == (1, 1):
        raise ConfigError(f"a level's (freq, time) resampling factor must be 1 or 2 on each axis and not (1, 1), "
                          f"got {tuple(factor)}")
    return f  # type: ignore[return-value]


class Downsample2d(nn.Module):
    """3x3 conv with stride ``factor`` ``(f_H, f_W)``; a strided axis is padded by (0, 1) (the official asymmetric
    padding: ``H -> floor(H / 2)``), a kept axis by (1, 1)."""

    def __init__(self, channels: int, factor: Sequence[int] = (2, 2)):
        super().__init__()
        self.factor = _check_factor(factor)
        self.conv = nn.Conv2d(channels, channels, 3, stride=self.factor)
        fh, fw = self.factor
        self.pad = (0, 1) if fw == 2 else (1, 1)
        self.pad = self.pad + ((0, 1) if fh == 2 else (1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, self.pad))


class Upsample2d(nn.Module):
    """Nearest-neighbour upsampling by ``factor`` ``(f_H, f_W)``, then a 3x3 conv."""

    def __init__(self, channels: int, factor: Sequence[int] = (2, 2)):
        super().__init__()
        self.factor = _check_factor(factor)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=tuple(float(f) for f in self.factor), mode="nearest"))


def _levels(ch_mult: Sequence[int], factors: Sequence[Sequence[int]] | None,
            attn_levels: Sequence[int]) -> list[tuple[int, int]]:
    n = len(ch_mult)
    if n < 1 or min(ch_mult) < 1:
        raise ConfigError(f"ch_mult must be a non-empty list of positive multipliers, got {tuple(ch_mult)}")
    fs = [(2, 2)] * (n - 1) if factors is None else [_check_factor(f) for f in factors]
    if len(fs) != n - 1:
        raise ConfigError(f"factors must give one (freq, time) factor per level transition ({n - 1}), got {len(fs)}")
    bad = [a for a in attn_levels if not 0 <= int(a) < n]
    if bad:
        raise ConfigError(f"attn_levels {bad} out of range for {n} levels")
    return fs


class Encoder2d(nn.Module):
    """``(B, in_channels, H, W) -> (B, z_channels, H / prod f_H, W / prod f_W)`` (floor at each level).

    Args:
        in_channels, z_channels: input channels (1 for a spectrogram) and latent channels.
        ch, ch_mult: base width and per-level multipliers (SpecVQGAN: 128, (1, 1, 2, 2, 4)).
        num_res_blocks: ResNet blocks per level (2).
        attn_levels: levels (0-based) whose blocks are followed by attention (SpecVQGAN: the deepest).
        factors: per level transition ``(f_H, f_W)``; default ``(2, 2)`` everywhere (official).
        dropout, groups: dropout in the ResNet blocks; GroupNorm groups (32).
        double_z: ``2 * z_channels`` outputs (a Gaussian posterior's mean and log-variance; VQGAN: False).
    """

    def __init__(self, *, in_channels: int, z_channels: int, ch: int, ch_mult: Sequence[int], num_res_blocks: int,
                 attn_levels: Sequence[int] = (), factors: Sequence[Sequence[int]] | None = None,
                 dropout: float = 0.0, groups: int = 32, double_z: bool = False):
        super().__init__()
        fs = _levels(ch_mult, factors, attn_levels)
        self.factors = fs
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        in_mult = (1, *ch_mult)
        self.down = nn.ModuleList()
        block_in = ch
        for i, mult in enumerate(ch_mult):
            level = nn.Module()
            level.block, level.attn = nn.ModuleList(), nn.ModuleList()
            block_in, block_out = ch * in_mult[i], ch * mult
            for _ in range(num_res_blocks):
                level.block.append(ResnetBlock2d(block_in, block_out, dropout, groups))
                block_in = block_out
                if i in attn_levels:
                    level.attn.append(AttnBlock2d(block_in, groups))
            if i != len(ch_mult) - 1:
                level.downsample = Downsample2d(block_in, fs[i])
            self.down.append(level)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock2d(block_in, block_in, dropout, groups)
        self.mid.attn_1 = AttnBlock2d(block_in, groups)
        self.mid.block_2 = ResnetBlock2d(block_in, block_in, dropout, groups)
        self.norm_out = group_norm(block_in, groups)
        self.conv_out = nn.Conv2d(block_in, 2 * z_channels if double_z else z_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for level in self.down:
            for j, block in enumerate(level.block):
                h = block(h)
                if len(level.attn):
                    h = level.attn[j](h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder2d(nn.Module):
    """``(B, z_channels, h, w) -> (B, out_channels, h * prod f_H, w * prod f_W)``; arguments as :class:`Encoder2d`
    (the same ``factors``, applied in reverse). ``last_layer`` is ``conv_out.weight`` (VQGAN's adaptive weight)."""

    def __init__(self, *, out_channels: int, z_channels: int, ch: int, ch_mult: Sequence[int], num_res_blocks: int,
                 attn_levels: Sequence[int] = (), factors: Sequence[Sequence[int]] | None = None,
                 dropout: float = 0.0, groups: int = 32):
        super().__init__()
        fs = _levels(ch_mult, factors, attn_levels)
        self.factors = fs
        block_in = ch * ch_mult[-1]
        self.conv_in = nn.Conv2d(z_channels, block_in, 3, padding=1)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock2d(block_in, block_in, dropout, groups)
        self.mid.attn_1 = AttnBlock2d(block_in, groups)
        self.mid.block_2 = ResnetBlock2d(block_in, block_in, dropout, groups)
        up: list[nn.Module] = []
        for i in reversed(range(len(ch_mult))):
            level = nn.Module()
            level.block, level.attn = nn.ModuleList(), nn.ModuleList()
            block_out = ch * ch_mult[i]
            for _ in range(num_res_blocks + 1):
                level.block.append(ResnetBlock2d(block_in, block_out, dropout, groups))
                block_in = block_out
                if i in attn_levels:
                    level.attn.append(AttnBlock2d(block_in, groups))
            if i != 0:
                level.upsample = Upsample2d(block_in, fs[i - 1])
            up.insert(0, level)  # up[i] is level i, as the official prepend
        self.up = nn.ModuleList(up)
        self.norm_out = group_norm(block_in, groups)
        self.conv_out = nn.Conv2d(block_in, out_channels, 3, padding=1)

    @property
    def last_layer(self) -> Tensor:
        return self.conv_out.weight

    def forward(self, z: Tensor) -> Tensor:
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(self.conv_in(z))))
        for i in reversed(range(len(self.up))):
            level = self.up[i]
            for j, block in enumerate(level.block):
                h = block(h)
                if len(level.attn):
                    h = level.attn[j](h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


def _patchgan_init(m: nn.Module) -> None:
    if isinstance(m, nn.Conv2d):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class NLayerDiscriminator(nn.Module):
    """PatchGAN ``(B, in_channels, H, W) -> logits (B, 1, H', W')`` (one per receptive-field patch).

    ``n_layers`` stride-2 4x4 convs (widths ``ndf * min(2^n, 8)``), one stride-1 conv and a 1-channel stride-1
    conv; BatchNorm after every conv but the first and the last (those have biases; the others do not).
    SpecVQGAN: ``in_channels=1, ndf=64, n_layers=3`` (2,763,585 parameters).
    """

    def __init__(self, in_channels: int = 1, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        if n_layers < 1 or ndf < 1:
            raise ConfigError(f"NLayerDiscriminator needs n_layers >= 1 and ndf >= 1, got {n_layers}, {ndf}")
        seq: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            seq += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=2 if n < n_layers else 1, padding=1, bias=False),
                    nn.BatchNorm2d(ndf * mult), nn.LeakyReLU(0.2, True)]
        seq.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.main = nn.Sequential(*seq)
        self.apply(_patchgan_init)

    def forward(self, x: Tensor) -> Tensor:
        return self.main(x)
