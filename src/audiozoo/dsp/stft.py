"""Short-time Fourier transform, its inverse, and analysis windows, in pure torch.

Conventions follow librosa (>= 0.10), the reference the tests check against:

* ``center=True`` pads ``n_fft // 2`` samples on both sides (``pad_mode="constant"``, i.e. zeros, is
  librosa's default since 0.10; ``"reflect"`` was the default before and is torch's);
* windows are "periodic" (scipy ``fftbins=True``) and, when ``win_length < n_fft``, zero-padded on both
  sides to ``n_fft`` (librosa ``util.pad_center``);
* the output is one-sided, ``(..., n_fft // 2 + 1, n_frames)`` with
  ``n_frames = 1 + (T + 2 * (n_fft // 2) - n_fft) // hop_length`` (centered) or
  ``1 + (T - n_fft) // hop_length``;
* ``istft`` is weighted overlap-add divided by the window's sum-square envelope (Griffin & Lim 1984),
  exactly as ``librosa.istft``.

``normalized=True`` scales the transform by ``n_fft ** -0.5`` (torch.stft's convention; librosa has no
such option), and ``istft(normalized=True)`` undoes it.

Everything is batched over leading dims, works on any device and float32/float64, and is differentiable
(framing is ``Tensor.unfold``, overlap-add is ``F.fold``), so it traces with ``torch.export``.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audiozoo.errors import AudioError, ConfigError

__all__ = [
    "ConstantBuffers",
    "InverseSpectrogram",
    "OverlapAddISTFT",
    "Spectrogram",
    "get_window",
    "istft",
    "pad_window",
    "stft",
    "stft_lengths",
]

WINDOWS = ("hann", "hamming", "blackman", "povey", "sine", "rectangular")
_ALIASES = {"hanning": "hann", "boxcar": "rectangular", "rect": "rectangular", "ones": "rectangular"}
_PAD_MODES = ("constant", "reflect", "replicate")
_WINDOW_CACHE: dict[tuple, torch.Tensor] = {}


def get_window(
    kind: str,
    length: int,
    periodic: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """An analysis window of shape ``(length,)``, cached per (kind, length, periodic, device, dtype).

    Args:
        kind: ``"hann"`` (alias ``"hanning"``), ``"hamming"``, ``"blackman"``, ``"sine"``,
            ``"rectangular"`` (aliases ``"boxcar"``, ``"ones"``) or ``"povey"``.
        length: number of samples.
        periodic: ``True`` gives the DFT-even window used for spectral analysis (scipy ``sym=False``,
            librosa ``fftbins=True``: denominator ``length``); ``False`` the symmetric one (denominator
            ``length - 1``), which is what Kaldi uses for its hamming/hanning/blackman/sine windows.
        device, dtype: of the returned tensor.

    ``"povey"`` is Kaldi's window, ``(0.5 - 0.5 cos(2 pi n / (N - 1))) ** 0.85``; it is defined only in
    symmetric form, so ``periodic`` is ignored for it. The returned tensor is shared through the cache:
    do not modify it in place.
    """
    kind = _ALIASES.get(kind.lower(), kind.lower()) if isinstance(kind, str) else kind
    if kind not in WINDOWS:
        raise ConfigError(f"unknown window {kind!r}; choose one of {', '.join(WINDOWS)}")
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ConfigError(f"window length must be a positive integer, got {length!r}")
    device = torch.device(device) if device is not None else torch.device("cpu")
    periodic = periodic and kind != "povey"
    key = (kind, length, periodic, device, dtype)
    win = _WINDOW_CACHE.get(key)
    if win is None:
        win = _make_window(kind, length, periodic).to(device=device, dtype=dtype)
        _WINDOW_CACHE[key] = win
    return win


def _make_window(kind: str, length: int, periodic: bool) -> torch.Tensor:
    # Computed in float64 (as scipy does) and cast once, so float32 windows round identically.
    if length == 1 or kind == "rectangular":
        return torch.ones(length, dtype=torch.float64)
    denom = length if periodic else length - 1
    a = 2 * math.pi * torch.arange(length, dtype=torch.float64) / denom
    if kind == "hann":
        return 0.5 - 0.5 * torch.cos(a)
    if kind == "hamming":
        return 0.54 - 0.46 * torch.cos(a)
    if kind == "blackman":  # the "exact" 0.42/0.5/0.08 coefficients of scipy and Kaldi
        return 0.42 - 0.5 * torch.cos(a) + 0.08 * torch.cos(2 * a)
    if kind == "sine":
        return torch.sin(0.5 * a)
    # povey (Kaldi feature-window.cc): a Hann raised to 0.85, which decays to exactly 0 at both ends
    return (0.5 - 0.5 * torch.cos(a)).pow(0.85)


def _window_f64(window: str | torch.Tensor, win_length: int) -> torch.Tensor:
    """A module's window as float64 on the CPU: by name, or a copy of a given (win_length,) tensor."""
    if isinstance(window, torch.Tensor):
        return window.detach().to("cpu", torch.float64)
    return get_window(window, win_length, dtype=torch.float64)


