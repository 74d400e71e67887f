"""KL divergences of variational autoencoders (RAVE, VAEs) and of soft labels (knowledge distillation).

* :func:`gaussian_kl`: ``KL(N(mu, sigma^2) || N(0, I))`` of a diagonal Gaussian posterior, the VAE prior term
  (Kingma & Welling 2014, arXiv:1312.6114, Appendix B): ``1/2 sum_c (mu^2 + sigma^2 - log sigma^2 - 1)``.
* :func:`rave_kl`: the same without the 1/2, as RAVE's official ``VariationalEncoder`` computes it (so that
  its ``beta`` = 0.1 keeps its meaning).
* :func:`soft_label_kl`: Hinton et al.'s distillation term (2015, arXiv:1503.02531, Sec. 2):
  ``T^2 KL(softmax(z_t / T) || softmax(z_s / T))``; the ``T^2`` keeps gradient magnitudes comparable across
  temperatures.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import ConfigError, DataError

__all__ = ["gaussian_kl", "rave_kl", "soft_label_kl"]


def _check_posterior(mean: Tensor, std: Tensor, what: str) -> None:
    if mean.shape != std.shape:
        raise DataError(f"{what}: mean {tuple(mean.shape)} and std {tuple(std.shape)} differ in shape")


def gaussian_kl(mean: Tensor, std: Tensor, dim: int = 1) -> Tensor:
    """``KL(N(mean, std^2) || N(0, 1))`` summed over ``dim`` (the latent channels), averaged over the other dims.

    ``mean``, ``std``: posterior parameters of one shape, e.g. ``(B, C, L)`` (``dim=1``) or ``(B, C)``.
    """
    _check_posterior(mean, std, "gaussian_kl")
    var = std * std
    return 0.5 * (mean * mean + var - torch.log(var) - 1).sum(dim).mean()


def rave_kl(mean: Tensor, std: Tensor) -> Tensor:
    """RAVE's KL term ``mean_{b,t} sum_c (mu^2 + s^2 - log s^2 - 1)`` of ``(B, C, L)`` posteriors.

    Twice :func:`gaussian_kl` (the official ``VariationalEncoder`` has no 1/2); its loss scales it by ``beta``
    (0.1 in v1).
    """
    _check_posterior(mean, std, "rave_kl")
    var = std * std
    return (mean * mean + var - torch.log(var) - 1).sum(1).mean()


def soft_label_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """``T^2 KL(p_teacher || p_student)`` with ``p = softmax(logits / T)`` over the last dim, mean over the batch.

    ``student_logits``, ``teacher_logits``: ``(B, C)`` (or ``(..., C)``; every leading position is an example).
    """
    if student_logits.shape != teacher_logits.shape:
        raise DataError(f"soft_label_kl: student {tuple(student_logits.shape)} and teacher "
                        f"{tuple(teacher_logits.shape)} logits differ in shape")
    if not temperature > 0:
        raise ConfigError(f"distillation temperature must be > 0, got {temperature}")
    t = float(temperature)
    c = student_logits.shape[-1]
    log_p_s = F.log_softmax(student_logits.float().reshape(-1, c) / t, dim=-1)
    log_p_t = F.log_softmax(teacher_logits.float().reshape(-1, c) / t, dim=-1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * (t * t)
