"""GAN losses as in HiFi-GAN (Kong et al. 2020; jik876/hifi-gan ``models.py``).

Discriminator outputs are lists with one entry per sub-discriminator (periods of the MPD, scales of the
MSD...): ``logits[i]`` a tensor, ``fmaps[i]`` the list of its intermediate feature maps.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ...errors import ConfigError

ADVERSARIAL = ("lsgan", "hinge")


def discriminator_loss(real: Sequence[Tensor], fake: Sequence[Tensor], kind: str = "lsgan") -> Tensor:
    """Sum over sub-discriminators of the D loss.

    lsgan (HiFi-GAN, Mao et al. 2017): mean((1 - D(x))²) + mean(D(G(z))²);
    hinge (MelGAN/SoundStream): mean(relu(1 - D(x))) + mean(relu(1 + D(G(z)))).
    """
    _check(kind)
    total = real[0].new_zeros(())
    for dr, dg in zip(real, fake):
        dr, dg = dr.float(), dg.float()
        if kind == "lsgan":
            total = total + torch.mean((1 - dr) ** 2) + torch.mean(dg**2)
        else:
            total = total + torch.relu(1 - dr).mean() + torch.relu(1 + dg).mean()
    return total


def generator_adversarial_loss(fake: Sequence[Tensor], kind: str = "lsgan") -> Tensor:
    """Sum over sub-discriminators: lsgan mean((1 - D(G(z)))²); hinge mean(-D(G(z)))."""
    _check(kind)
    total = fake[0].new_zeros(())
    for dg in fake:
        dg = dg.float()
        total = total + (torch.mean((1 - dg) ** 2) if kind == "lsgan" else -dg.mean())
    return total


def feature_matching_loss(real_fmaps: Sequence[Sequence[Tensor]], fake_fmaps: Sequence[Sequence[Tensor]]) -> Tensor:
    """Sum over every feature map of mean |D_l(x) - D_l(G(z))| (HiFi-GAN multiplies it by 2)."""
    total = None
    for dr, dg in zip(real_fmaps, fake_fmaps):
        for r, g in zip(dr, dg):
            term = torch.mean(torch.abs(r.detach().float() - g.float()))
            total = term if total is None else total + term
    if total is None:
        return torch.zeros(())
    return total


def _check(kind: str) -> None:
    if kind not in ADVERSARIAL:
        raise ConfigError(f"unknown adversarial loss {kind!r}; choose one of {ADVERSARIAL}")
