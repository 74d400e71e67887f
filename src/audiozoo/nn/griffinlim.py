"""Griffin-Lim as a vocoder (no parameters) and as phase refinement of a spectral vocoder.

Both follow the vocoder contract (``(mel (B, n_mels, L), lengths) -> (wav (B, T), lengths)``) so pipelines
treat them as any vocoder: ``resolve_model("griffinlim:32")`` and ``resolve_model("apnet.x+griffinlim:32")``
(:mod:`audiozoo.resolve` registers the ``griffinlim`` spec and its composition).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..dsp.griffinlim import griffin_lim, mel_to_linear
from ..dsp.mel import VocoderMel
from ..errors import AudioError, ConfigError

__all__ = ["GriffinLimRefiner", "GriffinLimVocoder"]

# The centred natural-log mel Griffin-Lim inverts by default: APNet's official front-end (16 kHz, 80 mels,
# n_fft 1024, hop 80, window 320, 0-8 kHz).
DEFAULT_MEL = dict(sample_rate=16000, n_fft=1024, hop_length=80, win_length=320, n_mels=80, f_min=0.0,
                   f_max=8000.0)


class GriffinLimVocoder(nn.Module):
    """Parameter-free baseline with the vocoder contract: ``exp(log-mel)`` -> mel pseudo-inverse -> Griffin-Lim.

    It inverts a natural-log mel magnitude (``ln(max(fb @ |STFT|, 1e-5))``); its ``frontend`` computes that mel
    from audio. ``center=True`` (APNet's and the FreeV prior's front-end): ``(L - 1) * hop`` samples for ``L``
    frames. ``center=False`` (jik876's HiFi-GAN front-end: reflect padding ``(n_fft - hop) / 2``, uncentred
    frames, so frame ``l`` is centred at ``l * hop + hop / 2``): the centred reconstruction delayed by
    ``n_fft / 2 - (n_fft - hop) / 2`` samples and ``L * hop`` samples long, aligned with the vocoder's output.
    """

    family = "vocoder"
    input_peak: float | None = None

    def __init__(self, sample_rate: int = 16000, n_fft: int = 1024, hop_length: int = 80, win_length: int = 320,
                 n_mels: int = 80, f_min: float = 0.0, f_max: float | None = 8000.0, n_iter: int = 32,
                 momentum: float = 0.99, seed: int = 0, center: bool = True):
        super().__init__()
        if n_iter < 0:
            raise ConfigError(f"Griffin-Lim needs n_iter >= 0, got {n_iter}")
        self.frontend = VocoderMel(sample_rate, n_fft, hop_length, win_length, n_mels, f_min, f_max, center=center,
                                   mag_eps=1e-9, log="ln", amin=1e-5)
        self.sample_rate, self.hop_length, self.n_fft, self.win_length = sample_rate, hop_length, n_fft, win_length
        self.n_mels, self.center = n_mels, bool(center)
        self.shift = 0 if center else n_fft // 2 - (n_fft - hop_length) // 2
        self.n_iter, self.momentum, self.seed = int(n_iter), float(momentum), int(seed)

    @classmethod
    def like(cls, vocoder: nn.Module, n_iter: int = 32, **kwargs: Any) -> GriffinLimVocoder:
        """The Griffin-Lim inverse of ``vocoder``'s front-end (a natural-log magnitude ``VocoderMel``, centred
        or not): the same mel, so a vocoder can be compared with it on equal terms."""
        fe = getattr(vocoder, "frontend", None)
        # settings read from the extractor itself, whatever config layout the vocoder's own front-end records
        if not isinstance(fe, VocoderMel) or fe.log != "ln":
            what = fe.get_config() if isinstance(fe, VocoderMel) else type(fe).__name__
            raise ConfigError(f"GriffinLimVocoder.like needs a natural-log VocoderMel front-end, got {what}")
        gl = cls(**{k: getattr(fe, k) for k in DEFAULT_MEL}, n_iter=n_iter, center=bool(fe.center), **kwargs)
        gl.input_peak = getattr(vocoder, "input_peak", None)  # the same mel: the same input level too
        return gl

    def output_length(self, frames: Tensor | int) -> Tensor | int:
        if not self.center:
            return frames * self.hop_length
        return (frames - 1).clamp(min=0) * self.hop_length if isinstance(frames, Tensor) else \
            max(frames - 1, 0) * self.hop_length

    def forward(self, mel: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(B, n_mels, L)`` log-mel -> ``(wav (B, output_length(L)), lengths (B,))``."""
        if mel.ndim != 3 or mel.shape[1] != self.n_mels:
            raise AudioError(f"GriffinLimVocoder expects a log-mel (B, {self.n_mels}, L), got {tuple(mel.shape)}")
        mag = mel_to_linear(torch.exp(mel.float()), self.frontend.fb.float())
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        wav = griffin_lim(mag.cpu(), self.n_iter, self.n_fft, self.hop_length, self.win_length,
                          length=(mel.shape[-1] - 1) * self.hop_length, momentum=self.momentum,
                          generator=gen).to(mel.device)
        if not self.center:  # frame l's centre is l * hop + shift in the original signal
            total = int(self.output_length(mel.shape[-1]))
            wav = torch.nn.functional.pad(wav, (self.shift, max(0, total - self.shift - wav.shape[-1])))[..., :total]
        if lengths is None:
            return wav, torch.full((wav.shape[0],), wav.shape[-1], dtype=torch.long, device=wav.device)
        out = torch.as_tensor(self.output_length(lengths.to(wav.device).long())).clamp(max=wav.shape[-1])
        keep = torch.arange(wav.shape[-1], device=wav.device)[None] < out[:, None]
        return wav * keep, out


