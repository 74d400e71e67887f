"""Training losses (DESIGN.md: losses live in ``train/losses/``, never in model files).

One module per kind: ``adversarial`` (GAN + feature matching), ``phase`` (APNet amplitude/phase), and the
others as systems need them. The common names are re-exported here.
"""

from __future__ import annotations

from .adversarial import ADVERSARIAL, discriminator_loss, feature_matching_loss, generator_adversarial_loss

__all__ = ["ADVERSARIAL", "discriminator_loss", "feature_matching_loss", "generator_adversarial_loss"]
