"""Speech and vocoder metrics: MCD (+ DTW), multi-resolution STFT distance, F0 RMSE / V-UV error,
PESQ and STOI/ESTOI.

Argument order is ``(estimate, reference)`` throughout; the wrapped packages (``pesq``, ``pystoi``)
take the reference first and the wrappers swap the order for you. Results are torch tensors whose
shape is the inputs' leading (batch) shape; a single item gives a 0-d tensor (``float(x)`` works).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch

from audiozoo.errors import AudioError, ConfigError, require

from ._common import ArrayLike, same_shape, to_numpy, to_tensor

__all__ = [
    "MCD_CONSTANT",
    "dtw_path",
    "mel_cepstral_distortion",
    "multi_resolution_stft_distance",
    "f0_rmse",
    "vuv_error_rate",
    "pesq",
    "stoi",
    "log_spectral_distance",
    "high_band_log_spectral_distance",
]

# 10 * sqrt(2) / ln(10) = 6.1418...: turns the Euclidean distance between natural-log mel-cepstra into
# dB, MCD = (10 / ln 10) * sqrt(2 * sum_d (c_d - c'_d)^2) (Kubichek 1993; Kominek et al. 2008).
MCD_CONSTANT = 10.0 * math.sqrt(2.0) / math.log(10.0)


# --------------------------------------------------------------------------------------------- DTW
def dtw_path(cost: ArrayLike) -> tuple[np.ndarray, float]:
    """Dynamic time warping over a local cost matrix with steps (1, 0), (0, 1), (1, 1), all weight 1
    (librosa.sequence.dtw's default), the path running from (0, 0) to (N-1, M-1).

    Args:
        cost: ``(N, M)`` non-negative local costs.
    Returns:
        ``(path, total)``: ``path (K, 2)`` int index pairs in increasing order, ``total`` the summed cost
        along the path (the accumulated cost D[N-1, M-1]).
    """
    c = to_numpy(cost, "cost")
    if c.ndim != 2 or 0 in c.shape:
        raise AudioError(f"dtw_path: expected a non-empty (N, M) cost matrix, got shape {c.shape}")
    n, m = c.shape
    # acc[i+1, j+1] = accumulated cost ending at (i, j); a row/column of inf borders the start.
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    # Fill anti-diagonal by anti-diagonal: cells on diagonal k only need diagonals k-1 and k-2, so each
    # diagonal is one vectorised step (N + M - 1 Python iterations instead of N * M).
    for k in range(n + m - 1):
        i = np.arange(max(0, k - m + 1), min(n - 1, k) + 1)
        j = k - i
        best = np.minimum(np.minimum(acc[i, j + 1], acc[i + 1, j]), acc[i, j])
        acc[i + 1, j + 1] = c[i, j] + best
    # Backtrack, preferring the diagonal step on ties.
    i, j = n - 1, m - 1
    path = [(i, j)]
    while i > 0 or j > 0:
        steps = ((i - 1, j - 1), (i - 1, j), (i, j - 1))
        i, j = min(steps, key=lambda ij: acc[ij[0] + 1, ij[1] + 1])
        path.append((i, j))
    return np.asarray(path[::-1], dtype=np.int64), float(acc[n, m])


# --------------------------------------------------------------------------------------------- MCD
def _mcd_one(est: torch.Tensor, ref: torch.Tensor, use_dtw: bool) -> torch.Tensor:
    if use_dtw:
        # (L_est, L_ref) Euclidean frame distances; the direct (non-matmul) mode is exact, so identical
        # frames give exactly 0.
        local = torch.cdist(est.T, ref.T, compute_mode="donot_use_mm_for_euclid_dist")
        path, _ = dtw_path(local)
        dist = local[torch.from_numpy(path[:, 0]), torch.from_numpy(path[:, 1])]
    else:
        if est.shape[-1] != ref.shape[-1]:
            raise AudioError(
                f"mel_cepstral_distortion: {est.shape[-1]} vs {ref.shape[-1]} frames; use dtw=True to "
                "align sequences of different lengths, or trim them"
            )
        dist = torch.linalg.vector_norm(est - ref, dim=0)
    return MCD_CONSTANT * dist.mean()


def mel_cepstral_distortion(
    estimate: ArrayLike, reference: ArrayLike, *, dtw: bool = False, exclude_c0: bool = True
) -> torch.Tensor:
    """Mel-cepstral distortion in dB between mel-cepstra (e.g. WORLD/SPTK ``mcep``, natural log).

    ``MCD = K * mean_t sqrt(sum_{d>=1} (c_{t,d} - c'_{t,d})^2)`` with ``K = 10 sqrt(2) / ln 10``
    (:data:`MCD_CONSTANT`, 6.1418). The 0th coefficient (log energy / gain) is excluded by default, as in
    Kubichek (1993) and the common TTS evaluations, so loudness does not count as spectral distortion.

    With ``dtw=True`` the frames are first aligned by DTW on that same per-frame distance (the "MCD-DTW"
    of e.g. pymcd), and the mean runs over the aligned frame pairs of the path; without it the inputs
    must have the same number of frames and frame t is compared with frame t.

    Args:
        estimate, reference: ``(D, L)`` mel-cepstra (coefficients x frames, the ``(F, L)`` feature
            layout), or ``(B, D, L)`` batches of equal shape.
    Returns:
        MCD in dB: 0-d tensor, or ``(B,)``.
    """
    est, ref = to_tensor(estimate, "estimate"), to_tensor(reference, "reference")
    if est.dim() not in (2, 3) or est.dim() != ref.dim() or est.shape[-2] != ref.shape[-2]:
        raise AudioError(
            "mel_cepstral_distortion: expected (D, L) or (B, D, L) mel-cepstra with the same D, got "
            f"{tuple(est.shape)} and {tuple(ref.shape)}"
        )
    if est.dim() == 3 and est.shape[0] != ref.shape[0]:
        raise AudioError(f"mel_cepstral_distortion: batch sizes differ ({est.shape[0]} vs {ref.shape[0]})")
    if exclude_c0:
        if est.shape[-2] < 2:
            raise AudioError("mel_cepstral_distortion: need at least 2 coefficients when excluding c0")
        est, ref = est[..., 1:, :], ref[..., 1:, :]
    if min(est.shape[-1], ref.shape[-1]) == 0:
        raise AudioError("mel_cepstral_distortion: zero frames")
    dtype = torch.promote_types(est.dtype, ref.dtype)
    est, ref = est.to(dtype), ref.to(dtype)
    if est.dim() == 2:
        return _mcd_one(est, ref, dtw)
    return torch.stack([_mcd_one(e, r, dtw) for e, r in zip(est, ref)])


# ----------------------------------------------------------------------------------- MR-STFT distance
def _magnitude(x: torch.Tensor, n_fft: int, hop: int, win: int, window: str, eps: float) -> torch.Tensor:
    try:
        win_fn = getattr(torch, f"{window}_window")
    except AttributeError as e:
        raise ConfigError(f"multi_resolution_stft_distance: unknown window '{window}'") from e
    spec = torch.stft(
        x.reshape(-1, x.shape[-1]),
        n_fft=n_fft,
        hop_length=hop,
        win_length=win,
        window=win_fn(win, dtype=x.dtype, device=x.device),
        return_complex=True,
    )
    # Parallel WaveGAN's stft(): sqrt(clamp(re^2 + im^2, 1e-7)) keeps log() and its gradient finite.
    mag = torch.sqrt(torch.clamp(spec.real**2 + spec.imag**2, min=eps))
    return mag.reshape(*x.shape[:-1], *mag.shape[-2:])


def multi_resolution_stft_distance(
    estimate: ArrayLike,
    reference: ArrayLike,
    *,
    fft_sizes: Sequence[int] = (1024, 2048, 512),
    hop_sizes: Sequence[int] = (120, 240, 50),
    win_lengths: Sequence[int] = (600, 1200, 240),
    window: str = "hann",
    eps: float = 1e-7,
) -> dict[str, torch.Tensor]:
    """Multi-resolution STFT distance (Yamamoto et al., Parallel WaveGAN, ICASSP 2020, eqs. 4-6).

    Per resolution: spectral convergence ``|| |S| - |Ŝ| ||_F / || |S| ||_F`` and log-magnitude distance
    ``mean |log|S| - log|Ŝ||`` (L1, mean over bins and frames); each averaged over resolutions. The
    defaults are Parallel WaveGAN's three resolutions (FFT 1024/2048/512, hop 120/240/50, window
    600/1200/240, Hann), also the resolutions of UnivNet's MRD and the HiFi-GAN-family auxiliary
    losses. STFTs are centred with reflect padding (``torch.stft`` defaults, as in that code).
    Differentiable; unlike the training loss it is reported per item rather than pooled over the batch.

    Args:
        estimate, reference: ``(..., T)`` waveforms of the same shape, ``T > max(fft_sizes) // 2``.
    Returns:
        dict of ``(...)`` tensors: ``spectral_convergence``, ``log_magnitude`` and their sum ``total``.
    """
    est, ref = to_tensor(estimate, "estimate"), to_tensor(reference, "reference")
    same_shape(est, ref, "estimate/reference")
    dtype = torch.promote_types(est.dtype, ref.dtype)
    est, ref = est.to(dtype), ref.to(dtype)
    if not len(fft_sizes) == len(hop_sizes) == len(win_lengths) or len(fft_sizes) == 0:
        raise ConfigError("multi_resolution_stft_distance: fft_sizes, hop_sizes, win_lengths must have equal length")
    if est.dim() == 0 or est.shape[-1] <= max(fft_sizes) // 2:
        raise AudioError(
            f"multi_resolution_stft_distance: signals need more than {max(fft_sizes) // 2} samples for "
            f"FFT size {max(fft_sizes)}, got shape {tuple(est.shape)}"
        )
    sc, mag = torch.zeros(est.shape[:-1], dtype=dtype), torch.zeros(est.shape[:-1], dtype=dtype)
    for n_fft, hop, win in zip(fft_sizes, hop_sizes, win_lengths):
        if win > n_fft:
            raise ConfigError(f"multi_resolution_stft_distance: window {win} longer than FFT size {n_fft}")
        m_est = _magnitude(est, n_fft, hop, win, window, eps)
        m_ref = _magnitude(ref, n_fft, hop, win, window, eps)
        sc = sc + torch.linalg.vector_norm(m_ref - m_est, dim=(-2, -1)) / torch.linalg.vector_norm(m_ref, dim=(-2, -1))
        mag = mag + (torch.log(m_ref) - torch.log(m_est)).abs().mean(dim=(-2, -1))
    n = len(fft_sizes)
    return {"spectral_convergence": sc / n, "log_magnitude": mag / n, "total": (sc + mag) / n}


# ------------------------------------------------------------------------------------------------ F0
def _f0_pair(f0_est: ArrayLike, f0_ref: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    def conv(x: ArrayLike, name: str) -> torch.Tensor:
        t = torch.as_tensor(x.detach().cpu() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float64))
        t = t.double()
        if torch.isinf(t).any():
            raise AudioError(f"{name}: contains Inf values")
        # Unvoiced frames are 0 (WORLD, CREPE with a threshold) or NaN (librosa.pyin): both mean unvoiced.
        return torch.nan_to_num(t, nan=0.0)

    est, ref = conv(f0_est, "f0_est"), conv(f0_ref, "f0_ref")
    if est.shape != ref.shape:
        raise AudioError(
            f"F0 tracks have different shapes ({tuple(est.shape)} vs {tuple(ref.shape)}); extract both "
            "with the same hop and trim to the same number of frames"
        )
    if est.dim() == 0 or est.shape[-1] == 0:
        raise AudioError("F0 tracks: expected (..., L) with L > 0 frames")
    return est, ref


def f0_rmse(f0_est: ArrayLike, f0_ref: ArrayLike, *, unit: str = "hz") -> torch.Tensor:
    """Root-mean-square F0 error over the frames voiced (F0 > 0) in **both** tracks.

    ``unit="hz"``: ``sqrt(mean (f - f')^2)`` in Hz. ``unit="cents"``: on ``1200 log2(f / f')`` (octave
    errors weigh the same at any pitch). Items with no frame voiced in both give NaN.

    Args:
        f0_est, f0_ref: ``(..., L)`` F0 in Hz per frame; unvoiced frames are 0 or NaN.
    Returns:
        ``(...)`` RMSE.
    """
    est, ref = _f0_pair(f0_est, f0_ref)
    voiced = (est > 0) & (ref > 0)
    if unit == "hz":
        diff = est - ref
    elif unit == "cents":
        diff = 1200.0 * torch.log2(torch.where(voiced, est, 1.0) / torch.where(voiced, ref, 1.0))
    else:
        raise ConfigError(f"f0_rmse: unit must be 'hz' or 'cents', got '{unit}'")
    sq = torch.where(voiced, diff * diff, 0.0).sum(dim=-1)
    count = voiced.sum(dim=-1)
    return torch.where(count > 0, torch.sqrt(sq / count.clamp(min=1)), torch.nan)


def vuv_error_rate(f0_est: ArrayLike, f0_ref: ArrayLike) -> torch.Tensor:
    """Voiced/unvoiced decision error rate: fraction of frames where exactly one track is voiced (F0 > 0).

    Args:
        f0_est, f0_ref: ``(..., L)`` F0 in Hz; unvoiced frames are 0 or NaN.
    Returns:
        ``(...)`` error rate in [0, 1].
    """
    est, ref = _f0_pair(f0_est, f0_ref)
    return ((est > 0) != (ref > 0)).double().mean(dim=-1)


# ---------------------------------------------------------------------------------------- PESQ / STOI
def _resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return x
    # x: (N, T); soxr wants (frames, channels).
    soxr = require("soxr", "resampling for PESQ")
    return np.ascontiguousarray(soxr.resample(np.ascontiguousarray(x.T), sr_in, sr_out, quality="HQ").T)


def _waveform_pair(estimate: ArrayLike, reference: ArrayLike, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    est, ref = to_numpy(estimate, "estimate"), to_numpy(reference, "reference")
    same_shape(est, ref, "estimate/reference")
    if est.ndim == 0 or est.shape[-1] == 0:
        raise AudioError("estimate/reference: expected (..., T) waveforms with T > 0")
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ConfigError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    return est, ref


def pesq(estimate: ArrayLike, reference: ArrayLike, sample_rate: int, *, mode: str | None = None) -> torch.Tensor:
    """PESQ MOS-LQO (ITU-T P.862 narrow-band, P.862.2 wide-band) via the ``pesq`` package.

    ``mode=None`` picks wide-band at 16 kHz and above, narrow-band below. Wide-band needs 16 kHz and
    narrow-band 8 or 16 kHz; other rates are resampled (soxr, high quality) to 16 kHz, or to 8 kHz for
    narrow-band below 16 kHz. Identical signals score ~4.64 (wb) / ~4.55 (nb), the scale's ceilings.

    Args:
        estimate, reference: ``(..., T)`` waveforms in [-1, 1], same shape.
        sample_rate: their rate in Hz.
    Returns:
        ``(...)`` PESQ scores (float64).
    """
    pesq_mod = require("pesq", "PESQ", extra="metrics")
    est, ref = _waveform_pair(estimate, reference, sample_rate)
    if mode is None:
        mode = "wb" if sample_rate >= 16000 else "nb"
    if mode not in ("wb", "nb"):
        raise ConfigError(f"pesq: mode must be 'wb' or 'nb', got '{mode}'")
    rate = 16000 if (mode == "wb" or sample_rate >= 16000) else 8000
    flat_est = _resample(est.reshape(-1, est.shape[-1]), sample_rate, rate)
    flat_ref = _resample(ref.reshape(-1, ref.shape[-1]), sample_rate, rate)
    scores = []
    for e, r in zip(flat_est, flat_ref):
        if not (np.any(r) and np.any(e)):  # pesq would divide by a zero peak and return garbage
            raise AudioError("pesq: the reference or the estimate is all zeros (silent); PESQ is undefined")
        try:
            scores.append(pesq_mod.pesq(rate, r.astype(np.float32), e.astype(np.float32), mode))
        except pesq_mod.PesqError as err:  # NoUtterancesError (silence), BufferTooShortError...
            raise AudioError(f"pesq: {type(err).__name__}: {err} (is the reference silent or too short?)") from err
    return torch.tensor(scores, dtype=torch.float64).reshape(est.shape[:-1])


def stoi(estimate: ArrayLike, reference: ArrayLike, sample_rate: int, *, extended: bool = False) -> torch.Tensor:
    """STOI (Taal et al., 2011) or, with ``extended=True``, ESTOI (Jensen & Taal, 2016) via ``pystoi``.

    pystoi resamples to STOI's native 10 kHz itself and drops silent frames (40 dB below the loudest)
    before scoring. Identical signals score 1.

    Args:
        estimate, reference: ``(..., T)`` waveforms, same shape; after silence removal at least 30
            frames of 25.6 ms (~ 0.4 s of speech) must remain.
        sample_rate: their rate in Hz.
    Returns:
        ``(...)`` scores (float64), about 0..1.
    """
    pystoi = require("pystoi", "STOI", extra="metrics")
    est, ref = _waveform_pair(estimate, reference, sample_rate)
    flat_est, flat_ref = est.reshape(-1, est.shape[-1]), ref.reshape(-1, ref.shape[-1])
    scores = []
    for e, r in zip(flat_est, flat_ref):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = pystoi.stoi(r, e, sample_rate, extended=extended)
        # pystoi returns a dummy 1e-5 with a warning when too little speech is left; make it an error.
        if any("Not enough STFT frames" in str(w.message) for w in caught):
            raise AudioError("stoi: too little non-silent audio (STOI needs ~0.4 s of speech after removing silence)")
        scores.append(float(value))
    return torch.tensor(scores, dtype=torch.float64).reshape(est.shape[:-1])


# ------------------------------------------------------------------------------ log-spectral distance
def log_spectral_distance(
    estimate: ArrayLike,
    reference: ArrayLike,
    sample_rate: int,
    *,
    n_fft: int = 2048,
    hop_length: int | None = None,
    band: tuple[float, float] | None = None,
    eps: float = 1e-8,
) -> torch.Tensor:
    """Log-spectral distance (LSD), the super-resolution metric of Kuleshov et al. (2017), NU-Wave, HiFi-SR.

    ``LSD = mean_frames sqrt(mean_bins (log10 P_ref - log10 P_est)^2)`` with ``P = max(|STFT|^2, eps)``
    (Hann window of ``n_fft``, hop ``n_fft // 4`` by default, centred frames with reflect padding: the
    ``torch.stft`` defaults of those papers' code). ``band=(lo_hz, hi_hz)`` keeps the bins with
    ``lo <= f <= hi`` (``f = k * sample_rate / n_fft``); see :func:`high_band_log_spectral_distance`.
    ``eps`` bounds the log of silent bins (1e-8: -80 dB of power).

    Args:
        estimate, reference: ``(..., T)`` waveforms of the same shape, ``T > n_fft // 2``.
    Returns:
        ``(...)`` tensor, one LSD per item (log10 units; 0 = identical spectra).
    """
    est, ref = to_tensor(estimate, "estimate"), to_tensor(reference, "reference")
    same_shape(est, ref, "estimate/reference")
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ConfigError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    if n_fft < 2 or not eps > 0:
        raise ConfigError(f"log_spectral_distance needs n_fft >= 2 and eps > 0, got {n_fft}, {eps}")
    if est.dim() == 0 or est.shape[-1] <= n_fft // 2:
        raise AudioError(f"log_spectral_distance: signals need more than {n_fft // 2} samples for n_fft {n_fft}, "
                         f"got shape {tuple(est.shape)}")
    dtype = torch.promote_types(est.dtype, ref.dtype)
    hop = hop_length or n_fft // 4
    window = torch.hann_window(n_fft, dtype=dtype, device=est.device)
    logs = []
    for x in (est.to(dtype), ref.to(dtype)):
        spec = torch.stft(x.reshape(-1, x.shape[-1]), n_fft, hop, n_fft, window, center=True, pad_mode="reflect",
                          return_complex=True)
        logs.append(torch.log10(torch.clamp(spec.real.square() + spec.imag.square(), min=eps)))
    diff = (logs[1] - logs[0]).square()  # (N, bins, frames)
    if band is not None:
        lo, hi = float(band[0]), float(band[1])
        freqs = torch.arange(n_fft // 2 + 1, dtype=dtype) * sample_rate / n_fft
        keep = (freqs >= lo) & (freqs <= hi)
        if not keep.any():
            raise ConfigError(f"log_spectral_distance: no STFT bin lies in band {band} Hz (n_fft {n_fft})")
        diff = diff[:, keep.to(diff.device)]
    lsd = diff.mean(dim=1).sqrt().mean(dim=-1)
    return lsd.reshape(est.shape[:-1])


def high_band_log_spectral_distance(
    estimate: ArrayLike, reference: ArrayLike, sample_rate: int, cutoff_hz: float, **kwargs: object
) -> torch.Tensor:
    """LSD over the bins at or above ``cutoff_hz`` (for super-resolution: the input's Nyquist frequency, the
    band the model has to create); keyword arguments as :func:`log_spectral_distance`."""
    if not 0 <= cutoff_hz < sample_rate / 2:
        raise ConfigError(f"cutoff_hz must lie in [0, {sample_rate / 2}), got {cutoff_hz}")
    return log_spectral_distance(estimate, reference, sample_rate, band=(cutoff_hz, sample_rate / 2), **kwargs)
