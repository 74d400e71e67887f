"""Audio super-resolution: any input rate -> a target rate, with a trained model or with sinc interpolation.

>>> up = audiozoo.pipeline("upsample", rate=48000)                     # sinc (soxr HQ), no model
>>> up = audiozoo.pipeline("upsample", model="hifisr_small_16k.sisec_8k")   # 6-12 kHz -> 16 kHz
>>> out = up("speech_8k.wav")        # {"audio": (T_out,) tensor, "sample_rate", "input_rate", "method", ...}

Output length is always ``round(T_in * rate / input_rate)`` samples.

With a model (HiFi-SR contract, :class:`audiozoo.models.enhance.hifisr.HiFiSR`: ``frontend``, ``sample_rate``,
``hop_length``, ``min_input_rate`` / ``max_input_rate``), as the official ``MossFormer2_SR_48K`` inference
(ClearerVoice-Studio ``utils/decode.py``): the input is peak-normalised to 0.95 (the training level; the gain is
undone at the end), sinc-resampled to the model's rate, turned into the model's mel and re-generated; long inputs
go in windows of ``chunk_seconds`` with ``context_seconds`` of context each side whose output is discarded (the
encoder's linear attention is global, so chunking is an approximation, as in the official sliding-window
decoding). Then, unless ``bandwidth_substitution=False``, the band below the input's Nyquist is taken from the
sinc-upsampled input (the official ``bandwidth_sub.py`` step, :func:`bandwidth_substitution`), and the result is
resampled to ``rate`` if that differs from the model's rate. Inputs outside the model's input-rate range are
refused.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ..dsp.io import resample
from ..dsp.stft import istft, stft
from ..errors import AudioError, ConfigError
from ..resolve import resolve_model
from .base import AudioInput, Pipeline, read_input
from .streaming import StreamingMixin

__all__ = ["UpsamplePipeline", "bandwidth_substitution", "fit_length"]


def fit_length(wav: Tensor, n: int) -> Tensor:
    """Trim or zero-pad the last axis to exactly ``n`` samples."""
    if wav.shape[-1] >= n:
        return wav[..., :n]
    return torch.nn.functional.pad(wav, (0, n - wav.shape[-1]))


def bandwidth_substitution(generated: Tensor, band_limited: Tensor, sample_rate: int, input_rate: int,
                           n_fft: int = 1024, transition: float = 0.05) -> Tensor:
    """Keep ``band_limited``'s spectrum below the input Nyquist and ``generated``'s above it: ``(T,) -> (T,)``.

    Both are at ``sample_rate``; ``band_limited`` is the sinc-upsampled input. A linear cross-fade over the
    top ``transition`` fraction of the input band (``(1 - transition) * input_rate / 2`` to ``input_rate / 2``)
    avoids a spectral edge. Hann STFT ``n_fft``, hop ``n_fft // 4``, centred; the output has length ``T``.
    """
    if generated.shape != band_limited.shape or generated.ndim != 1:
        raise AudioError(f"bandwidth_substitution needs two (T,) signals of one length, got "
                         f"{tuple(generated.shape)} and {tuple(band_limited.shape)}")
    t = generated.shape[-1]
    if t <= n_fft // 2:
        return band_limited if input_rate >= sample_rate else generated
    nyq_in = input_rate / 2
    freqs = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * sample_rate / n_fft
    lo = (1.0 - transition) * nyq_in
    w = ((nyq_in - freqs) / max(nyq_in - lo, 1e-9)).clamp(0.0, 1.0).to(torch.float32)[:, None]
    x_gen = stft(generated.float(), n_fft, n_fft // 4, n_fft, "hann", center=True, pad_mode="reflect")
    x_in = stft(band_limited.float(), n_fft, n_fft // 4, n_fft, "hann", center=True, pad_mode="reflect")
    return istft(w * x_in + (1 - w) * x_gen, n_fft, n_fft // 4, n_fft, "hann", center=True, length=t)


class UpsamplePipeline(StreamingMixin, Pipeline):
    """Super-resolve audio to ``rate`` with a HiFi-SR-style model, or sinc-interpolate it (``model=None``).

    Args:
        model: ``None`` (sinc), a registry name / weight set ``name.tag`` / checkpoint folder / module.
        rate: output rate (default: the model's rate; 48000 for sinc).
        chunk_seconds, context_seconds: window and per-side context of chunked model inference.
        bandwidth_substitution: keep the input's own band below its Nyquist (official post-processing).

    ``__call__(x)`` with ``x`` a path / bytes / ``{"array", "sampling_rate"}`` (or a list) returns
    ``{"input", "audio": (T_out,) float tensor, "sample_rate", "input_rate", "method"}``.
    """

    task = "upsample"
    family = "enhance"

    def __init__(self, model: Any = None, rate: int | None = None, device: str | torch.device = "cpu",
                 chunk_seconds: float = 10.0, context_seconds: float = 1.0, bandwidth_substitution: bool = True,
                 progress: bool = False):
        super().__init__(device=device, batch_size=1, progress=progress)
        self.model: nn.Module | None = None
        if model is not None:
            m = resolve_model(model, "enhance")
            for attr in ("frontend", "sample_rate", "hop_length", "min_input_rate", "max_input_rate"):
                if not hasattr(m, attr):
                    raise ConfigError(f"{type(m).__name__} is not a super-resolution model (no {attr!r}); "
                                      "use a HiFi-SR weight set such as 'hifisr_small_16k.sisec_8k'")
            self.model = m.to(self.device).eval()
        default = int(self.model.sample_rate) if self.model is not None else 48000
        self.sample_rate = int(rate) if rate is not None else default
        if self.sample_rate <= 0:
            raise ConfigError(f"rate must be a positive sample rate, got {rate}")
        if chunk_seconds <= 0 or context_seconds < 0:
            raise ConfigError(f"need chunk_seconds > 0 and context_seconds >= 0, got {chunk_seconds}, "
                              f"{context_seconds}")
        self.chunk_seconds, self.context_seconds = float(chunk_seconds), float(context_seconds)
        self.bandwidth_substitution = bool(bandwidth_substitution)

    @property
    def method(self) -> str:
        return "sinc (soxr HQ)" if self.model is None else type(self.model).__name__

    def check_rate(self, input_rate: int) -> None:
        """Raise :class:`AudioError` when the model was not made for ``input_rate``."""
        if self.model is None:
            return
        lo, hi = int(self.model.min_input_rate), int(self.model.max_input_rate)
        if not lo <= input_rate <= hi:
            raise AudioError(f"input sample rate {input_rate} Hz is outside this model's supported range "
                             f"{lo}-{hi} Hz; resample the input into that range or use the sinc path (no model)")

    @torch.no_grad()
    def _generate(self, up: Tensor) -> Tensor:
        """The model on ``(T,)`` at its rate, in windows with discarded context: ``(T,)``."""
        m = self.model
        sr, hop = int(m.sample_rate), int(m.hop_length)
        t = up.shape[-1]
        win = max(hop, int(round(self.chunk_seconds * sr)) // hop * hop)
        ctx = int(round(self.context_seconds * sr)) // hop * hop
        min_len = max(int(getattr(m.frontend, "n_fft", 1024)), 2 * hop)

        def window(seg: Tensor) -> Tensor:
            n = max(min_len, -(-seg.shape[-1] // hop) * hop)  # whole frames, long enough for the mel padding
            mel, _ = m.frontend(fit_length(seg, n).to(self.device).unsqueeze(0))
            return m(mel)[0][0].float().cpu()

        return fit_length(torch.cat(list(self.stream_chunks(up, window, win, ctx))), t)

    def upsample(self, wav: Tensor, input_rate: int) -> Tensor:
        """``(T,)`` at ``input_rate`` -> ``(round(T * rate / input_rate),)`` at :attr:`sample_rate`."""
        if wav.ndim != 1 or wav.shape[-1] == 0:
            raise AudioError(f"upsample expects a non-empty mono waveform (T,), got shape {tuple(wav.shape)}")
        input_rate = int(input_rate)
        n_out = int(round(wav.shape[-1] * self.sample_rate / input_rate))
        if self.model is None:
            return fit_length(resample(wav.float(), input_rate, self.sample_rate), n_out)
        self.check_rate(input_rate)
        sr = int(self.model.sample_rate)
        # The model needs one whole analysis window of real signal (its mel's n_fft at its rate); a shorter
        # clip would be almost all padding and come back as the model's invention, so it is refused.
        fe = self.model.frontend
        need = max(int(getattr(fe, "n_fft", 1024)), int(getattr(fe, "min_samples", 1)))
        need_in = math.ceil(need * input_rate / sr)
        if wav.shape[-1] < need_in:
            raise AudioError(f"{wav.shape[-1]} samples ({1000 * wav.shape[-1] / input_rate:.1f} ms) at {input_rate} Hz "
                             f"is too short for super-resolution with {type(self.model).__name__}: need at least "
                             f"{need_in} samples ({1000 * need / sr:.1f} ms, one {need}-sample window at {sr} Hz)")
        peak = float(wav.abs().max())
        if peak == 0.0:  # digital silence: nothing to extend (the model would add its own noise), silence out
            return torch.zeros(n_out)
        gain = 0.95 / peak  # the training level (official data loader)
        up = fit_length(resample(wav.float() * gain, input_rate, sr), int(round(wav.shape[-1] * sr / input_rate)))
        y = self._generate(up)
        if self.bandwidth_substitution and input_rate < sr:
            y = bandwidth_substitution(y, up, sr, input_rate)
        y = y / gain
        if sr != self.sample_rate:
            y = resample(y, sr, self.sample_rate)
        return fit_length(y, n_out)

    # ---- the three pipeline stages ------------------------------------------------------------------
    def preprocess(self, x: Any, index: int = 0) -> AudioInput:
        """Decode the input at its own rate (the input rate decides the model's work; no resampling here)."""
        return read_input(x, index)

    def _forward(self, a: AudioInput) -> dict[str, Any]:
        return {"input": a.source, "audio": self.upsample(a.wav, a.sample_rate), "sample_rate": self.sample_rate,
                "input_rate": a.sample_rate, "method": self.method}