class GriffinLimRefiner(nn.Module):
    """A spectral vocoder's predicted amplitude, with its phase refined by ``n_iter`` Griffin-Lim iterations.

    For vocoders that predict an STFT (``forward_with_spectra`` returning ``log_amplitude`` and ``phase``, as
    APNet): the predicted phase initialises fast Griffin-Lim (momentum 0.99) on the predicted amplitude, so
    the iterations make the spectrum consistent instead of starting from random phase
    (``init="random"`` starts from random phase, i.e. plain Griffin-Lim on the learned amplitude).
    Same contract as the wrapped vocoder; ``(L - 1) * hop`` samples for ``L`` frames.
    """

    family = "vocoder"

    def __init__(self, vocoder: nn.Module, n_iter: int = 32, init: str = "predicted", seed: int = 0):
        super().__init__()
        if not hasattr(vocoder, "forward_with_spectra"):
            raise ConfigError(f"{type(vocoder).__name__} predicts no spectrum (no forward_with_spectra): "
                              "Griffin-Lim refinement needs a spectral vocoder such as apnet")
        if init not in ("predicted", "random"):
            raise ConfigError(f"GriffinLimRefiner init must be 'predicted' or 'random', got {init!r}")
        self.vocoder, self.n_iter, self.init, self.seed = vocoder, int(n_iter), init, int(seed)
        self.frontend = vocoder.frontend
        self.sample_rate, self.hop_length, self.n_mels = vocoder.sample_rate, vocoder.hop_length, vocoder.n_mels
        self.input_peak = getattr(vocoder, "input_peak", None)

    def forward(self, mel: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(B, n_mels, L)`` log-mel -> ``(wav (B, (L - 1) hop), lengths (B,))``."""
        out = self.vocoder.forward_with_spectra(mel, lengths)
        c = self.vocoder.config
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        init = out.phase.float() if self.init == "predicted" else "random"
        wav = griffin_lim(torch.exp(out.log_amplitude.float()), self.n_iter, c.n_fft, c.hop_length, c.win_length,
                          length=out.wav.shape[-1], momentum=0.99, init=init, generator=gen)
        keep = torch.arange(wav.shape[-1], device=wav.device)[None] < out.wav_lengths[:, None]
        return wav * keep, out.wav_lengths
