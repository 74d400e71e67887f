"""Losses of PortaSpeech (Ren et al., NeurIPS 2021, arXiv:2109.15166), as the official NATSpeech task computes them.

* :func:`flow_prior_kl`: Section 3.1, the KL of the fVAE whose prior is enhanced by a volume-preserving flow ``f``,
  estimated on the posterior sample: ``log q(z|x) - log N(f(z); 0, I)`` summed over valid latent frames, divided by
  their count and by the latent channels (NATSpeech ``FVAE.forward``).
* :func:`postflow_nll`: Section 3.3, the negative log-likelihood of the target mel under the Glow post-net,
  ``-mean log N(z; 0, I) - mean(logdet / (T_valid * n_mels))`` (NATSpeech ``PortaSpeechFlow.run_post_glow``: the first
  mean runs over every element of ``z``, padded ones included, as there).
* :func:`word_duration_loss`: L1 between ``ln(d + 1)`` of predicted and target frames per *word*, over valid words;
  optionally the L1 of the sentence totals (``lambda_sent_dur``; 0 in ``ps.yaml``).
* :func:`mel_ssim_loss`: ``1 - SSIM`` of predicted and target mels (11 x 11 Gaussian window, sigma 1.5, SSIM's
  ``C1 = 0.01^2``, ``C2 = 0.03^2``) averaged over the non-silent frames; the mels are biased by ``+bias`` first
  (NATSpeech: ``+6`` on log10 mels; :func:`mel_ssim_loss` takes natural-log mels and converts them to log10 first,
  so the constants keep NATSpeech's meaning). NATSpeech's mel loss is ``0.5 L1 + 0.5 SSIM``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import DataError

__all__ = ["flow_prior_kl", "mel_ssim_loss", "postflow_nll", "word_duration_loss"]

_LOG_2PI = math.log(2 * math.pi)


def _std_normal_logp(z: Tensor) -> Tensor:
    return -0.5 * (z * z + _LOG_2PI)


def flow_prior_kl(z_q: Tensor, mean: Tensor, log_std: Tensor, z_p: Tensor, mask: Tensor) -> Tensor:
    """Monte-Carlo KL of a flow-prior VAE. ``z_q, mean, log_std, z_p``: ``(B, C, T)``; ``mask``: ``(B, 1, T)``."""
    if not (z_q.shape == mean.shape == log_std.shape == z_p.shape):
        raise DataError("z_q, mean, log_std and z_p must have one shape")
    log_q = -0.5 * ((z_q - mean) * torch.exp(-log_std)) ** 2 - log_std - 0.5 * _LOG_2PI
    return ((log_q - _std_normal_logp(z_p)) * mask).sum() / mask.sum().clamp(min=1) / z_q.shape[1]


def postflow_nll(z: Tensor, logdet: Tensor, mask: Tensor) -> Tensor:
    """Glow post-net NLL per element. ``z``: ``(B, C, T)``; ``logdet``: ``(B,)``; ``mask``: ``(B, 1, T)``."""
    ldj = logdet / mask.sum((1, 2)).clamp(min=1) / z.shape[1]
    return -_std_normal_logp(z).mean() - ldj.mean()


def word_duration_loss(pred: Tensor, target: Tensor, word_lengths: Tensor, lambda_sentence: float = 0.0) -> Tensor:
    """``pred``, ``target``: frames per word ``(B, W)`` (linear); ``word_lengths``: ``(B,)``."""
    if pred.shape != target.shape:
        raise DataError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    valid = (torch.arange(pred.shape[1], device=pred.device)[None] < word_lengths[:, None]).to(pred.dtype)
    p, t = pred * valid, target.to(pred.dtype) * valid
    loss = (F.l1_loss((p + 1).log(), (t + 1).log(), reduction="none") * valid).sum() / valid.sum().clamp(min=1)
    if lambda_sentence > 0:
        loss = loss + lambda_sentence * F.l1_loss(p.sum(-1), t.sum(-1))
    return loss


def _gaussian_window(size: int, sigma: float, device: torch.device, dtype: torch.dtype) -> Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - size // 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] @ g[None, :])[None, None]


def mel_ssim_loss(pred: Tensor, target: Tensor, mel_lengths: Tensor, bias: float = 6.0, log10: bool = True,
                  window: int = 11) -> Tensor:
    """``pred``, ``target``: natural-log mels ``(B, n_mels, L)``; frames past ``mel_lengths (B,)`` are ignored."""
    if pred.shape != target.shape:
        raise DataError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    s = 1.0 / math.log(10.0) if log10 else 1.0
    valid = (torch.arange(pred.shape[-1], device=pred.device)[None] < mel_lengths[:, None]).to(pred.dtype)
    a = (pred * s + bias).transpose(1, 2)[:, None] * valid[:, None, :, None]  # (B, 1, L, n_mels)
    b = (target * s + bias).transpose(1, 2)[:, None] * valid[:, None, :, None]
    w = _gaussian_window(window, 1.5, pred.device, pred.dtype)
    conv = lambda x: F.conv2d(x, w, padding=window // 2)  # noqa: E731
    mu1, mu2 = conv(a), conv(b)
    s11, s22, s12 = conv(a * a) - mu1 ** 2, conv(b * b) - mu2 ** 2, conv(a * b) - mu1 * mu2
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    ssim = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 ** 2 + mu2 ** 2 + c1) * (s11 + s22 + c2))
    weights = valid[..., None].expand(-1, -1, pred.shape[1])  # (B, L, n_mels)
    return ((1 - ssim[:, 0]) * weights).sum() / weights.sum().clamp(min=1)
