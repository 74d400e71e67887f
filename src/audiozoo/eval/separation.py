"""Source-separation metrics: SI-SDR (+ improvement, permutation-invariant), Demucs/MDX nSDR, BSS-eval.

Argument order is ``(estimate, reference)`` throughout (mir_eval uses the opposite order; the wrapper
below swaps it). Torch functions are batched over any leading axes, time is the last axis, and they are
differentiable.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import torch

from audiozoo.errors import AudioError, ConfigError, require

from ._common import ArrayLike, same_shape, to_numpy, to_tensor

__all__ = ["si_sdr", "si_sdr_improvement", "pit_si_sdr", "nsdr", "bss_eval_sources", "oracle_irm"]

# Largest source count for the exhaustive permutation search (8! = 40,320 permutations).
_MAX_PIT_SOURCES = 8


def _check_pair(estimate: ArrayLike, reference: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    est, ref = to_tensor(estimate, "estimate"), to_tensor(reference, "reference")
    same_shape(est, ref, "estimate/reference")
    if est.shape[-1] == 0:
        raise AudioError("estimate/reference: zero-length signals")
    dtype = torch.promote_types(est.dtype, ref.dtype)
    return est.to(dtype), ref.to(dtype)


def si_sdr(estimate: ArrayLike, reference: ArrayLike, *, zero_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant SDR in dB (Le Roux, Wisdom, Erdogan & Hershey, "SDR - half-baked or well
    done?", ICASSP 2019).

    With (optionally zero-meaned) estimate ŝ and reference s:
    ``alpha = <ŝ, s> / ||s||^2``, ``e_target = alpha s``, ``e_res = ŝ - e_target``,
    ``SI-SDR = 10 log10(||e_target||^2 / ||e_res||^2)``. Zero-meaning follows the paper's reference code
    (and asteroid / torchmetrics). ``eps`` guards the divisions as in asteroid; it caps the value for a
    perfect estimate instead of returning inf.

    Args:
        estimate, reference: ``(..., T)`` waveforms of the same shape.
    Returns:
        ``(...)`` SI-SDR in dB.
    """
    est, ref = _check_pair(estimate, reference)
    if zero_mean:
        est = est - est.mean(dim=-1, keepdim=True)
        ref = ref - ref.mean(dim=-1, keepdim=True)
    ref_energy = (ref * ref).sum(dim=-1, keepdim=True)
    if torch.any(ref_energy == 0):
        raise AudioError(
            "si_sdr: a reference signal is silent, so SI-SDR is undefined for it (use nsdr, which Demucs "
            "uses for possibly-silent stems, or drop that source)"
        )
    alpha = (est * ref).sum(dim=-1, keepdim=True) / (ref_energy + eps)
    target = alpha * ref
    residual = est - target
    ratio = (target * target).sum(dim=-1) / ((residual * residual).sum(dim=-1) + eps)
    return 10.0 * torch.log10(ratio + eps)


def si_sdr_improvement(
    estimate: ArrayLike, reference: ArrayLike, mixture: ArrayLike, *, zero_mean: bool = True
) -> torch.Tensor:
    """SI-SDRi: ``si_sdr(estimate, reference) - si_sdr(mixture, reference)`` in dB (Le Roux et al., 2019).

    Args:
        estimate, reference: ``(..., S, T)`` or ``(..., T)``.
        mixture: broadcastable to ``reference``; a mixture with one axis fewer than ``reference``
            (e.g. ``(B, T)`` for ``(B, S, T)`` sources) gets a source axis inserted.
    Returns:
        ``(...)`` improvement in dB, same leading shape as ``reference``.
    """
    est, ref = _check_pair(estimate, reference)
    mix = to_tensor(mixture, "mixture").to(ref.dtype)
    if mix.dim() == ref.dim() - 1:
        mix = mix.unsqueeze(-2)
    try:
        mix = mix.expand_as(ref)
    except RuntimeError as e:
        raise AudioError(f"mixture {tuple(mix.shape)} does not broadcast to reference {tuple(ref.shape)}") from e
    return si_sdr(est, ref, zero_mean=zero_mean) - si_sdr(mix, ref, zero_mean=zero_mean)