def pad_window(window: torch.Tensor, n_fft: int) -> torch.Tensor:
    """Zero-pad a ``(win_length,)`` window on both sides to ``(n_fft,)``, centred (librosa pad_center)."""
    win_length = window.shape[-1]
    if win_length > n_fft:
        raise ConfigError(f"win_length={win_length} must be <= n_fft={n_fft}")
    left = (n_fft - win_length) // 2
    return F.pad(window, (left, n_fft - win_length - left)) if win_length < n_fft else window


def _resolve(
    n_fft: int, hop_length: int | None, win_length: int | None, window: str | torch.Tensor
) -> tuple[int, int, int]:
    if isinstance(n_fft, bool) or not isinstance(n_fft, int) or n_fft < 1:
        raise ConfigError(f"n_fft must be a positive integer, got {n_fft!r}")
    if isinstance(window, torch.Tensor):
        if window.ndim != 1:
            raise ConfigError(f"window tensor must be 1-D (win_length,), got shape {tuple(window.shape)}")
        if win_length is not None and win_length != window.shape[0]:
            raise ConfigError(f"window has {window.shape[0]} samples but win_length={win_length}")
        win_length = int(window.shape[0])  # a traced shape is a tensor; the window length is static
    win_length = n_fft if win_length is None else win_length
    if isinstance(win_length, bool) or not isinstance(win_length, int) or not 1 <= win_length <= n_fft:
        raise ConfigError(f"win_length must be an integer in [1, n_fft={n_fft}], got {win_length!r}")
    hop_length = win_length // 4 if hop_length is None else hop_length  # librosa's default
    if isinstance(hop_length, bool) or not isinstance(hop_length, int) or hop_length < 1:
        raise ConfigError(f"hop_length must be a positive integer, got {hop_length!r}")
    return n_fft, hop_length, win_length


def _fft_window(window: str | torch.Tensor, win_length: int, n_fft: int, like: torch.Tensor) -> torch.Tensor:
    """The window padded to n_fft, on ``like``'s device, in ``like``'s real dtype."""
    real = like.real.dtype if like.is_complex() else like.dtype
    if isinstance(window, torch.Tensor):
        win = window.to(device=like.device, dtype=real)
    else:
        win = get_window(window, win_length, periodic=True, device=like.device, dtype=real)
    return pad_window(win, n_fft)


