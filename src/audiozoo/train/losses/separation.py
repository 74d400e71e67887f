"""Source-separation losses: SI-SDR, SD-SDR and SNR (negated, to minimise), waveform L1, and permutation-invariant
training over any of them.

Definitions (Le Roux, Wisdom, Erdogan, Hershey, "SDR - half-baked or well done?", ICASSP 2019, arXiv:1811.02508):
with estimate ``ŝ`` and reference ``s`` (zero-meaned for SI-SDR, as in the paper's code),

* SI-SDR ``= 10 log10(||a s||^2 / ||a s - ŝ||^2)``, ``a = <ŝ, s> / ||s||^2`` (scale-invariant; Conv-TasNet's
  training objective, Luo & Mesgarani 2019, Section III-C);
* SD-SDR ``= 10 log10(||a s||^2 / ||s - ŝ||^2)`` (scale-dependent: a rescaled estimate is penalised);
* SNR ``= 10 log10(||s||^2 / ||s - ŝ||^2)`` (the MDX / Demucs "nSDR" of a whole signal). ``snr_threshold_db``
  adds the soft threshold of Wisdom et al. (MixIT, NeurIPS 2020): ``||s - ŝ||^2 + tau ||s||^2`` with
  ``tau = 10^(-thr/10)``, which bounds the loss of an already good estimate.

Shapes: ``estimate`` and ``reference`` are ``(..., T)`` or ``(..., C, T)`` with ``channels_last_axis=True``
(``(B, S, C, T)`` stereo stems): a multichannel source is one signal (its channels are flattened into time:
one scale ``a`` per source, energies summed over channels, as Demucs sums them). Losses return one value per
source, ``(...)``; the task averages them. ``eps`` keeps silent references finite (training crops can have a
silent stem: the loss then only drives the estimate's energy down).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch
from torch import Tensor

from ...errors import AudioError, ConfigError

__all__ = ["SEPARATION_LOSSES", "l1_loss", "mse_loss", "neg_sd_sdr", "neg_si_sdr", "neg_snr", "pairwise", "pit",
           "separation_loss"]

_MAX_PIT = 8  # 8! = 40,320 permutations


def _flat(est: Tensor, ref: Tensor, channels: bool) -> tuple[Tensor, Tensor]:
    if est.shape != ref.shape:
        raise AudioError(f"estimate {tuple(est.shape)} and reference {tuple(ref.shape)} differ in shape")
    if est.shape[-1] == 0:
        raise AudioError("separation loss on zero-length signals")
    if channels:
        if est.ndim < 2:
            raise AudioError("channels=True needs (..., C, T) signals")
        est, ref = est.flatten(-2), ref.flatten(-2)
    return est.float(), ref.float()


def neg_si_sdr(estimate: Tensor, reference: Tensor, *, channels: bool = False, zero_mean: bool = True,
               eps: float = 1e-8) -> Tensor:
    """``-SI-SDR`` in dB, ``(...)`` (see the module docstring)."""
    est, ref = _flat(estimate, reference, channels)
    if zero_mean:
        est = est - est.mean(-1, keepdim=True)
        ref = ref - ref.mean(-1, keepdim=True)
    alpha = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + eps)
    target = alpha * ref
    ratio = (target.pow(2).sum(-1) + eps) / ((target - est).pow(2).sum(-1) + eps)
    return -10.0 * torch.log10(ratio)


def neg_sd_sdr(estimate: Tensor, reference: Tensor, *, channels: bool = False, eps: float = 1e-8) -> Tensor:
    """``-SD-SDR`` in dB, ``(...)``: the SI-SDR's target energy over the *unprojected* error."""
    est, ref = _flat(estimate, reference, channels)
    alpha = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + eps)
    ratio = ((alpha * ref).pow(2).sum(-1) + eps) / ((ref - est).pow(2).sum(-1) + eps)
    return -10.0 * torch.log10(ratio)


