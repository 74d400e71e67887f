"""Constant-Q transforms compatible with nnAudio 0.3.x (``CQT1992v2`` and ``CQT2010v2``).

Two front-ends used by the papers implemented here:

* :class:`CQT1992` — nnAudio's ``CQT1992v2`` (alias ``nnAudio.features.cqt.CQT``), the MERT teacher
  target: one time-domain complex kernel per bin (Brown & Puckette 1992), convolved with the signal
  at stride ``hop_length``.
* :class:`CQT2010` — nnAudio's ``CQT2010v2``, the Basic Pitch front-end: kernels for the top octave
  only, applied to the signal repeatedly low-passed and decimated by 2 (Schörkhuber & Klapuri 2010).

Both reproduce nnAudio's conventions exactly (checked against nnAudio in ``tests/dsp/test_cqt.py``):

* kernel ``k`` has length ``l_k = ceil(Q * sr / f_k)`` with ``Q = filter_scale / (2**(1/bpo) - 1)``,
  is a periodic window times ``exp(2j*pi*f_k*n/sr)`` for ``n = -ceil(l/2) .. floor(l/2)-1``, divided by
  its Lp norm (``norm``), and is centred in a frame of ``2**ceil(log2(max l))`` samples;
* the imaginary part is negated (``X = sum x[n] conj(kernel[n])``);
* "librosa" output scaling multiplies bin ``k`` by ``sqrt(l_k)`` (``normalization_type``);
* kernels are built in float64 and stored in float32, as nnAudio does.

Deliberate differences (documented, none affect the MERT / Basic Pitch settings):

* ``CQT2010`` honours ``window`` and ``fmax`` (nnAudio 0.3.4 silently ignores both and always uses a
  Hann window and ``n_bins``); it builds a full top-octave kernel when ``n_bins < bins_per_octave``
  (nnAudio then returns bins below ``fmin``); and it requires ``hop_length`` to be divisible by
  ``2**(n_octaves-1)`` after early downsampling, as librosa does, where nnAudio fails in ``torch.cat``.
* Kernels are non-persistent buffers: they are rebuilt from the constructor arguments, so a model
  that owns a CQT does not carry hundreds of MB of kernels in its checkpoint.
* ``trainable=True`` is refused (audiozoo's DSP has no learned parameters).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audiozoo.errors import AudioError, ConfigError

from .stft import build_on_cpu

__all__ = ["CQT1992", "CQT2010", "cqt", "cqt_kernels", "cqt_frequencies", "firwin2_lowpass"]

WindowSpec = Union[str, tuple]
_OUTPUT_FORMATS = ("Magnitude", "Complex", "Phase")
_NORMALIZATIONS = ("librosa", "convolutional", "wrap")
_PAD_MODES = ("constant", "reflect")


# ----------------------------------------------------------------------------------------------
# kernel construction (float64, then float32 like nnAudio)
# ----------------------------------------------------------------------------------------------


def _window(window: WindowSpec, n: int) -> Tensor:
    """Periodic (``fftbins=True``) window of length ``n`` in float64, as ``scipy.signal.get_window``.

    Supported: ``"hann"``/``"hanning"``, ``"hamming"``, ``"blackman"``, ``"boxcar"``/``"rectangular"``
    and nnAudio's ``("gaussian", attenuation_db)``.
    """
    if n == 1:
        return torch.ones(1, dtype=torch.float64)
    k = torch.arange(n, dtype=torch.float64)
    if isinstance(window, str):
        name = window.lower()
        if name in ("hann", "hanning"):
            return 0.5 - 0.5 * torch.cos(2 * math.pi * k / n)
        if name == "hamming":
            return 0.54 - 0.46 * torch.cos(2 * math.pi * k / n)
        if name == "blackman":
            return 0.42 - 0.5 * torch.cos(2 * math.pi * k / n) + 0.08 * torch.cos(4 * math.pi * k / n)
        if name in ("boxcar", "rectangular", "rect", "ones"):
            return torch.ones(n, dtype=torch.float64)
    elif isinstance(window, tuple) and len(window) == 2 and window[0] == "gaussian":
        att = float(window[1])
        if att <= 0:
            raise ConfigError(f"gaussian window attenuation must be > 0 dB, got {att}")
        # nnAudio's sigma: the window falls to -att dB at the kernel border.
        sigma = math.floor(-n / 2 / math.sqrt(-2 * math.log(10 ** (-att / 20))))
        if sigma == 0:
            raise ConfigError(f"gaussian window with attenuation {att} dB is degenerate for length {n}")
        # periodic = symmetric window of length n+1 without its last sample (scipy's fftbins=True)
        m = torch.arange(n + 1, dtype=torch.float64) - n / 2
        return torch.exp(-0.5 * (m / sigma) ** 2)[:n]
    raise ConfigError(
        f"unsupported CQT window {window!r}: use 'hann', 'hamming', 'blackman', 'boxcar' "
        "or ('gaussian', attenuation_db)"
    )


def cqt_frequencies(fmin: float, n_bins: int, bins_per_octave: int) -> Tensor:
    """Centre frequencies ``fmin * 2**(k / bins_per_octave)``, k < n_bins, float64 (n_bins,)."""
    return fmin * 2.0 ** (torch.arange(n_bins, dtype=torch.float64) / bins_per_octave)


def cqt_kernels(
    Q: float,
    sr: float,
    fmin: float,
    n_bins: int,
    bins_per_octave: int,
    norm: float | bool | None = 1,
    window: WindowSpec = "hann",
    topbin_check: bool = True,
) -> tuple[Tensor, Tensor, int]:
    """Time-domain CQT kernels, nnAudio's ``create_cqt_kernels`` convention.

    Returns ``(kernels, lengths, width)``: complex64 kernels ``(n_bins, width)`` (each centred in the
    frame), their float32 lengths ``(n_bins,)`` and ``width = 2**ceil(log2(max length))``.
    """
    freqs = cqt_frequencies(fmin, n_bins, bins_per_octave)
    if topbin_check and float(freqs.max()) > sr / 2:
        raise ConfigError(
            f"the top CQT bin {float(freqs.max()):.1f} Hz exceeds the Nyquist frequency {sr / 2} Hz: "
            "reduce n_bins (or fmax)"
        )
    lengths = torch.ceil(Q * sr / freqs)
    width = int(2 ** math.ceil(math.log2(float(lengths.max()))))
    kernels = torch.zeros(n_bins, width, dtype=torch.complex64)
    for k in range(n_bins):
        n_k = int(lengths[k])
        # nnAudio centres odd kernels one sample to the left of even ones.
        start = math.ceil(width / 2 - n_k / 2) - (1 if n_k % 2 == 1 else 0)
        n = torch.arange(-((n_k + 1) // 2), n_k // 2, dtype=torch.float64)
        sig = _window(window, n_k) * torch.exp(1j * 2 * math.pi * float(freqs[k]) / sr * n) / n_k
        if norm:
            sig = sig / torch.linalg.vector_norm(sig, ord=float(norm))
        kernels[k, start : start + n_k] = sig.to(torch.complex64)
    return kernels, lengths.float(), width


def firwin2_lowpass(num_taps: int, band_center: float, transition: float) -> Tensor:
    """nnAudio's ``create_lowpass_filter``: ``scipy.signal.firwin2`` with a Hamming window, float32.

    Gain 1 on ``[0, band_center/(1+transition)]``, 0 from ``band_center*(1+transition)`` to Nyquist
    (frequencies relative to Nyquist). Frequency sampling method of ``firwin2``: interpolate the
    gain on ``1 + 2**ceil(log2(num_taps))`` points, shift by ``(num_taps-1)/2`` samples, inverse real
    FFT, keep ``num_taps`` taps and multiply by a symmetric Hamming window. Returns ``(num_taps,)``.
    """
    knots = torch.tensor(
        [0.0, band_center / (1 + transition), band_center * (1 + transition), 1.0], dtype=torch.float64
    )
    gains = torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    n_freqs = 1 + 2 ** math.ceil(math.log2(num_taps))
    x = torch.linspace(0.0, 1.0, n_freqs, dtype=torch.float64)
    # piecewise-linear interpolation of the gain (np.interp)
    seg = (torch.searchsorted(knots, x, right=True) - 1).clamp(0, len(knots) - 2)
    x0, x1, g0, g1 = knots[seg], knots[seg + 1], gains[seg], gains[seg + 1]
    fx = g0 + (g1 - g0) * (x - x0) / (x1 - x0)
    shift = torch.exp(-(num_taps - 1) / 2.0 * 1j * math.pi * x)
    taps = torch.fft.irfft(fx * shift)[:num_taps]
    m = torch.arange(num_taps, dtype=torch.float64)
    hamming = 0.54 - 0.46 * torch.cos(2 * math.pi * m / (num_taps - 1))
    return (taps * hamming).float()


# ----------------------------------------------------------------------------------------------
# shared forward helpers
# ----------------------------------------------------------------------------------------------


def _as_batch(x: Tensor) -> Tensor:
    """(T,), (B, T) or (B, 1, T) float waveform -> (B, 1, T)."""
    if not isinstance(x, Tensor):
        raise AudioError(f"CQT input must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise AudioError(f"CQT input must be a floating-point waveform, got dtype {x.dtype}")
    if x.dim() == 1:
        x = x[None, None]
    elif x.dim() == 2:
        x = x[:, None]
    elif not (x.dim() == 3 and x.shape[1] == 1):
        raise AudioError(f"CQT input must have shape (T,), (B, T) or (B, 1, T); got {tuple(x.shape)}")
    if x.shape[-1] == 0:
        raise AudioError("CQT input is empty (0 samples)")
    return x


def _check_common(output_format: str, pad_mode: str, trainable: bool, hop_length: int) -> None:
    if output_format not in _OUTPUT_FORMATS:
        raise ConfigError(f"output_format must be one of {_OUTPUT_FORMATS}, got {output_format!r}")
    if pad_mode not in _PAD_MODES:
        raise ConfigError(f"pad_mode must be one of {_PAD_MODES}, got {pad_mode!r}")
    if trainable:
        raise ConfigError("trainable CQT kernels are not supported: audiozoo.dsp has no learned parameters")
    if int(hop_length) != hop_length or hop_length < 1:
        raise ConfigError(f"hop_length must be a positive integer, got {hop_length!r}")


def _n_bins_from_fmax(fmin: float, fmax: float | None, n_bins: int, bins_per_octave: int) -> int:
    # nnAudio: a given fmax overrides n_bins, n_bins = ceil(bpo * log2(fmax / fmin)).
    if fmax is not None:
        if fmax <= fmin:
            raise ConfigError(f"fmax ({fmax}) must be above fmin ({fmin})")
        return int(math.ceil(bins_per_octave * math.log2(fmax / fmin)))
    if int(n_bins) != n_bins or n_bins < 1:
        raise ConfigError(f"n_bins must be a positive integer, got {n_bins!r}")
    return int(n_bins)


def _finish(real: Tensor, imag: Tensor, lengths: Tensor, normalization_type: str, fmt: str) -> Tensor:
    """Output scaling and format; real/imag (B, n_bins, L)."""
    if normalization_type == "librosa":
        scale = torch.sqrt(lengths).to(real.dtype)[:, None]
        real, imag = real * scale, imag * scale
    elif normalization_type == "wrap":
        real, imag = real * 2, imag * 2
    elif normalization_type != "convolutional":
        raise ConfigError(f"normalization_type must be one of {_NORMALIZATIONS}, got {normalization_type!r}")
    if fmt == "Magnitude":
        return torch.sqrt(real.pow(2) + imag.pow(2))
    if fmt == "Complex":
        return torch.stack((real, imag), -1)
    if fmt == "Phase":
        phase = torch.atan2(imag, real)
        return torch.stack((torch.cos(phase), torch.sin(phase)), -1)
    raise ConfigError(f"output_format must be one of {_OUTPUT_FORMATS}, got {fmt!r}")


def decimate(x: Tensor, taps: Tensor, factor: int, padding: int, block: int = 32) -> Tensor:
    """``F.conv1d(x, taps, stride=factor, padding=padding)`` for a single-channel FIR, computed polyphase.

    A one-channel convolution with a 256-tap filter is a poor fit for oneDNN (no channel parallelism:
    ~0.3 GFLOP/s measured here). Regrouping the signal into ``S = factor * block`` phases turns it into a
    ``S -> block`` channel convolution with ``ceil((K + factor (block - 1)) / S)`` taps: output
    ``y[block m + r] = sum_{a, q} taps[S a + q - factor r] * x[S (m + a) + q]``; same products, another
    summation order (differences ~1e-7 relative).

    x: (B, 1, T); taps: (1, 1, K) -> (B, 1, floor((T + 2 padding - K) / factor) + 1).
    """
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        # exported graphs keep the plain strided convolution: the regrouping's lengths would be traced as
        # constants of the example input, and ONNX Runtime's Conv has no oneDNN single-channel problem
        return F.conv1d(x, taps, stride=factor, padding=padding)
    b, c, t = x.shape
    k = taps.shape[-1]
    if c != 1 or taps.shape[:2] != (1, 1):
        raise ValueError(f"decimate expects one channel, got x {tuple(x.shape)}, taps {tuple(taps.shape)}")
    n_out = (t + 2 * padding - k) // factor + 1
    if n_out <= 0:
        return x.new_zeros(b, 1, 0)
    s = factor * block
    a = -(-(k + factor * (block - 1)) // s)
    n_blocks = -(-n_out // block)
    total = (n_blocks + a - 1) * s  # every sample the blocks read, rounded up to whole phases
    xp = F.pad(x, (padding, max(0, total - t - padding)))[..., :total]
    phases = xp.reshape(b, total // s, s).transpose(1, 2)  # (B, S, M): phase q of block m
    h = taps.reshape(k)
    # W[r, q, j] = h[S j + q - factor r] (0 outside the filter)
    idx = (s * torch.arange(a, device=h.device)[None, None, :] + torch.arange(s, device=h.device)[None, :, None]
           - factor * torch.arange(block, device=h.device)[:, None, None])
    w = torch.where((idx >= 0) & (idx < k), h[idx.clamp(0, k - 1)], h.new_zeros(()))
    y = F.conv1d(phases, w.to(x.dtype))  # (B, block, n_blocks)
    return y.transpose(1, 2).reshape(b, 1, -1)[..., :n_out]


def _conv_complex(x: Tensor, kernels: Tensor, hop: int) -> tuple[Tensor, Tensor]:
    """x (B, 1, T'), kernels (2n, 1, W) = [real; imag] -> real, imag (B, n, L).

    One conv for both parts (same per-channel sums as nnAudio's two convs); the imaginary part is
    negated so that X_k = sum_n x[n] * conj(kernel_k[n]).
    """
    out = F.conv1d(x, kernels.to(x.dtype), stride=hop)
    n = kernels.shape[0] // 2
    return out[:, :n], -out[:, n:]


# ----------------------------------------------------------------------------------------------
# CQT1992v2
# ----------------------------------------------------------------------------------------------


class CQT1992(nn.Module):
    """nnAudio ``CQT1992v2`` (``nnAudio.features.cqt.CQT``): time-domain CQT kernels, one conv.

    Input ``(T,)``, ``(B, T)`` or ``(B, 1, T)``; output ``(B, n_bins, L)`` for "Magnitude",
    ``(B, n_bins, L, 2)`` (real, imag) for "Complex" and (cos, sin) of the phase for "Phase".
    With ``center=True`` the signal is padded by ``kernel_width // 2`` on both sides, giving
    ``L = T // hop_length + 1``; otherwise ``L = (T - kernel_width) // hop_length + 1``.

    MERT's teacher uses ``CQT1992(sr=24000, hop_length=320, fmin=32.7, n_bins=336,
    bins_per_octave=48, norm=1, window="hann", center=True, pad_mode="constant")``.
    """

    @build_on_cpu
    def __init__(
        self,
        sr: float = 22050,
        hop_length: int = 512,
        fmin: float = 32.70,
        fmax: float | None = None,
        n_bins: int = 84,
        bins_per_octave: int = 12,
        filter_scale: float = 1,
        norm: float | bool | None = 1,
        window: WindowSpec = "hann",
        center: bool = True,
        pad_mode: str = "reflect",
        trainable: bool = False,
        output_format: str = "Magnitude",
    ) -> None:
        super().__init__()
        _check_common(output_format, pad_mode, trainable, hop_length)
        n_bins = _n_bins_from_fmax(fmin, fmax, n_bins, bins_per_octave)
        self.sr, self.hop_length, self.fmin, self.n_bins = sr, int(hop_length), fmin, n_bins
        self.bins_per_octave = bins_per_octave
        self.center, self.pad_mode, self.output_format = center, pad_mode, output_format
        q = float(filter_scale) / (2 ** (1 / bins_per_octave) - 1)
        kernels, lengths, self.kernel_width = cqt_kernels(q, sr, fmin, n_bins, bins_per_octave, norm, window)
        self.frequencies = cqt_frequencies(fmin, n_bins, bins_per_octave)
        stacked = torch.cat((kernels.real, kernels.imag), 0)[:, None, :].contiguous()
        self.register_buffer("kernels", stacked, persistent=False)
        self.register_buffer("lengths", lengths, persistent=False)

    def forward(self, x: Tensor, output_format: str | None = None, normalization_type: str = "librosa") -> Tensor:
        """x (T,) | (B, T) | (B, 1, T) -> (B, n_bins, L) or (B, n_bins, L, 2)."""
        x = _as_batch(x)
        if self.center:
            pad = self.kernel_width // 2
            if self.pad_mode == "reflect" and x.shape[-1] <= pad:
                raise AudioError(
                    f"input of {x.shape[-1]} samples is too short for reflect padding of {pad} samples "
                    "(the longest CQT kernel); use pad_mode='constant'"
                )
            x = F.pad(x, (pad, pad), mode=self.pad_mode)
        elif x.shape[-1] < self.kernel_width:
            raise AudioError(
                f"input of {x.shape[-1]} samples is shorter than the CQT kernel ({self.kernel_width}) with center=False"
            )
        real, imag = _conv_complex(x, self.kernels, self.hop_length)
        return _finish(real, imag, self.lengths, normalization_type, output_format or self.output_format)

    def extra_repr(self) -> str:
        return (
            f"sr={self.sr}, hop_length={self.hop_length}, fmin={self.fmin}, n_bins={self.n_bins}, "
            f"bins_per_octave={self.bins_per_octave}, kernel_width={self.kernel_width}, "
            f"center={self.center}, pad_mode={self.pad_mode!r}, output_format={self.output_format!r}"
        )


# ----------------------------------------------------------------------------------------------
# CQT2010v2
# ----------------------------------------------------------------------------------------------


def _early_downsample_count(nyquist: float, filter_cutoff: float, hop_length: int, n_octaves: int) -> int:
    # librosa's __early_downsample_count, as used by nnAudio: as many /2 stages as the top bin's
    # passband (with 15 % margin) and the hop length allow.
    count1 = max(0, int(math.ceil(math.log2(0.85 * nyquist / filter_cutoff)) - 1) - 1)
    count2 = max(0, int(math.ceil(math.log2(hop_length))) - n_octaves + 1)
    return min(count1, count2)


class CQT2010(nn.Module):
    """nnAudio ``CQT2010v2``: top-octave kernels on an octave-by-octave decimated signal.

    Algorithm (Schörkhuber & Klapuri 2010, as nnAudio does it):

    1. optional early downsampling by ``2**c`` (256-tap ``firwin2`` low-pass at ``1/2**c`` of
       Nyquist, stride ``2**c``) when both the top bin and ``hop_length`` allow it;
    2. the top octave (``bins_per_octave`` kernels ending at the top bin) is computed with stride
       ``hop``; then, ``n_octaves - 1`` times, the signal is low-passed at half band (256 taps,
       transition 0.1 %) and decimated by 2, and the same kernels give the next octave down at
       stride ``hop / 2``;
    3. the octaves are stacked, the lowest ``n_octaves * bpo - n_bins`` bins dropped, the result
       multiplied by the early downsampling factor ``r`` and (librosa scaling) by ``sqrt(l_k)``.

    nnAudio's scale is kept for parity: ``l_k`` is computed at ``sr / r``, so with early
    downsampling (``r > 1``) the magnitudes are ``sqrt(r)`` times those of :class:`CQT1992` and
    librosa. Basic Pitch's settings have ``r = 1`` (its per-example log/min-max normalisation would
    hide a constant anyway).

    There is no ``center`` argument: every octave is padded by ``kernel_width // 2`` (nnAudio falls
    back to zero padding on an octave too short to reflect; so does this class). ``norm`` is accepted
    for nnAudio signature compatibility and, as in nnAudio 0.3.x, has no effect; ``basis_norm`` is
    the kernel normalisation. Output ``(B, n_bins, L)`` with ``L = T // hop_length + 1`` (or
    ``(B, n_bins, L, 2)`` for "Complex"/"Phase").

    Basic Pitch uses ``CQT2010(sr=22050, hop_length=256, fmin=27.5, n_bins=309,
    bins_per_octave=36)`` (``basic_pitch/models.py::get_cqt``, defaults otherwise).
    """

    @build_on_cpu
    def __init__(
        self,
        sr: float = 22050,
        hop_length: int = 512,
        fmin: float = 32.70,
        fmax: float | None = None,
        n_bins: int = 84,
        filter_scale: float = 1,
        bins_per_octave: int = 12,
        norm: bool = True,
        basis_norm: float | bool | None = 1,
        window: WindowSpec = "hann",
        pad_mode: str = "reflect",
        earlydownsample: bool = True,
        trainable: bool = False,
        output_format: str = "Magnitude",
    ) -> None:
        super().__init__()
        _check_common(output_format, pad_mode, trainable, hop_length)
        n_bins = _n_bins_from_fmax(fmin, fmax, n_bins, bins_per_octave)
        self.sr, self.fmin, self.n_bins, self.bins_per_octave = sr, fmin, n_bins, bins_per_octave
        self.pad_mode, self.output_format = pad_mode, output_format
        q = float(filter_scale) / (2 ** (1 / bins_per_octave) - 1)
        self.n_octaves = int(math.ceil(n_bins / bins_per_octave))

        # top bin of the output and the lowest bin of the top-octave kernel set, computed in
        # nnAudio's order of operations so that the kernel lengths (ceil) agree to the last bit
        fmin_t = fmin * 2 ** (self.n_octaves - 1)
        remainder = n_bins % bins_per_octave
        top = bins_per_octave - 1 if remainder == 0 else remainder - 1
        fmax_t = fmin_t * 2 ** (top / bins_per_octave)
        fmin_t = fmax_t / 2 ** (1 - 1 / bins_per_octave)
        if fmax_t > sr / 2:
            raise ConfigError(
                f"the top CQT bin {fmax_t:.1f} Hz exceeds the Nyquist frequency {sr / 2} Hz: reduce n_bins"
            )

        self.register_buffer("lowpass_filter", firwin2_lowpass(256, 0.5, 0.001)[None, None], persistent=False)
        hop = int(hop_length)
        self.downsample_factor: float = 1.0
        early = None
        if earlydownsample:
            # 1.5 = Hann main-lobe bandwidth in bins (librosa's window_bandwidth('hann'))
            filter_cutoff = fmax_t * (1 + 0.5 * 1.5 / q)
            count = _early_downsample_count(sr // 2, filter_cutoff, hop, self.n_octaves)
            if count > 0:
                factor = 2**count
                hop //= factor
                sr = sr / float(factor)
                self.downsample_factor = factor
                early = firwin2_lowpass(256, 1 / factor, 0.03)[None, None]
        self.earlydownsample = early is not None
        self.register_buffer("early_downsample_filter", early, persistent=False)
        self.hop_length = hop
        if hop % 2 ** (self.n_octaves - 1) != 0:
            raise ConfigError(
                f"hop_length {hop_length} (after early downsampling: {hop}) must be divisible by "
                f"2**(n_octaves-1) = {2 ** (self.n_octaves - 1)} for the octave-by-octave CQT "
                f"({self.n_octaves} octaves); use a multiple of {2 ** (self.n_octaves - 1)} or CQT1992"
            )

        # A full octave of kernels ending at the top bin. (nnAudio builds only n_bins kernels when
        # n_bins < bins_per_octave, which shifts them below fmin; identical otherwise.)
        kernels, _, self.kernel_width = cqt_kernels(
            q, sr, fmin_t, bins_per_octave, bins_per_octave, basis_norm, window, topbin_check=False
        )
        self.frequencies = cqt_frequencies(fmin, n_bins, bins_per_octave)
        # librosa scaling uses the 1992 lengths at the (early-downsampled) rate for every bin
        lengths = torch.ceil(q * sr / self.frequencies).float()
        stacked = torch.cat((kernels.real, kernels.imag), 0)[:, None, :].contiguous()
        self.register_buffer("kernels", stacked, persistent=False)
        self.register_buffer("lengths", lengths, persistent=False)

    def _octave(self, x: Tensor, hop: int) -> tuple[Tensor, Tensor]:
        pad = self.kernel_width // 2
        mode = self.pad_mode if (self.pad_mode == "constant" or x.shape[-1] > pad) else "constant"
        return _conv_complex(F.pad(x, (pad, pad), mode=mode), self.kernels, hop)

    def forward(self, x: Tensor, output_format: str | None = None, normalization_type: str = "librosa") -> Tensor:
        """x (T,) | (B, T) | (B, 1, T) -> (B, n_bins, L) or (B, n_bins, L, 2)."""
        x = _as_batch(x)
        # 127 = (256 - 1) // 2: nnAudio's padding of the 256-tap anti-aliasing filters
        if self.early_downsample_filter is not None:
            f = self.early_downsample_filter.to(x.dtype)
            x = decimate(x, f, int(self.downsample_factor), padding=127)
        hop = self.hop_length
        reals, imags = [], []
        r, i = self._octave(x, hop)
        reals.append(r)
        imags.append(i)
        lowpass = self.lowpass_filter.to(x.dtype)
        for _ in range(self.n_octaves - 1):
            hop //= 2
            x = decimate(x, lowpass, 2, padding=127)
            r, i = self._octave(x, hop)
            reals.insert(0, r)
            imags.insert(0, i)
        real = torch.cat(reals, 1)[:, -self.n_bins :]
        imag = torch.cat(imags, 1)[:, -self.n_bins :]
        # undo the early decimation's gain loss (nnAudio), before the librosa sqrt(length) scaling
        real, imag = real * self.downsample_factor, imag * self.downsample_factor
        return _finish(real, imag, self.lengths, normalization_type, output_format or self.output_format)

    def extra_repr(self) -> str:
        return (
            f"sr={self.sr}, hop_length={self.hop_length}, fmin={self.fmin}, n_bins={self.n_bins}, "
            f"bins_per_octave={self.bins_per_octave}, n_octaves={self.n_octaves}, "
            f"downsample_factor={self.downsample_factor}, output_format={self.output_format!r}"
        )


# ----------------------------------------------------------------------------------------------
# functional
# ----------------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _cached(method: str, device: str, kwargs: tuple) -> nn.Module:
    cls = CQT1992 if method == "1992" else CQT2010
    return cls(**dict(kwargs)).to(device)


def cqt(
    x: Tensor,
    sr: float = 22050,
    hop_length: int = 512,
    fmin: float = 32.70,
    n_bins: int = 84,
    bins_per_octave: int = 12,
    method: str = "1992",
    output_format: str = "Magnitude",
    **kwargs,
) -> Tensor:
    """Functional CQT: ``method="1992"`` (:class:`CQT1992`) or ``"2010"`` (:class:`CQT2010`).

    ``x`` (T,), (B, T) or (B, 1, T) -> (B, n_bins, L) (``(..., 2)`` for "Complex"/"Phase"). Other
    keyword arguments go to the class. The module (its kernels) is cached per settings and device.
    """
    if not isinstance(x, Tensor):
        raise AudioError(f"CQT input must be a torch.Tensor, got {type(x).__name__}")
    if method not in ("1992", "2010"):
        raise ConfigError(f"CQT method must be '1992' or '2010', got {method!r}")
    settings = dict(
        sr=sr, hop_length=hop_length, fmin=fmin, n_bins=n_bins, bins_per_octave=bins_per_octave,
        output_format=output_format, **kwargs,
    )  # fmt: skip
    try:
        module = _cached(method, str(x.device), tuple(sorted(settings.items())))
    except TypeError as e:  # unknown keyword argument or unhashable value
        raise ConfigError(f"invalid CQT argument for method {method!r}: {e}") from e
    return module(x)