def stft_lengths(lengths: torch.Tensor | int, n_fft: int, hop_length: int, center: bool = True) -> torch.Tensor | int:
    """Number of STFT frames for signals of ``lengths`` samples (int or integer tensor of shape (B,)).

    Use it to carry explicit ``lengths`` from waveforms (B, T) to features (B, F, L).
    """
    padded = lengths + 2 * (n_fft // 2) if center else lengths
    frames = (padded - n_fft) // hop_length + 1
    return frames.clamp(min=0) if isinstance(frames, torch.Tensor) else max(frames, 0)


def stft(
    x: torch.Tensor,
    n_fft: int,
    hop_length: int | None = None,
    win_length: int | None = None,
    window: str | torch.Tensor = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    power: float | None = None,
    normalized: bool = False,
) -> torch.Tensor:
    """Short-time Fourier transform of real signals, like ``librosa.stft``.

    Args:
        x: real waveform ``(..., T)`` (any leading dims), float32 or float64.
        n_fft: FFT size; the output has ``n_fft // 2 + 1`` frequency bins.
        hop_length: frame step in samples (default ``win_length // 4``).
        win_length: window length <= n_fft (default n_fft); shorter windows are centre-padded.
        window: a window name for :func:`get_window` (periodic) or a ``(win_length,)`` tensor.
        center: pad ``n_fft // 2`` on both sides so frame ``l`` is centred at sample ``l * hop_length``.
        pad_mode: ``"constant"`` (zeros; librosa >= 0.10 default), ``"reflect"`` or ``"replicate"``.
        power: ``None`` returns the complex STFT; a positive number returns ``|X| ** power``
            (1: magnitude, 2: power).
        normalized: multiply by ``n_fft ** -0.5`` (torch.stft convention).

    Returns:
        ``(..., n_fft // 2 + 1, n_frames)``: complex (complex64 for float32 input) when ``power`` is
        None, else real.
    """
    n_fft, hop_length, win_length = _resolve(n_fft, hop_length, win_length, window)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        what = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise AudioError(f"stft expects a real floating-point tensor (..., T), got {what}")
    if x.ndim == 0 or x.shape[-1] == 0:
        raise AudioError(f"stft: zero-length signal of shape {tuple(x.shape)}")
    if pad_mode not in _PAD_MODES:
        raise ConfigError(f"pad_mode must be one of {_PAD_MODES}, got {pad_mode!r}")
    if power is not None and not power > 0:
        raise ConfigError(f"power must be None (complex output) or > 0, got {power!r}")

    lead, length = x.shape[:-1], x.shape[-1]
    flat = x.reshape(-1, length)
    if center:
        pad = n_fft // 2
        if pad_mode == "constant":
            flat = F.pad(flat, (pad, pad))
        else:
            if pad_mode == "reflect" and length <= pad:
                raise AudioError(
                    f"stft: a signal of {length} samples is too short to reflect-pad by n_fft//2={pad}; "
                    "use pad_mode='constant' or a smaller n_fft"
                )
            # F.pad's reflect/replicate need a (N, C, T) input
            flat = F.pad(flat.unsqueeze(1), (pad, pad), mode=pad_mode).squeeze(1)
    elif length < n_fft:
        raise AudioError(f"stft(center=False): signal of {length} samples is shorter than n_fft={n_fft}")

    frames = flat.unfold(-1, n_fft, hop_length)  # (N, L, n_fft), a view
    spec = torch.fft.rfft(frames * _fft_window(window, win_length, n_fft, x), dim=-1)
    if normalized:
        spec = spec * (n_fft**-0.5)
    spec = spec.transpose(-1, -2).reshape(*lead, n_fft // 2 + 1, -1)
    if power is None:
        return spec
    if power == 2:
        return spec.real.square() + spec.imag.square()  # no sqrt: finite gradient at 0
    mag = spec.abs()
    return mag if power == 1 else mag.pow(power)


def istft(
    spec: torch.Tensor,
    n_fft: int | None = None,
    hop_length: int | None = None,
    win_length: int | None = None,
    window: str | torch.Tensor = "hann",
    center: bool = True,
    normalized: bool = False,
    length: int | None = None,
) -> torch.Tensor:
    """Inverse STFT by windowed overlap-add, like ``librosa.istft``.

    Args:
        spec: complex STFT ``(..., n_fft // 2 + 1, n_frames)``.
        n_fft: FFT size (default ``2 * (F - 1)``); the other STFT arguments must match the analysis.
        length: trim or zero-pad the output to exactly this many samples (recommended: the original
            signal length, since the frame count does not determine it).

    Returns:
        Real waveform ``(..., T)`` with ``T = length`` or ``hop_length * (n_frames - 1)`` (centered) /
        ``n_fft + hop_length * (n_frames - 1)`` (not centered).
    """
    if not isinstance(spec, torch.Tensor) or not spec.is_complex():
        raise AudioError("istft expects a complex tensor (..., n_fft // 2 + 1, n_frames)")
    if spec.ndim < 2:
        raise AudioError(f"istft expects (..., F, L), got shape {tuple(spec.shape)}")
    n_bins = spec.shape[-2]
    n_fft = 2 * (n_bins - 1) if n_fft is None else n_fft
    n_fft, hop_length, win_length = _resolve(n_fft, hop_length, win_length, window)
    if n_fft // 2 + 1 != n_bins:
        raise AudioError(f"istft: spec has {n_bins} frequency bins but n_fft={n_fft} needs {n_fft // 2 + 1}")
    if length is not None and (isinstance(length, bool) or not isinstance(length, int) or length < 1):
        raise ConfigError(f"length must be a positive integer or None, got {length!r}")

    n_frames = spec.shape[-1]
    if length is not None:  # only the frames that reach into the requested output (librosa does this)
        padded = length + 2 * (n_fft // 2) if center else length
        n_frames = min(n_frames, math.ceil(padded / hop_length))
    if n_frames == 0:
        raise AudioError("istft: spec has no frames")
    lead = spec.shape[:-2]
    spec = spec[..., :n_frames].reshape(-1, n_bins, n_frames)
    if normalized:
        spec = spec * (n_fft**0.5)

    win = _fft_window(window, win_length, n_fft, spec)
    frames = torch.fft.irfft(spec, n=n_fft, dim=-2) * win[:, None]  # (N, n_fft, L)
    total = n_fft + hop_length * (n_frames - 1)
    fold = dict(output_size=(1, total), kernel_size=(1, n_fft), stride=(1, hop_length))
    y = F.fold(frames, **fold).reshape(frames.shape[0], total)
    # Sum-square envelope of the synthesis*analysis windows; divide only where it is not ~0
    # (librosa: > tiny(float)), leaving e.g. the zero-window edges of non-centered frames as they are.
    env = F.fold(win.square()[None, :, None].expand(1, n_fft, n_frames), **fold).reshape(total)
    nonzero = env > torch.finfo(env.dtype).tiny
    y = y / torch.where(nonzero, env, torch.ones_like(env))

    start = n_fft // 2 if center else 0
    if length is None:
        y = y[:, start : total - start]
    else:
        y = y[:, start : start + length]
        if y.shape[-1] < length:
            y = F.pad(y, (0, length - y.shape[-1]))
    return y.reshape(*lead, y.shape[-1])


def build_on_cpu(init):
    """Decorator for DSP module constructors: derived constants (windows, filterbanks, CQT kernels) are
    computed on the CPU even inside a ``torch.device("meta")`` context (used to count a model's parameters
    without allocating them). They are data computed from settings, not weights, and need real values."""

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        with torch.device("cpu"):
            init(self, *args, **kwargs)

    wrapper._builds_on_cpu = True
    return wrapper


class ConstantBuffers(nn.Module):
    """Base for DSP modules whose buffers are derived constants (windows, filterbanks, DCT matrices).

    Constants are registered as non-persistent float32 buffers (not in ``state_dict``: they are not
    weights; float32 so modules move to devices without float64, e.g. MPS), and a float64 master copy
    is kept. When the module is converted to float64 (``.double()``, ``.to(torch.float64)``) the
    buffers are refilled from the master, so float64 modules use exact constants: rounding a window to
    float32 adds leakage ~6e-8 of the peak, i.e. ~1e-3 dB errors in bins 80 dB down.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not getattr(init, "_builds_on_cpu", False):
            cls.__init__ = build_on_cpu(init)

    def register_constant(self, name: str, value: torch.Tensor) -> None:
        if not hasattr(self, "_float64_masters"):
            self._float64_masters: dict[str, torch.Tensor] = {}
        self._float64_masters[name] = value.detach().to("cpu", torch.float64)
        self.register_buffer(name, value.detach().to(torch.float32).clone(), persistent=False)

    def _apply(self, fn, recurse: bool = True):
        module = super()._apply(fn, recurse)
        for name, master in getattr(self, "_float64_masters", {}).items():
            buf = self._buffers.get(name)
            if buf is not None and buf.dtype == torch.float64:
                self._buffers[name] = master.to(buf.device)
        return module


class Spectrogram(ConstantBuffers):
    """:func:`stft` as a module; the window is a (non-persistent) buffer so ``.to()`` / export carry it.

    Input ``(..., T)``; output ``(..., n_fft // 2 + 1, n_frames)`` (complex when ``power=None``).
    Float64 input works with any module dtype; ``.double()`` also makes the window exact float64.
    """

    def __init__(
        self,
        n_fft: int = 2048,
        hop_length: int | None = None,
        win_length: int | None = None,
        window: str | torch.Tensor = "hann",
        center: bool = True,
        pad_mode: str = "constant",
        power: float | None = 2.0,
        normalized: bool = False,
    ) -> None:
        super().__init__()
        self.n_fft, self.hop_length, self.win_length = _resolve(n_fft, hop_length, win_length, window)
        if pad_mode not in _PAD_MODES:
            raise ConfigError(f"pad_mode must be one of {_PAD_MODES}, got {pad_mode!r}")
        if power is not None and not power > 0:
            raise ConfigError(f"power must be None (complex output) or > 0, got {power!r}")
        self.center, self.pad_mode, self.power, self.normalized = center, pad_mode, power, normalized
        self.register_constant("window", _window_f64(window, self.win_length))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return stft(
            x,
            self.n_fft,
            self.hop_length,
            self.win_length,
            self.window,
            self.center,
            self.pad_mode,
            self.power,
            self.normalized,
        )

    def extra_repr(self) -> str:
        return (
            f"n_fft={self.n_fft}, hop_length={self.hop_length}, win_length={self.win_length}, "
            f"center={self.center}, pad_mode={self.pad_mode!r}, power={self.power}"
        )


class InverseSpectrogram(ConstantBuffers):
    """:func:`istft` as a module: complex ``(..., n_fft // 2 + 1, L)`` -> waveform ``(..., T)``."""

    def __init__(
        self,
        n_fft: int = 2048,
        hop_length: int | None = None,
        win_length: int | None = None,
        window: str | torch.Tensor = "hann",
        center: bool = True,
        normalized: bool = False,
    ) -> None:
        super().__init__()
        self.n_fft, self.hop_length, self.win_length = _resolve(n_fft, hop_length, win_length, window)
        self.center, self.normalized = center, normalized
        self.register_constant("window", _window_f64(window, self.win_length))

    def forward(self, spec: torch.Tensor, length: int | None = None) -> torch.Tensor:
        return istft(
            spec,
            self.n_fft,
            self.hop_length,
            self.win_length,
            self.window,
            self.center,
            self.normalized,
            length,
        )


class OverlapAddISTFT(ConstantBuffers):
    """Inverse STFT (periodic Hann window, centred frames) of a one-sided spectrum ``(B, F, L)`` (real and
    imaginary parts) -> ``(B, (L - 1) * hop)``.

    Equals ``torch.istft(..., center=True)`` (no ``length``): the inverse real DFT (DC and Nyquist bins count
    once, the others twice, their imaginary parts at DC/Nyquist ignored as ``irfft`` does), the synthesis
    window, and the overlap-add are one ``conv_transpose1d`` with a constant kernel; the result is divided by
    the window's sum-square envelope and ``n_fft // 2`` samples are trimmed at both ends. With a frame mask
    ``(B, 1, L)`` the envelope counts only each item's own frames. Unlike :func:`istft` it has no FFT, so it
    exports to ONNX (APNet, iSTFTNet).
    """

    def __init__(self, n_fft: int, hop_length: int, win_length: int):
        super().__init__()
        self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length
        n_bins = n_fft // 2 + 1
        win = pad_window(get_window("hann", win_length, dtype=torch.float64), n_fft)  # (n_fft,)
        k = torch.arange(n_bins, dtype=torch.float64)[:, None]
        n = torch.arange(n_fft, dtype=torch.float64)[None, :]
        scale = torch.full((n_bins, 1), 2.0 / n_fft, dtype=torch.float64)
        scale[0] = 1.0 / n_fft
        if n_fft % 2 == 0:
            scale[-1] = 1.0 / n_fft
        angle = 2 * math.pi * k * n / n_fft
        cos_basis, sin_basis = scale * torch.cos(angle), -scale * torch.sin(angle)
        if n_fft % 2 == 0:
            sin_basis[-1] = 0.0  # irfft ignores the imaginary part of the Nyquist bin (sin(pi n) = 0 anyway)
        sin_basis[0] = 0.0
        self.register_constant("kernel", (torch.cat([cos_basis, sin_basis]) * win).unsqueeze(1))  # (2F, 1, N)
        self.register_constant("window_sq", win.square().view(1, 1, n_fft))

    def forward(self, real: Tensor, imag: Tensor, frame_mask: Tensor | None = None) -> Tensor:
        """``real``, ``imag``: ``(B, F, L)``; ``frame_mask``: ``(B, 1, L)`` of 0/1 or None. -> ``(B, (L-1) hop)``."""
        spec = torch.cat([real, imag], dim=1)
        y = F.conv_transpose1d(spec, self.kernel.to(spec.dtype), stride=self.hop_length)  # (B, 1, N + hop (L-1))
        ones = frame_mask if frame_mask is not None else torch.ones_like(real[:1, :1])
        env = F.conv_transpose1d(ones.to(spec.dtype), self.window_sq.to(spec.dtype), stride=self.hop_length)
        # divide only where the envelope is not ~0 (librosa/torch): padded items' tails stay 0
        y = y / torch.where(env > torch.finfo(env.dtype).tiny, env, torch.ones_like(env))
        half = self.n_fft // 2
        return y[:, 0, half:-half] if half > 0 else y[:, 0]

    def extra_repr(self) -> str:
        return f"n_fft={self.n_fft}, hop_length={self.hop_length}, win_length={self.win_length}"