def pit_si_sdr(
    estimate: ArrayLike, reference: ArrayLike, *, zero_mean: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Permutation-invariant SI-SDR (utterance-level PIT, Kolbæk et al., 2017): the assignment of
    estimated to reference sources that maximises the mean SI-SDR, searched exhaustively.

    Args:
        estimate, reference: ``(..., S, T)`` with ``2 <= S <= 8``.
    Returns:
        ``(scores, perm)``: ``scores (..., S)`` SI-SDR of reference source ``i`` against its assigned
        estimate (``scores.mean(-1)`` is the PIT SI-SDR), and ``perm (..., S)`` long, with
        ``perm[..., i]`` the index of the estimate assigned to reference ``i``, so
        ``estimate[..., perm, :]`` (per example) is reordered like ``reference``.
    """
    est, ref = _check_pair(estimate, reference)
    if est.dim() < 2:
        raise AudioError(f"pit_si_sdr: expected (..., S, T) with S >= 2, got shape {tuple(est.shape)}")
    n_src = est.shape[-2]
    if not 2 <= n_src <= _MAX_PIT_SOURCES:
        raise ConfigError(f"pit_si_sdr: supports 2..{_MAX_PIT_SOURCES} sources, got {n_src}")
    # pair[..., i, j] = SI-SDR of estimate j against reference i.
    grid = (*est.shape[:-2], n_src, n_src, est.shape[-1])
    pair = si_sdr(est.unsqueeze(-3).expand(grid), ref.unsqueeze(-2).expand(grid), zero_mean=zero_mean)
    perms = torch.tensor(list(itertools.permutations(range(n_src))), device=pair.device)  # (P, S)
    rows = torch.arange(n_src, device=pair.device)
    per_perm = pair[..., rows, perms]  # (..., P, S)
    best = per_perm.mean(dim=-1).argmax(dim=-1)  # (...)
    perm = perms[best]  # (..., S)
    scores = torch.gather(per_perm, -2, best[..., None, None].expand(*best.shape, 1, n_src)).squeeze(-2)
    return scores, perm


def nsdr(estimate: ArrayLike, reference: ArrayLike, *, sum_channels: bool = False, eps: float = 1e-7) -> torch.Tensor:
    """SDR as used by Demucs and the MDX 2021 challenge ("new SDR", Mitsufuji et al., 2022).

    ``nSDR = 10 log10((||s||^2 + eps) / (||s - ŝ||^2 + eps))`` over the whole track, no scale invariance
    and no distortion filter; ``eps = 1e-7`` is Demucs' ``delta`` (``evaluate.new_sdr``), which keeps
    silent stems finite. The challenge score is then the mean over sources and tracks.

    Args:
        estimate, reference: ``(..., T)``, or ``(..., C, T)`` with ``sum_channels=True`` to sum energies
            over the channel axis too, as Demucs does for stereo (e.g. ``(B, S, C, T) -> (B, S)``).
    Returns:
        ``(...)`` in dB (one axis fewer, or two with ``sum_channels``).
    """
    est, ref = _check_pair(estimate, reference)
    dims: tuple[int, ...] = (-2, -1) if sum_channels else (-1,)
    if sum_channels and est.dim() < 2:
        raise AudioError("nsdr: sum_channels=True needs (..., C, T) inputs")
    num = (ref * ref).sum(dim=dims) + eps
    den = ((ref - est) ** 2).sum(dim=dims) + eps
    return 10.0 * torch.log10(num / den)


def bss_eval_sources(
    estimate: ArrayLike, reference: ArrayLike, *, compute_permutation: bool = True
) -> dict[str, np.ndarray]:
    """Full BSS-eval v3 SDR/SIR/SAR (Vincent, Gribonval & Févotte, 2006) via ``mir_eval.separation``.

    The distortion allowed on the target is a 512-tap time-invariant filter (mir_eval's default), so
    the SDR is at least the plain :func:`nsdr` of a well-scaled estimate. This is the SiSEC / MUSDB18
    "SDR" before museval's framewise variant.

    Args:
        estimate, reference: ``(S, T)`` (or ``(T,)`` for one source), numpy or torch.
        compute_permutation: search the best source order, as mir_eval does by default.
    Returns:
        dict of numpy arrays ``sdr``, ``sir``, ``sar`` (``(S,)``, dB) and ``perm`` (``(S,)``: estimate
        index matched to each reference source).
    """
    separation = require("mir_eval.separation", "BSS-eval SDR", extra="metrics")
    est = to_numpy(estimate, "estimate")
    ref = to_numpy(reference, "reference")
    same_shape(est, ref, "estimate/reference")
    if est.ndim == 1:
        est, ref = est[None], ref[None]
    if est.ndim != 2 or est.shape[-1] == 0:
        raise AudioError(f"bss_eval_sources: expected (S, T) or (T,) signals, got shape {est.shape}")
    if np.any(np.all(ref == 0, axis=-1)):
        raise AudioError("bss_eval_sources: a reference source is silent; BSS-eval is undefined for it")
    if np.any(np.all(est == 0, axis=-1)):
        raise AudioError("bss_eval_sources: an estimated source is silent; BSS-eval is undefined for it")
    with warnings.catch_warnings():
        # mir_eval 0.8 flags its separation module as deprecated (to be removed in 0.9, pointing to
        # museval); the results are unchanged, so keep the user's log clean.
        warnings.simplefilter("ignore", FutureWarning)
        sdr, sir, sar, perm = separation.bss_eval_sources(ref, est, compute_permutation=compute_permutation)
    return {"sdr": sdr, "sir": sir, "sar": sar, "perm": perm}


def oracle_irm(mixture: ArrayLike, sources: ArrayLike, n_fft: int, hop_length: int) -> torch.Tensor:
    """Ideal-ratio-mask separation, the usual upper bound of a mask-based separator.

    Each source's mask is ``|S_i| / sum_j |S_j|`` on a Hann STFT (``n_fft`` / ``hop_length``) of the true sources;
    applied to the mixture's STFT and inverted to the mixture's length.

    Args:
        mixture: ``(T,)``.
        sources: ``(S, T)``, the true sources (their sum is normally the mixture).
    Returns:
        ``(S, T)`` estimates, float32.
    """
    mix, src = to_tensor(mixture, "mixture").float(), to_tensor(sources, "sources").float()
    if mix.dim() != 1 or src.dim() != 2 or src.shape[-1] != mix.shape[-1]:
        raise AudioError(f"oracle_irm: expected a (T,) mixture and (S, T) sources, got {tuple(mix.shape)} and "
                         f"{tuple(src.shape)}")
    if n_fft < 2 or not 0 < hop_length <= n_fft:
        raise ConfigError(f"oracle_irm: need n_fft >= 2 and 0 < hop_length <= n_fft, got {n_fft}, {hop_length}")
    win = torch.hann_window(n_fft, dtype=mix.dtype, device=mix.device)

    def spec(x: torch.Tensor) -> torch.Tensor:
        return torch.stft(x, n_fft, hop_length, window=win, return_complex=True)

    mags = spec(src).abs()
    mask = mags / mags.sum(0, keepdim=True).clamp_min(1e-8)
    return torch.istft(spec(mix)[None] * mask, n_fft, hop_length, window=win, length=mix.shape[-1])