def neg_snr(estimate: Tensor, reference: Tensor, *, channels: bool = False, snr_threshold_db: float | None = None,
            eps: float = 1e-8) -> Tensor:
    """``-SNR`` in dB, ``(...)``; with ``snr_threshold_db`` the soft-thresholded SNR of MixIT."""
    est, ref = _flat(estimate, reference, channels)
    sig = ref.pow(2).sum(-1)
    err = (ref - est).pow(2).sum(-1)
    if snr_threshold_db is not None:
        err = err + 10.0 ** (-float(snr_threshold_db) / 10.0) * sig
    return -10.0 * torch.log10((sig + eps) / (err + eps))


def l1_loss(estimate: Tensor, reference: Tensor, *, channels: bool = False) -> Tensor:
    """Mean absolute error per source, ``(...)`` (Demucs' training loss, paper Section 5.1)."""
    est, ref = _flat(estimate, reference, channels)
    return (est - ref).abs().mean(-1)


def mse_loss(estimate: Tensor, reference: Tensor, *, channels: bool = False) -> Tensor:
    """Mean squared error per source, ``(...)`` (Demucs' ``--mse`` option)."""
    est, ref = _flat(estimate, reference, channels)
    return (est - ref).pow(2).mean(-1)


SEPARATION_LOSSES: dict[str, Callable[..., Tensor]] = {
    "si_sdr": neg_si_sdr, "sd_sdr": neg_sd_sdr, "snr": neg_snr, "l1": l1_loss, "mse": mse_loss,
}


def separation_loss(name: str) -> Callable[..., Tensor]:
    """The per-source loss called ``name`` (one of :data:`SEPARATION_LOSSES`)."""
    if name not in SEPARATION_LOSSES:
        raise ConfigError(f"unknown separation loss {name!r}; expected one of {sorted(SEPARATION_LOSSES)}")
    return SEPARATION_LOSSES[name]


def pairwise(loss: Callable[..., Tensor], estimate: Tensor, reference: Tensor, **kw) -> Tensor:
    """``(B, S, S)`` with ``[b, i, j]`` = loss of estimate ``j`` against reference ``i``; inputs ``(B, S, *sig)``."""
    if estimate.ndim < 3 or estimate.shape != reference.shape:
        raise AudioError(f"pairwise losses need (B, S, ...) estimate and reference of one shape, got "
                         f"{tuple(estimate.shape)} and {tuple(reference.shape)}")
    s = estimate.shape[1]
    grid = (estimate.shape[0], s, s, *estimate.shape[2:])
    return loss(estimate.unsqueeze(1).expand(grid), reference.unsqueeze(2).expand(grid), **kw)


def pit(loss: Callable[..., Tensor], estimate: Tensor, reference: Tensor, **kw) -> tuple[Tensor, Tensor]:
    """Utterance-level permutation-invariant training (Kolbæk et al., TASLP 2017): for each item, the assignment
    of estimates to references with the lowest mean loss.

    Returns ``(losses (B, S), perm (B, S))``: ``losses[b, i]`` is reference ``i``'s loss against its assigned
    estimate ``perm[b, i]`` (``estimate[b, perm[b]]`` is in reference order). The loss matrix is computed
    once, then all ``S!`` permutations are scored (``S <= 8``).
    """
    s = estimate.shape[1]
    if not 1 <= s <= _MAX_PIT:
        raise ConfigError(f"PIT supports 1..{_MAX_PIT} sources, got {s}")
    mat = pairwise(loss, estimate, reference, **kw)  # (B, S, S)
    perms = torch.tensor(list(itertools.permutations(range(s))), device=mat.device)  # (P, S)
    per = mat[:, torch.arange(s, device=mat.device), perms]  # (B, P, S)
    best = per.mean(-1).argmin(-1)  # (B,)
    return per[torch.arange(per.shape[0], device=mat.device), best], perms[best]
