"""Phase recovery from a magnitude spectrogram: Griffin-Lim, and the inverse of a mel filterbank.

Griffin & Lim (1984), "Signal estimation from modified short-time Fourier transform", with the momentum
("fast Griffin-Lim") of Perraudin, Balazs & Søndergaard (2013). The iteration follows the convention of
``librosa.griffinlim`` (tested equal to it): with ``S`` the target magnitude and ``c_0 = S`` (zero phase) or
``S e^{i phi_rand}``,

    t_n   = STFT(iSTFT(c_{n-1}))
    a_n   = t_n - momentum / (1 + momentum) * t_{n-1}       (no momentum term at n = 1)
    c_n   = S * a_n / (|a_n| + tiny)

and the output is ``iSTFT(c_N)``. :func:`mel_to_linear` undoes a mel filterbank by its Moore-Penrose
pseudo-inverse, clipped at zero (librosa's ``mel_to_stft`` solves a non-negative least squares problem
instead; the pseudo-inverse is the classic cheap choice, and is what "Griffin-Lim from a mel" means here).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import AudioError, ConfigError
from .stft import get_window, istft, stft

__all__ = ["griffin_lim", "mel_to_linear"]


def griffin_lim(magnitude: Tensor, n_iter: int = 32, n_fft: int | None = None, hop_length: int | None = None,
                win_length: int | None = None, window: str | Tensor = "hann", center: bool = True,
                length: int | None = None, pad_mode: str = "constant", momentum: float = 0.99,
                init: str | Tensor | None = "random", generator: torch.Generator | None = None) -> Tensor:
    """Waveform whose STFT magnitude approximates ``magnitude``.

    Args:
        magnitude: non-negative linear magnitude ``(..., n_fft // 2 + 1, L)`` (not power, not log).
        n_iter: iterations (librosa's default 32).
        n_fft, hop_length, win_length, window, center, pad_mode: the STFT's (``n_fft`` defaults to
            ``2 (F - 1)``, ``hop`` to ``win // 4``); ``pad_mode`` "constant" as ``librosa.griffinlim``.
        length: output length in samples (default: what the frame count gives).
        momentum: fast Griffin-Lim momentum (0: the original algorithm; librosa's default 0.99).
        init: ``"random"`` (uniform random phase, drawn with ``generator``), ``None`` (zero phase), or a phase
            tensor in radians of the magnitude's shape (e.g. a neural vocoder's predicted phase, so that the
            iterations refine it instead of starting from noise).

    Returns:
        Waveform ``(..., T)`` in the dtype of ``magnitude``.
    """
    if not isinstance(magnitude, Tensor) or magnitude.is_complex() or magnitude.ndim < 2:
        raise AudioError("griffin_lim expects a real magnitude spectrogram (..., n_fft // 2 + 1, L)")
    if not magnitude.is_floating_point():
        magnitude = magnitude.float()
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 0:
        raise ConfigError(f"griffin_lim n_iter must be an integer >= 0, got {n_iter!r}")
    if not 0 <= momentum:
        raise ConfigError(f"griffin_lim momentum must be >= 0, got {momentum}")
    if isinstance(init, Tensor):
        if init.shape != magnitude.shape or init.is_complex():
            raise AudioError(f"griffin_lim: an initial phase must be real and shaped like the magnitude "
                             f"{tuple(magnitude.shape)}, got {tuple(init.shape)}")
    elif init not in ("random", None):
        raise ConfigError(f"griffin_lim init must be 'random', None or a phase tensor, got {init!r}")
    if bool((magnitude < 0).any()):
        raise AudioError("griffin_lim: the magnitude has negative values (pass |X|, not a log or a dB scale)")
    n_fft = 2 * (magnitude.shape[-2] - 1) if n_fft is None else n_fft
    if n_fft // 2 + 1 != magnitude.shape[-2]:
        raise AudioError(f"griffin_lim: {magnitude.shape[-2]} bins do not match n_fft={n_fft} "
                         f"({n_fft // 2 + 1} bins)")
    win_length = n_fft if win_length is None else win_length
    hop_length = win_length // 4 if hop_length is None else hop_length
    if isinstance(window, str):  # build the window once, not at every iteration
        window = get_window(window, win_length, device=magnitude.device, dtype=magnitude.dtype)
    if isinstance(init, Tensor):
        angles = torch.polar(torch.ones_like(magnitude), init.to(magnitude.device, magnitude.dtype))
    elif init == "random":
        phase = torch.rand(magnitude.shape, generator=generator, dtype=magnitude.dtype,
                           device=generator.device if generator is not None else magnitude.device)
        angles = torch.polar(torch.ones_like(magnitude), 2 * math.pi * phase.to(magnitude.device))
    else:
        angles = torch.ones_like(magnitude, dtype=torch.promote_types(magnitude.dtype, torch.complex64))
    eps = torch.finfo(magnitude.dtype).tiny
    coef = momentum / (1 + momentum)
    spec = magnitude * angles
    kw = dict(n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window, center=center)
    prev = None
    for _ in range(n_iter):
        wav = istft(spec, length=length, **kw)
        rebuilt = stft(wav, pad_mode=pad_mode, **kw)
        if rebuilt.shape[-1] != magnitude.shape[-1]:
            raise AudioError(f"griffin_lim: the STFT of the iSTFT has {rebuilt.shape[-1]} frames, not "
                             f"{magnitude.shape[-1]}; check length/center")
        a = rebuilt if prev is None else rebuilt - coef * prev
        spec = magnitude * (a / (a.abs() + eps))
        prev = rebuilt
    return istft(spec, length=length, **kw)


def mel_to_linear(mel: Tensor, filterbank: Tensor) -> Tensor:
    """Linear-frequency magnitude ``(..., F, L)`` from a mel magnitude ``(..., n_mels, L)``.

    ``filterbank`` is the ``(n_mels, F)`` matrix that made the mel (``mel = fb @ spec``); the estimate is
    ``max(pinv(fb) @ mel, 0)`` (least-squares, then clipped: magnitudes are non-negative).
    """
    if filterbank.ndim != 2 or mel.ndim < 2 or mel.shape[-2] != filterbank.shape[0]:
        raise AudioError(f"mel_to_linear: mel {tuple(mel.shape)} does not match a filterbank "
                         f"{tuple(filterbank.shape)} (n_mels on axis -2)")
    pinv = torch.linalg.pinv(filterbank.to(torch.float64)).to(mel.dtype)
    return torch.clamp(torch.matmul(pinv.to(mel.device), mel), min=0.0)
