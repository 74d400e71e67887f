"""Speech super-resolution training (HiFi-SR, Zhao et al. ICASSP 2025, arXiv:2501.10045).

Batches are full-band waveform crops ``{"audio": (B, T), "lengths": (B,)}`` at the generator's output rate. Per
micro-batch, as the official ``dataloader/meldataset.py`` does: each crop is peak-normalised to 0.95
(``normalize(audio) * 0.95``), band-limited by resampling it down to an input rate drawn from ``input_rates``
and back up (soxr, :func:`audiozoo.dsp.io.resample`), and the generator's front-end turns the band-limited crop
into the input mel; the target is the full-band crop.

Loss (generator): ``lambda_mel * multi-scale mel L1`` (:func:`multi_scale_mel_loss`, DAC's / BigVGAN-v2's
seven resolutions; HiFi-SR weighs it 7) + optionally, with discriminators in the models dict (MPD + MSD + MBD
in the paper: :mod:`audiozoo.nn.discriminators`, :mod:`audiozoo.nn.discriminators_mbd`), LSGAN adversarial
terms + ``lambda_fm`` (1.5) feature matching, with the D step / G step of
:class:`~audiozoo.train.tasks._gan.GANTask`. The monitored validation metric is ``ms_mel``; validation also
reports ``lsd`` and ``lsd_high`` (:func:`audiozoo.eval.speech.log_spectral_distance`, at ``eval_input_rate``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ...dsp.io import resample
from ...errors import ConfigError
from ..losses.mel import DAC_MEL_BINS, DAC_MEL_WINDOWS, mel_l1, multi_scale_mel_loss
from ._gan import WaveformGANTask
from .base import batch_size, register_task

__all__ = ["DAC_MEL_BINS", "DAC_MEL_WINDOWS", "SuperResTask", "band_limit", "multi_scale_mel_loss", "peak_normalize"]


def peak_normalize(wav: Tensor, peak: float = 0.95) -> Tensor:
    """Scale each item of ``(B, T)`` to the given peak (silent items stay silent)."""
    return wav * (peak / wav.abs().amax(dim=-1, keepdim=True).clamp(min=1e-8))


def band_limit(wav: Tensor, sample_rate: int, input_rates: Sequence[int]) -> Tensor:
    """``(B, T)`` at ``sample_rate`` -> resampled to ``input_rates[i]`` and back (soxr HQ), same shape.

    ``input_rates`` gives one rate per item. Not differentiable (it runs in numpy, on inputs only).
    """
    out = torch.empty_like(wav)
    t = wav.shape[-1]
    for i, r in enumerate(input_rates):
        low = resample(wav[i].detach().float().cpu(), sample_rate, int(r))
        up = resample(low, int(r), sample_rate)[:t]
        out[i] = F.pad(up, (0, t - up.shape[-1])).to(out.dtype)
    return out


@register_task("superres")
class SuperResTask(WaveformGANTask):
    """Train a super-resolution generator (:class:`~audiozoo.models.enhance.hifisr.HiFiSR`) on full-band crops.

    Args:
        input_rates: band-limiting rates (Hz), one drawn uniformly per item (HiFi-SR: 16000/22050/24000/32000
            for 48 kHz output).
        eval_input_rate: the rate used in validation (default: the smallest of ``input_rates``).
        lambda_mel: weight of :func:`multi_scale_mel_loss` (HiFi-SR 7).
        mel_windows, mel_bins: its scales (default DAC's seven).
        normalize: peak-normalise every crop to 0.95 first (the official data loader does).
        lambda_adv, lambda_fm, adversarial, warmup_adv_steps, optim, schedule, d_optim, d_schedule,
            generator_key, discriminators: as :class:`~audiozoo.train.tasks._gan.WaveformGANTask` (used with
            discriminators only; HiFi-SR's feature-matching weight is 1.5).
    """

    monitor = "ms_mel"
    monitor_mode = "min"

    def __init__(self, *, input_rates: Sequence[int] = (8000,), eval_input_rate: int | None = None,
                 lambda_mel: float = 7.0, mel_windows: Sequence[int] = DAC_MEL_WINDOWS,
                 mel_bins: Sequence[int] = DAC_MEL_BINS, normalize: bool = True, lambda_adv: float = 1.0,
                 lambda_fm: float = 1.5, adversarial: str = "lsgan", optim: Mapping[str, Any] | None = None,
                 schedule: Mapping[str, Any] | None = None, d_optim: Mapping[str, Any] | None = None,
                 d_schedule: Mapping[str, Any] | None = None, generator_key: str = "generator",
                 warmup_adv_steps: int = 0, discriminators: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        super().__init__(lambda_adv=lambda_adv, lambda_fm=lambda_fm, adversarial=adversarial,
                         optim=optim or {"name": "adamw", "lr": 1e-4, "betas": (0.8, 0.99)}, schedule=schedule,
                         d_optim=d_optim, d_schedule=d_schedule, generator_key=generator_key,
                         warmup_adv_steps=warmup_adv_steps, discriminators=discriminators)
        self.lambda_mel = float(lambda_mel)
        rates = [input_rates] if isinstance(input_rates, int) else list(input_rates)
        if not rates or any(int(r) <= 0 for r in rates):
            raise ConfigError(f"input_rates must be positive sample rates, got {input_rates}")
        if len(mel_windows) != len(mel_bins) or not mel_windows:
            raise ConfigError(f"need one mel size per window, got {tuple(mel_windows)} / {tuple(mel_bins)}")
        self.input_rates = tuple(int(r) for r in rates)
        self.eval_input_rate = int(eval_input_rate) if eval_input_rate else min(self.input_rates)
        self.mel_windows = tuple(int(w) for w in mel_windows)
        self.mel_bins = tuple(int(n) for n in mel_bins)
        self.normalize = bool(normalize)

    # ---- data ------------------------------------------------------------------------------------
    def _rates(self, n: int) -> list[int]:
        if not self.generator.training:
            return [self.eval_input_rate] * n
        idx = torch.randint(len(self.input_rates), (n,))
        return [self.input_rates[int(i)] for i in idx]

    def generator_input(self, batch: Mapping[str, Any]) -> Tensor:
        """Log-mel ``(B, n_mels, L)`` of the band-limited crop (the generator's front-end, no gradient)."""
        g = self._gen()
        real = self.target(batch)
        rates = self._rates(real.shape[0])
        too_high = [r for r in rates if r >= g.sample_rate]
        if too_high:
            raise ConfigError(f"input rate {too_high[0]} is not below the output rate {g.sample_rate}")
        with torch.no_grad():
            return g.frontend(band_limit(real, int(g.sample_rate), rates))[0]

    def shared_forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        if self.normalize and "audio" in batch:
            batch = {**batch, "audio": peak_normalize(batch["audio"].squeeze(1) if batch["audio"].ndim == 3
                                                      else batch["audio"])}
        return super().shared_forward(batch)

    # ---- losses ----------------------------------------------------------------------------------
    def reconstruction_terms(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """``ms_mel`` (unweighted), ``mel_l1`` (front-end log-mel L1, for comparison with vocoders), ``recon``."""
        fake, real = batch["fake"].float(), batch["real"].float()
        ms = multi_scale_mel_loss(fake, real, int(self._gen().sample_rate), self.mel_windows, self.mel_bins)
        with torch.no_grad():
            front = mel_l1(fake, real, self._mel)
        return {"ms_mel": ms, "mel_l1": front, "recon": self.lambda_mel * ms}

    def validation_step(self, batch: dict[str, Any]) -> None:
        from ...eval.speech import log_spectral_distance

        batch = self.shared_forward(batch)
        terms = self.reconstruction_terms(batch)
        g = self._gen()
        sr = int(g.sample_rate)
        fake, real = batch["fake"].float(), batch["real"].float()
        n_fft = 2048 if fake.shape[-1] > 2048 else 2 ** (fake.shape[-1].bit_length() - 1)
        terms["lsd"] = log_spectral_distance(fake, real, sr, n_fft=n_fft).mean()
        terms["lsd_high"] = log_spectral_distance(fake, real, sr, n_fft=n_fft,
                                                  band=(self.eval_input_rate / 2, sr / 2)).mean()
        self._accumulate(terms, batch_size(batch))
