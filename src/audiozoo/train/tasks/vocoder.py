"""Vocoder training: mel -> waveform, with the generator's own mel front-end computing the input.

Models: ``{"generator": G}`` (reconstruction only: one optimizer) or ``{"generator": G, "mpd": D, ...}``
(HiFi-GAN style GAN, :class:`~audiozoo.train.tasks._gan.WaveformGANTask`: D step then G step). Per micro-batch the
waveform crop ``batch["audio"] (B, T)`` is trimmed to a multiple of the generator's hop, its log-mel is
computed by ``generator.frontend`` (no gradient: the front-end has no parameters), and the generator
re-synthesises the crop. Reconstruction terms (``losses``):

* ``"mel"``: HiFi-GAN's L1 between the log-mels of the real and generated waveforms (Kong et al. 2020,
  Sec. 2.3; weight 45 in ``jik876/hifi-gan`` ``train.py``), computed with the generator's front-end.
* ``"mrstft"``: Parallel WaveGAN's multi-resolution STFT loss (Yamamoto et al. 2020, arXiv:1910.11480,
  Sec. 2.3): for each (n_fft, hop, win) spectral convergence ``||S| - |S^||_F / ||S||_F`` plus the L1 of log
  magnitudes, averaged over resolutions (PWG: (1024, 120, 600), (2048, 240, 1200), (512, 50, 240) at 24 kHz).
* ``"apnet"``: APNet's amplitude, anti-wrapping phase, STFT consistency/real/imaginary and mel terms
  (:func:`audiozoo.train.losses.phase.apnet_reconstruction_losses`, official weights 45/100/20/45); needs a
  generator that predicts its STFT: ``forward_with_spectra(mel)`` returning ``log_amplitude``, ``phase``, ``real``,
  ``imag`` and ``wav``, with ``n_fft``, ``hop_length`` and ``win_length`` on the model or its ``config`` (APNet).
  The task checks that capability, not the model's class.

The monitored validation metric is ``mel_l1`` (the L1 between log-mels of real and generated speech), the
same number for every choice of ``losses`` so runs can be compared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ...errors import ConfigError
from ..losses.mel import mel_l1
from ..losses.phase import amplitude_phase_spectrum, apnet_reconstruction_losses
from ..losses.stft import PWG_RESOLUTIONS, check_resolutions, multi_resolution_stft_loss, spectral_convergence
from ._gan import DISCRIMINATORS, WaveformGANTask
from .base import register_task

__all__ = ["DISCRIMINATORS", "PWG_RESOLUTIONS", "VocoderTask", "multi_resolution_stft_loss"]

LOSSES = ("mel", "mrstft", "apnet")


def _stft_params(g: nn.Module) -> tuple[int, int, int]:
    """``(n_fft, hop_length, win_length)`` of a generator that predicts its STFT (model attributes or config)."""
    cfg = getattr(g, "config", None)
    vals = []
    for name in ("n_fft", "hop_length", "win_length"):
        v = getattr(g, name, None)
        if v is None:
            v = getattr(cfg, name, None)
        if v is None:
            raise ConfigError(f"losses 'apnet' need the generator's STFT settings: {type(g).__name__} has no {name} "
                              "(on the model or its config)")
        vals.append(int(v))
    return vals[0], vals[1], vals[2]


@register_task("vocoder")
class VocoderTask(WaveformGANTask):
    """Train a mel vocoder on waveform crops (see the module docstring).

    Args:
        losses: reconstruction terms, any of ``"mel"``, ``"mrstft"``, ``"apnet"``.
        lambda_mel: weight of the mel L1 (HiFi-GAN 45).
        lambda_stft: weight of the MR-STFT loss (PWG weighs it 1 beside its adversarial term 4; with a
            mel term at 45 we default to 45/2 so both matter).
        stft_resolutions: MR-STFT ``(n_fft, hop, win)`` triples (default PWG's).
        phase_kind: APNet phase loss, ``"cos"`` (official code) or ``"aw"`` (paper).
        lambda_amp_sc: weight of the spectral convergence of a predicted amplitude (``apnet`` losses only).
        gain_db, discriminators, lambda_adv, lambda_fm, adversarial, warmup_adv_steps, optim, schedule, d_optim,
            d_schedule, generator_key: as :class:`~audiozoo.train.tasks._gan.WaveformGANTask`.

    Batches: ``{"audio": (B, T), "lengths": (B,)}`` of fixed-length crops (padding is not masked: train on
    ``crop_seconds`` crops as HiFi-GAN and APNet do).
    """

    monitor = "mel_l1"
    monitor_mode = "min"

    def __init__(self, *, losses: Sequence[str] = ("mel", "mrstft"), lambda_mel: float = 45.0,
                 lambda_stft: float = 22.5, stft_resolutions: Sequence[Sequence[int]] = PWG_RESOLUTIONS,
                 phase_kind: str = "cos", lambda_adv: float = 1.0, lambda_fm: float = 2.0,
                 adversarial: str = "lsgan", optim: Mapping[str, Any] | None = None,
                 schedule: Mapping[str, Any] | None = None, d_optim: Mapping[str, Any] | None = None,
                 d_schedule: Mapping[str, Any] | None = None, generator_key: str = "generator",
                 warmup_adv_steps: int = 0, gain_db: Sequence[float] | None = None,
                 lambda_amp_sc: float = 0.0,
                 discriminators: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        super().__init__(lambda_adv=lambda_adv, lambda_fm=lambda_fm, adversarial=adversarial, optim=optim,
                         schedule=schedule, d_optim=d_optim, d_schedule=d_schedule, generator_key=generator_key,
                         warmup_adv_steps=warmup_adv_steps, gain_db=gain_db, discriminators=discriminators)
        losses = [losses] if isinstance(losses, str) else list(losses)
        bad = [x for x in losses if x not in LOSSES]
        if not losses or bad:
            raise ConfigError(f"VocoderTask losses must be a non-empty subset of {LOSSES}, got {losses}")
        if phase_kind not in ("cos", "aw"):
            raise ConfigError(f"phase_kind must be 'cos' or 'aw', got {phase_kind!r}")
        self.stft_resolutions = check_resolutions(stft_resolutions)
        self.losses = losses
        self.lambda_mel, self.lambda_stft = float(lambda_mel), float(lambda_stft)
        self.phase_kind = phase_kind
        if lambda_amp_sc < 0 or (lambda_amp_sc > 0 and "apnet" not in losses):
            raise ConfigError(f"lambda_amp_sc (>= 0) weighs the spectral convergence of a predicted amplitude: it "
                              f"needs the 'apnet' losses, got lambda_amp_sc={lambda_amp_sc}, losses={losses}")
        self.lambda_amp_sc = float(lambda_amp_sc)

    def synthesize(self, mel: Tensor, out: dict[str, Any]) -> Tensor:
        """``apnet`` losses: the generator's spectra go to ``out["spectra"]`` (capability check, any model with
        ``forward_with_spectra``); else the plain generator output."""
        if "apnet" not in self.losses:
            return super().synthesize(mel, out)
        g = self._gen()
        if not hasattr(g, "forward_with_spectra"):
            raise ConfigError(f"losses 'apnet' need a generator that predicts its STFT (forward_with_spectra); "
                              f"got {type(g).__name__}")
        spec = g.forward_with_spectra(mel)
        out["spectra"] = spec
        return spec.wav

    def reconstruction_terms(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Every reconstruction term (unweighted) and their weighted sum ``recon``; also ``mel_l1``."""
        fake, real = batch["fake"].float(), batch["real"].float()
        out: dict[str, Tensor] = {}
        total = fake.new_zeros(())
        out["mel_l1"] = mel_l1(fake, real, self._mel)
        if "mel" in self.losses:
            total = total + self.lambda_mel * out["mel_l1"]
        if "mrstft" in self.losses:
            out["stft_sc"], out["stft_mag"] = multi_resolution_stft_loss(fake, real, self.stft_resolutions)
            total = total + self.lambda_stft * (out["stft_sc"] + out["stft_mag"])
        if "apnet" in self.losses:
            s = batch["spectra"]
            n_fft, hop, win = _stft_params(self._gen())
            ap = apnet_reconstruction_losses(s.log_amplitude, s.phase, s.real, s.imag, fake, real, batch["mel"],
                                             self._mel, n_fft, hop, win, self.phase_kind)
            total = total + ap["total"]
            if self.lambda_amp_sc > 0:
                # spectral convergence of the predicted amplitude: a linear-magnitude term dominated by the loud
                # bins, which APNet's log-amplitude MSE (dominated by the many quiet bins) under-weights
                amp = torch.exp(amplitude_phase_spectrum(real, n_fft, hop, win)[0]) - 1e-5
                amp_hat = torch.exp(s.log_amplitude)
                n = min(amp.shape[-1], amp_hat.shape[-1])
                sc = spectral_convergence(amp_hat[..., :n], amp[..., :n])
                out["amp_sc"] = sc
                total = total + self.lambda_amp_sc * sc
            if "mel" in self.losses:  # apnet's total already holds 45 L_Mel: do not count it twice
                total = total - self.lambda_mel * out["mel_l1"]
            out.update({f"ap_{k}": ap[k] for k in ("A", "P", "S")})
        out["recon"] = total
        return out
