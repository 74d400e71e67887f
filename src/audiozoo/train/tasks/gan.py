"""``gan`` task: HiFi-GAN-style adversarial training of a generator with a reconstruction term (discriminator
step, then generator step; Kong et al. 2020). Batches carry ``input`` (what the generator consumes) and
``target`` (the real signal). The class lives in :mod:`._gan`, where the vocoder and super-resolution tasks
extend it; see :class:`~audiozoo.train.tasks._gan.GANTask`.
"""

from __future__ import annotations

from ._gan import GANTask, Outputs
from .base import register_task

register_task("gan")(GANTask)

__all__ = ["GANTask", "Outputs"]
