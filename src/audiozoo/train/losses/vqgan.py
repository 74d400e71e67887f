"""The adversarial part of the VQGAN loss (Esser et al., "Taming Transformers for High-Resolution Image
Synthesis", arXiv:2012.09841, eq. 7-8; CompVis/taming-transformers and v-iashin/SpecVQGAN
``modules/losses/vqperceptual.py``), as SpecVQGAN trains its spectrogram codebook with it.

* :func:`vqgan_discriminator_loss`: ``0.5 (mean relu(1 - D(x)) + mean relu(1 + D(x_hat)))`` (``"hinge"``) or
  ``0.5 (mean softplus(-D(x)) + mean softplus(D(x_hat)))`` (``"vanilla"``); the generator's term is
  ``-mean D(x_hat)``.
* :func:`adaptive_weight`: ``lambda = ||grad_L nll|| / (||grad_L g_loss|| + 1e-4)`` at the decoder's last layer
  ``L``, clamped to ``[min_weight, max_weight]``, detached, times ``disc_weight`` (eq. 8) -- the adversarial term
  gets the reconstruction term's gradient scale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import ConfigError

__all__ = ["VQGAN_D_LOSSES", "adaptive_weight", "vqgan_discriminator_loss"]

VQGAN_D_LOSSES = ("hinge", "vanilla")


def vqgan_discriminator_loss(logits_real: Tensor, logits_fake: Tensor, kind: str = "hinge") -> Tensor:
    """The discriminator's loss on PatchGAN logits of real and reconstructed inputs (see the module docstring)."""
    if kind == "hinge":
        return 0.5 * (F.relu(1.0 - logits_real.float()).mean() + F.relu(1.0 + logits_fake.float()).mean())
    if kind == "vanilla":
        return 0.5 * (F.softplus(-logits_real.float()).mean() + F.softplus(logits_fake.float()).mean())
    raise ConfigError(f"unknown VQGAN discriminator loss {kind!r}; choose one of {VQGAN_D_LOSSES}")


def adaptive_weight(nll: Tensor, g_loss: Tensor, last_layer: Tensor, disc_weight: float = 1.0,
                    min_weight: float = 0.0, max_weight: float = 1e4) -> Tensor:
    """VQGAN's adaptive weight of the generator's adversarial term (eq. 8), detached (a scalar tensor)."""
    g_nll = torch.autograd.grad(nll, last_layer, retain_graph=True)[0]
    g_adv = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    w = torch.norm(g_nll) / (torch.norm(g_adv) + 1e-4)
    return torch.clamp(w, min_weight, max_weight).detach() * disc_weight
