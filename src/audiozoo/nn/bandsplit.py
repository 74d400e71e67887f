"""Band-split front end and per-band mask estimation for spectrogram separators (BS-/Mel-RoFormer, BSRNN).

A complex spectrogram ``(B, C, F, L)`` is cut into ``K`` frequency bands; each band's bins (all channels, real
and imaginary parts) are projected by its own small network to a ``D``-dim token, giving ``(B, L, K, D)``
tokens for a transformer over time and bands; per-band MLPs map the tokens back to complex mask values of each
band's bins, and where bands overlap (Mel-band split) the values of every band covering a bin are averaged.

- :func:`mel_band_assignment`: the ``(K, F)`` bin-to-band membership of a Mel-band split: bin ``f`` belongs to
  band ``k`` where the ``k``-th triangular mel filter (Slaney scale and norm, as ``librosa.filters.mel``) is
  non-zero; the DC bin is added to the first band and the Nyquist bin to the last, so every bin is covered
  (Mel-Band RoFormer, arXiv:2310.01809, Section 2: overlapping bands, masks averaged over overlaps).
- :func:`band_indices`: the ascending flat indices gathered per band for ``C`` channels interleaved per bin.
- :class:`RMSNorm`: ``x / ||x|| * sqrt(d) * gamma`` (root-mean-square norm in its l2 form).
- :class:`BandSplit`: per band ``RMSNorm -> Linear`` (BS-RoFormer, arXiv:2309.02612, Section 2.1).
- :class:`BandMaskEstimator`: per band ``MLP (tanh) -> GLU`` (BS-RoFormer, Section 2.3).
- :class:`OverlapAverage` / :func:`average_overlapping`: the per-band values back to bins, averaged over the
  bands that share a bin (a gather of at most ``max count`` values per bin: no scatter, so it exports to ONNX).
- :class:`ConvSTFT` / :class:`ConvISTFT`: a centred, reflect-padded Hann STFT and its inverse to an exact
  length, in real arithmetic with DFT kernels (strided convolutions; no FFT, no complex dtype: ONNX-exportable),
  equal to ``torch.stft`` / ``torch.istft(length=T)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..dsp.mel import mel_filterbank
from ..dsp.stft import ConstantBuffers, OverlapAddISTFT, get_window, pad_window
from ..errors import AudioError, ConfigError

__all__ = ["BandMaskEstimator", "BandSplit", "ConvISTFT", "ConvSTFT", "OverlapAverage", "RMSNorm",
           "average_overlapping", "band_indices", "mel_band_assignment"]


def mel_band_assignment(sample_rate: int, n_fft: int, num_bands: int) -> Tensor:
    """Bins of each Mel band: bool ``(num_bands, n_fft // 2 + 1)``.

    Band ``k`` holds the bins where the ``k``-th Slaney mel triangle over 0..``sample_rate / 2`` is positive;
    DC goes to the first band and Nyquist to the last (their triangles end exactly there). Raises
    :class:`ConfigError` when a bin or a band is left empty (too many bands for ``n_fft``).
    """
    if num_bands < 1:
        raise ConfigError(f"num_bands must be >= 1, got {num_bands}")
    import warnings

    # on the CPU even inside a meta-device context (parameter counting): the split is a constant of the config
    with warnings.catch_warnings(), torch.device("cpu"):  # empty bands are reported below, with their numbers
        warnings.simplefilter("ignore")
        fb = mel_filterbank(sample_rate, n_fft, num_bands, norm="slaney", dtype=torch.float64)
    member = fb > 0
    member[0, 0] = True
    member[-1, -1] = True
    empty_bands = (~member.any(dim=1)).nonzero().flatten().tolist()
    uncovered = (~member.any(dim=0)).nonzero().flatten().tolist()
    if empty_bands or uncovered:
        raise ConfigError(f"mel band split: {num_bands} bands over n_fft={n_fft} at {sample_rate} Hz leave bands "
                          f"{empty_bands[:5]} empty and bins {uncovered[:5]} uncovered; use fewer bands or a "
                          "larger n_fft")
    return member


def band_indices(member: Tensor, channels: int = 1) -> Tensor:
    """Flat indices into a ``(F * channels)`` axis laid out bin-major (``f * channels + c``), band after band:
    ``(sum_k |band_k| * channels,)`` long."""
    k, f = member.shape
    with torch.device("cpu"):
        bins = torch.arange(f).expand(k, f)[member.cpu()]  # ascending within each band, bands in order
        return (bins[:, None] * channels + torch.arange(channels)).flatten()


class RMSNorm(nn.Module):
    """``x / max(||x||_2, eps) * sqrt(dim) * gamma`` over the last dim (RMS norm written as an l2 norm)."""

    def __init__(self, dim: int, eps: float = 1e-12):
        super().__init__()
        self.scale, self.eps = dim**0.5, eps
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(x, dim=-1, eps=self.eps) * self.scale * self.gamma


class BandSplit(nn.Module):
    """``(B, L, sum(band_dims)) -> (B, L, K, dim)``: band ``k``'s slice of ``band_dims[k]`` values through
    ``RMSNorm -> Linear(band_dims[k], dim)``."""

    def __init__(self, band_dims: tuple[int, ...] | list[int], dim: int):
        super().__init__()
        self.band_dims = tuple(int(d) for d in band_dims)
        self.to_features = nn.ModuleList(nn.Sequential(RMSNorm(d), nn.Linear(d, dim)) for d in self.band_dims)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != sum(self.band_dims):
            raise ConfigError(f"BandSplit expects {sum(self.band_dims)} values per frame, got {x.shape[-1]}")
        # positive dims: the TorchScript ONNX exporter can lose the rank and misplace negative axes
        parts = x.split(self.band_dims, dim=x.ndim - 1)
        return torch.stack([net(p) for net, p in zip(self.to_features, parts)], dim=x.ndim - 1)


def _mlp(dim_in: int, dim_out: int, hidden: int, depth: int, act: type[nn.Module] = nn.Tanh) -> nn.Sequential:
    """``depth`` hidden layers of width ``hidden`` with ``act`` between the linear layers."""
    dims = (dim_in, *([hidden] * depth), dim_out)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


class _GLU(nn.Module):
    """``a * sigmoid(b)`` for ``(a, b)`` the halves of the last dim (``nn.GLU(-1)``, written out because the
    TorchScript ONNX exporter misreads ``glu``'s negative dim)."""

    def forward(self, x: Tensor) -> Tensor:
        a, b = x.chunk(2, dim=x.ndim - 1)
        return a * torch.sigmoid(b)


class BandMaskEstimator(nn.Module):
    """``(B, L, K, dim) -> (B, L, sum(band_dims))``: band ``k``'s token through an MLP (``depth`` tanh hidden
    layers of ``hidden`` units) to ``2 * band_dims[k]`` values, halved by a GLU."""

    def __init__(self, dim: int, band_dims: tuple[int, ...] | list[int], depth: int = 1, hidden: int | None = None):
        super().__init__()
        if depth < 0:
            raise ConfigError(f"mask estimator depth must be >= 0, got {depth}")
        self.band_dims = tuple(int(d) for d in band_dims)
        hidden = 4 * dim if hidden is None else hidden
        self.to_freqs = nn.ModuleList(nn.Sequential(_mlp(dim, 2 * d, hidden, depth), _GLU())
                                      for d in self.band_dims)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2] != len(self.band_dims):
            raise ConfigError(f"BandMaskEstimator expects {len(self.band_dims)} bands, got {x.shape[-2]}")
        outs = [net(t) for net, t in zip(self.to_freqs, x.unbind(dim=x.ndim - 2))]
        return torch.cat(outs, dim=x.ndim - 2)


class OverlapAverage(nn.Module):
    """Per-band values back onto bins, averaged where bands overlap: ``(..., N, L) -> (..., size, L)``.

    ``index`` ``(N,)`` says which bin each of the ``N`` gathered values belongs to (:func:`band_indices`). Bin
    ``j`` takes the mean of its ``counts[j]`` values (0 if none): the values are gathered through a constant
    ``(size, max count)`` table that points missing slots at an appended zero row.
    """

    def __init__(self, index: Tensor, size: int):
        super().__init__()
        with torch.device("cpu"):
            index = index.cpu().long()
            counts = torch.bincount(index, minlength=size)
            if counts.numel() > size:
                raise ConfigError(f"OverlapAverage: index points past {size} bins")
            m = max(int(counts.max()), 1)
            table = torch.full((size, m), len(index), dtype=torch.long)
            order = torch.argsort(index, stable=True)
            slot = torch.arange(len(index)) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
            table[index[order], slot] = order
        self.size, self.max_count = size, m
        self.register_buffer("table", table.flatten(), persistent=False)
        self.register_buffer("inv_counts", 1.0 / counts.clamp(min=1).double(), persistent=False)

    def forward(self, values: Tensor) -> Tensor:
        d = values.ndim - 2  # positive dims (ONNX export)
        padded = F.pad(values, (0, 0, 0, 1))  # the zero row missing slots point at
        out = padded.index_select(d, self.table).unflatten(d, (self.size, self.max_count)).sum(d + 1)
        return out * self.inv_counts.to(out.real.dtype if out.is_complex() else out.dtype)[:, None]


def average_overlapping(values: Tensor, index: Tensor, size: int, counts: Tensor | None = None) -> Tensor:
    """Average per-band values back onto bins.

    Args:
        values: ``(..., N, L)`` values of the gathered bins (``N = len(index)``), real or complex.
        index: ``(N,)`` the bin each value belongs to (:func:`band_indices`).
        size: number of bins of the output.
        counts: ``(size,)`` how many values land on each bin (computed from ``index`` when omitted).
    Returns:
        ``(..., size, L)``: the mean over the values of each bin (0 where a bin gets none).
    """
    if counts is None:
        counts = torch.bincount(index, minlength=size)
    out = values.new_zeros(values.shape[:-2] + (size, values.shape[-1]))
    idx = index.view((1,) * (values.ndim - 2) + (-1, 1)).expand_as(values)
    out = out.scatter_add(-2, idx, values)
    return out / counts.clamp(min=1).to(out.real.dtype if out.is_complex() else out.dtype)[:, None]


def _dft_kernels(n_fft: int, win_length: int) -> tuple[Tensor, Tensor, int]:
    win = pad_window(get_window("hann", win_length, dtype=torch.float64), n_fft)
    n_bins = n_fft // 2 + 1
    angle = 2 * math.pi * torch.arange(n_bins, dtype=torch.float64)[:, None] * torch.arange(n_fft) / n_fft
    return angle.cos() * win, -angle.sin() * win, n_bins


class ConvSTFT(ConstantBuffers):
    """Centred (reflect-padded) Hann STFT as one strided convolution: ``(N, T) -> (real, imag)``, each
    ``(N, n_fft // 2 + 1, T // hop + 1)``; ``X[k] = sum_n x[n] w[n] e^{-2 pi i k n / n_fft}`` as ``torch.stft``.
    ``T`` must exceed ``n_fft // 2`` (reflect padding)."""

    def __init__(self, n_fft: int, hop_length: int, win_length: int | None = None):
        super().__init__()
        win_length = n_fft if win_length is None else win_length
        if min(n_fft, hop_length, win_length) < 1:
            raise ConfigError(f"ConvSTFT needs positive n_fft/hop/win, got {n_fft}/{hop_length}/{win_length}")
        self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length
        cos, sin, self.n_bins = _dft_kernels(n_fft, win_length)
        self.register_constant("kernel", torch.cat([cos, sin]).unsqueeze(1))  # (2F, 1, n_fft)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        half = self.n_fft // 2
        if x.shape[-1] <= half:
            raise AudioError(f"ConvSTFT: {x.shape[-1]} samples are too few to reflect-pad by n_fft // 2 = {half}")
        y = F.conv1d(F.pad(x[:, None], (half, half), mode="reflect"), self.kernel.to(x.dtype), stride=self.hop_length)
        return y[:, :self.n_bins], y[:, self.n_bins:]

    def extra_repr(self) -> str:
        return f"n_fft={self.n_fft}, hop_length={self.hop_length}, win_length={self.win_length}"


class ConvISTFT(OverlapAddISTFT):
    """Inverse of :class:`ConvSTFT` to exactly ``length`` samples, as ``torch.istft(center=True, length=T)``:
    ``(real, imag) (N, F, L) -> (N, length)``; samples after the last frame's centre come from its right half
    (zero where no frame reaches)."""

    def forward(self, real: Tensor, imag: Tensor, length: int) -> Tensor:  # type: ignore[override]
        spec = torch.cat([real, imag], dim=1)
        y = F.conv_transpose1d(spec, self.kernel.to(spec.dtype), stride=self.hop_length)  # (N, 1, n_fft + hop (L-1))
        env = F.conv_transpose1d(torch.ones_like(real[:1, :1]), self.window_sq.to(spec.dtype), stride=self.hop_length)
        y = y / torch.where(env > torch.finfo(env.dtype).tiny, env, torch.ones_like(env))
        half = self.n_fft // 2
        y = F.pad(y[:, 0, half:], (0, self.n_fft))  # room for any length up to the frames' reach + n_fft
        return y[:, :length]
