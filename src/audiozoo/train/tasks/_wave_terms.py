"""Waveform terms of the ``tts`` task for end-to-end text-to-waveform models (FastSpeech 2s).

FastSpeech 2s (Ren et al. 2021, arXiv:2006.04558, Sec. 2.4) trains its waveform decoder on a random slice of the
frame-level hidden sequence (whole utterances do not fit in memory) with Parallel WaveGAN's losses (Yamamoto et al.
2020, arXiv:1910.11480, Sec. 2.3 and 3): the multi-resolution STFT loss (spectral convergence + log-magnitude L1,
averaged over the resolutions) and the LSGAN loss against Parallel WaveGAN's discriminator, ``L_G = L_stft +
lambda_adv L_adv`` with ``lambda_adv = 4`` (Parallel WaveGAN's). The mel decoder keeps its FastSpeech 2 losses on
the full sequence (the ``tts`` task adds both).

:class:`WaveformTerms` holds those settings for :class:`~audiozoo.train.tasks.tts.TTSTask` (its ``waveform``
option): slice starts (random in training, fixed in validation), the matching audio samples, the generator's
terms, the discriminators (built at ``setup`` beside the acoustic model, as
:class:`~audiozoo.train.tasks._gan.WaveformGANTask` does, so the engine optimises, checkpoints and resumes them) and
their optimiser stage. With discriminators the engine runs two stages per micro-batch (discriminators, then the
acoustic model, HiFi-GAN's order); without (``discriminators: {}``), one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ...errors import ConfigError, DataError
from ...nn.segments import random_segment_starts, slice_segments
from ..losses import ADVERSARIAL, discriminator_loss, feature_matching_loss, generator_adversarial_loss
from ..losses.stft import PWG_RESOLUTIONS, check_resolutions, multi_resolution_stft_loss
from ..optim import build_optimizer, build_scheduler
from ._gan import DISCRIMINATORS, GANTask
from .base import unwrap

__all__ = ["WaveformTerms"]


class WaveformTerms:
    """The ``waveform`` option of the ``tts`` task (see the module docstring).

    Args:
        segment_frames: frames per decoded slice (the paper does not say; JETS uses 64, Parallel WaveGAN's
            LJSpeech recipe 100 frames of 256 samples).
        lambda_stft: weight of the MR-STFT loss (Parallel WaveGAN: 1).
        stft_resolutions: its ``(n_fft, hop, win)`` triples (Parallel WaveGAN's by default).
        lambda_adv: weight of the generator's adversarial loss (Parallel WaveGAN: 4).
        lambda_fm: feature matching weight (Parallel WaveGAN: none, 0).
        adversarial: ``"lsgan"`` (the paper) or ``"hinge"``.
        discriminators: ``{name: {kind: pwg | mpd | msd | mbd | mrd, **kwargs}}`` (default: Parallel WaveGAN's, the
            paper's); ``{}``: no adversarial term, one optimiser.
        d_optim, d_schedule: the discriminators' optimiser / schedule (default: the task's).
        warmup_adv_steps: steps before the adversarial terms switch on (Parallel WaveGAN: 100k; the paper: not
            stated; default 0).
    """

    discriminate = GANTask.discriminate  # D on real and fake in one call (uses no task state)

    def __init__(self, segment_frames: int = 64, lambda_stft: float = 1.0,
                 stft_resolutions: Sequence[Sequence[int]] = PWG_RESOLUTIONS, lambda_adv: float = 4.0,
                 lambda_fm: float = 0.0, adversarial: str = "lsgan",
                 discriminators: Mapping[str, Mapping[str, Any]] | None = None,
                 d_optim: Mapping[str, Any] | None = None, d_schedule: Mapping[str, Any] | None = None,
                 warmup_adv_steps: int = 0) -> None:
        if segment_frames < 1 or lambda_stft < 0 or lambda_adv < 0 or lambda_fm < 0 or warmup_adv_steps < 0:
            raise ConfigError("waveform: need segment_frames >= 1 and non-negative weights / warm-up steps")
        if adversarial not in ADVERSARIAL:
            raise ConfigError(f"waveform.adversarial must be one of {ADVERSARIAL}, got {adversarial!r}")
        self.segment_frames = int(segment_frames)
        self.lambda_stft, self.lambda_adv, self.lambda_fm = float(lambda_stft), float(lambda_adv), float(lambda_fm)
        self.stft_resolutions = check_resolutions(stft_resolutions)
        self.adversarial = adversarial
        specs = {"pwg": {"kind": "pwg"}} if discriminators is None else discriminators
        self.discriminator_specs = {str(k): dict(v) for k, v in specs.items()}
        for name, spec in self.discriminator_specs.items():
            if spec.get("kind") not in DISCRIMINATORS:
                raise ConfigError(f"waveform discriminator {name!r}: kind must be one of {sorted(DISCRIMINATORS)}, "
                                  f"got {spec.get('kind')!r}")
        self.d_optim_cfg = None if d_optim is None else dict(d_optim)
        self.d_schedule_cfg = None if d_schedule is None else dict(d_schedule)
        self.warmup_adv_steps = int(warmup_adv_steps)

    # ---- models / optimisers ------------------------------------------------------------------------
    def setup(self, trainer: Any, device: torch.device) -> None:
        """Build the discriminators into ``trainer.models`` (after the acoustic model, which stays first)."""
        for name, spec in self.discriminator_specs.items():
            if name not in trainer.models:
                kw = {k: v for k, v in spec.items() if k != "kind"}
                trainer.models[name] = DISCRIMINATORS[spec["kind"]](**kw).to(device).train()

    @staticmethod
    def discriminators(models: Mapping[str, nn.Module]) -> dict[str, nn.Module]:
        """Every model after the first (the acoustic model)."""
        return dict(list(models.items())[1:])

    def configure_optimizers(self, models: Mapping[str, nn.Module], optim: Mapping[str, Any],
                             schedule: Mapping[str, Any], total_steps: int | None
                             ) -> tuple[list[torch.optim.Optimizer], list[Any]] | None:
        """``[discriminators', acoustic model's]`` (stage 0 is D, stage 1 the generator) when there are
        discriminators, else None (the task's single optimiser)."""
        disc = self.discriminators(models)
        if not disc:
            return None
        g_params = [p for p in unwrap(next(iter(models.values()))).parameters() if p.requires_grad]
        d_params = [p for m in disc.values() for p in unwrap(m).parameters() if p.requires_grad]
        d_optim = self.d_optim_cfg or dict(optim)
        d_schedule = self.d_schedule_cfg or dict(schedule)
        opt_d, opt_g = build_optimizer(d_params, **d_optim), build_optimizer(g_params, **optim)
        return [opt_d, opt_g], [build_scheduler(opt_d, total_steps=total_steps, **d_schedule),
                                build_scheduler(opt_g, total_steps=total_steps, **schedule)]

    def adversarial_on(self, models: Mapping[str, nn.Module], trainer: Any) -> bool:
        step = getattr(trainer, "step", 0) if trainer is not None else 0
        return bool(self.discriminators(models)) and self.lambda_adv > 0 and step >= self.warmup_adv_steps

    # ---- slices -------------------------------------------------------------------------------------
    def starts(self, mel_lengths: Tensor, training: bool) -> Tensor:
        """First frame of each item's slice ``(B,)``: random in training, from a fixed seed in validation."""
        g = None if training else torch.Generator().manual_seed(0)
        return random_segment_starts(mel_lengths, self.segment_frames, generator=g)

    def real_segments(self, audio: Tensor, audio_lengths: Tensor | None, mel_lengths: Tensor, starts: Tensor,
                      hop: int) -> Tensor:
        """Samples ``[start * hop, (start + S) * hop)`` of each item ``(B, S * hop)`` float32, the audio cropped /
        zero-padded to ``mel_lengths * hop`` first (as the task's mel targets)."""
        b = int(mel_lengths.shape[0])
        wav = audio.detach().float().reshape(b, -1)
        n = torch.full((b,), wav.shape[-1]) if audio_lengths is None else torch.as_tensor(audio_lengths).reshape(b)
        keep = torch.minimum(n.to(wav.device).long(), mel_lengths.to(wav.device).long() * hop)
        wav = wav * (torch.arange(wav.shape[-1], device=wav.device)[None] < keep[:, None])
        return slice_segments(wav, starts.to(wav.device) * hop, self.segment_frames * hop, dim=1)

    # ---- losses -------------------------------------------------------------------------------------
    def generator_terms(self, fake: Tensor, real: Tensor, models: Mapping[str, nn.Module],
                        adversarial: bool) -> dict[str, Tensor]:
        """``{"loss": weighted sum, "wave_sc", "wave_mag"[, "wave_adv", "wave_fm"]}`` of a generated slice."""
        if fake.shape != real.shape:
            raise DataError(f"waveform slice {tuple(fake.shape)} != audio slice {tuple(real.shape)}")
        sc, mag = multi_resolution_stft_loss(fake.float(), real.float(), self.stft_resolutions)
        out = {"wave_sc": sc, "wave_mag": mag}
        loss = self.lambda_stft * (sc + mag)
        if adversarial:
            adv, fm = sc.new_zeros(()), sc.new_zeros(())
            for d in self.discriminators(models).values():
                (_, fr), (lf, ff) = self.discriminate(d, real, fake)
                adv = adv + generator_adversarial_loss(lf, self.adversarial)
                if self.lambda_fm > 0:
                    fm = fm + feature_matching_loss(fr, ff)
            loss = loss + self.lambda_adv * adv + self.lambda_fm * fm
            out.update(wave_adv=adv, wave_fm=fm)
        return {"loss": loss, **out}

    def discriminator_step(self, fake: Tensor, real: Tensor, models: Mapping[str, nn.Module],
                           trainer: Any) -> dict[str, Tensor]:
        """Stage 0: the discriminators' loss on real and detached generated slices."""
        disc = self.discriminators(models)
        loss = real.new_zeros((), dtype=torch.float32)
        if self.adversarial_on(models, trainer):
            for d in disc.values():
                (lr, _), (lf, _) = self.discriminate(d, real, fake.detach())
                loss = loss + discriminator_loss(lr, lf, self.adversarial)
        if not loss.requires_grad:  # adversarial warm-up: nothing to learn yet
            loss = loss + sum(p.sum() * 0.0 for d in disc.values() for p in d.parameters())
        return {"loss": loss, "d_loss": loss.detach()}
