"""Flow-matching vocoder training (PeriodWave, Lee et al. ICLR 2025, arXiv:2408.07547).

Models: ``{"generator": G}`` (or a recipe's single ``model:``), where ``G`` has ``frontend`` (waveform ->
log-mel), ``hop_length``, ``flow_matching_batch(wav, lengths, mel)`` and ``sample(mel, lengths, steps=...,
solver=...)`` (:class:`audiozoo.models.vocoder.periodwave.PeriodWave`). One optimizer (official: AdamW, lr 2e-4).

* Training: the conditional flow-matching loss of the crop (OT-CFM with the energy prior, PriorGrad-weighted
  MSE; ``train.losses.flow_matching`` on the model's ``flow_matching_batch``). Crops are trimmed to a multiple
  of the hop; optionally each crop is peak-normalised to 0.95 (the official data loader normalises every file
  so) and/or scaled by a random gain.
* Validation: the CFM loss with a fixed noise seed (comparable across evaluations), then the waveform
  sampled from the crop's mel with ``val_steps`` ODE steps (few: CPU time) and compared with the real crop:
  ``mel_l1`` (L1 of log-mels, the monitored metric, as HiFi-GAN/VocoderTask) and Parallel WaveGAN's
  multi-resolution STFT distance (``stft_sc`` + ``stft_mag`` = ``mrstft``), the metrics of the official
  ``train_periodwave.py`` evaluation (mel L1, MR-STFT; PESQ is left to the evaluation scripts).

The model's ``flow_matching_batch`` is called on the unwrapped module (as VocoderTask does for APNet's spectra), so
DistributedDataParallel gradient sync is not exercised by this task; train it in one process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ...errors import ConfigError, DataError
from ..losses.flow_matching import flow_matching_loss
from ..losses.mel import mel_l1
from ..losses.stft import PWG_RESOLUTIONS, check_resolutions, multi_resolution_stft_loss
from ._common import check_gain_db, crop_to_hop, random_gain
from .base import Task, batch_size, register_task, unwrap

__all__ = ["FlowVocoderTask"]


@register_task("flow_vocoder")
class FlowVocoderTask(Task):
    """Train a flow-matching vocoder on waveform crops (see the module docstring).

    Args:
        val_steps, val_solver, val_temperature: ODE sampler settings of the validation samples.
        val_seed: seed of the validation noise (loss and samples), so that evaluations are comparable.
        stft_resolutions: MR-STFT ``(n_fft, hop, win)`` triples of the validation metric (default PWG's).
        peak_normalize: scale each training/validation crop to a 0.95 peak (gain capped at +40 dB so that
            silent crops are not blown up to noise).
        gain_db: ``[low, high]``: after normalisation, scale training crops by a random gain (dB), capped at a
            0.99 peak; ``None``: no augmentation.
        generator_key: the model's name in the models dict when there are several.
        optim, schedule: as :class:`~audiozoo.train.tasks.base.Task` (default AdamW lr 2e-4, the official).

    Batches: ``{"audio": (B, T) or (B, 1, T), "lengths": (B,) optional}``.
    """

    monitor = "mel_l1"
    monitor_mode = "min"

    def __init__(self, *, val_steps: int = 4, val_solver: str = "midpoint", val_temperature: float = 0.667,
                 val_seed: int = 0, stft_resolutions: Sequence[Sequence[int]] = PWG_RESOLUTIONS,
                 peak_normalize: bool = False, gain_db: Sequence[float] | None = None,
                 generator_key: str = "generator", optim: Mapping[str, Any] | None = None,
                 schedule: Mapping[str, Any] | None = None) -> None:
        super().__init__(optim or {"name": "adamw", "lr": 2e-4}, schedule)
        if int(val_steps) < 1:
            raise ConfigError(f"val_steps must be >= 1, got {val_steps}")
        if val_solver not in ("euler", "midpoint"):
            raise ConfigError(f"val_solver must be 'euler' or 'midpoint', got {val_solver!r}")
        self.stft_resolutions = check_resolutions(stft_resolutions)
        self.gain_db = check_gain_db(gain_db)
        self.val_steps, self.val_solver = int(val_steps), val_solver
        self.val_temperature, self.val_seed = float(val_temperature), int(val_seed)
        self.peak_normalize = bool(peak_normalize)
        self.generator_key = generator_key

    # ---- model / data ---------------------------------------------------------------------------
    @property
    def generator(self) -> nn.Module:
        """The vocoder (unwrapped): ``models[generator_key]`` or the only model."""
        if len(self.models) == 1:
            return unwrap(next(iter(self.models.values())))
        if self.generator_key not in self.models:
            raise ConfigError(f"FlowVocoderTask needs a model named {self.generator_key!r}; got {sorted(self.models)}")
        return unwrap(self.models[self.generator_key])

    def target(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
        """The crop ``(B, T')`` (``T'`` the largest multiple of the hop <= T) and its lengths ``(B,)``."""
        if "audio" not in batch:
            raise DataError(f"FlowVocoderTask batches need 'audio' (B, T); got {sorted(batch)}")
        wav = crop_to_hop(batch["audio"], int(self.generator.hop_length), 1, "FlowVocoderTask")
        n = wav.shape[-1]
        lengths = batch.get("lengths")
        if lengths is None:
            lengths = torch.full((wav.shape[0],), n, dtype=torch.long, device=wav.device)
        else:
            lengths = lengths.to(wav.device).long().clamp(max=n)
        if self.peak_normalize:
            peak = wav.abs().amax(dim=-1, keepdim=True).clamp(min=1e-8)
            wav = wav * torch.clamp(0.95 / peak, max=100.0)
        return wav, lengths

    def augment_gain(self, wav: Tensor) -> Tensor:
        """Random gain per item, uniform in ``gain_db`` dB, capped so that no item exceeds a 0.99 peak."""
        return random_gain(wav, self.gain_db)

    # ---- steps ----------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], optimizer_idx: int = 0) -> dict[str, Tensor]:
        wav, lengths = self.target(batch)
        if self.gain_db is not None:
            wav = self.augment_gain(wav)
        loss = flow_matching_loss(self.generator, wav, lengths)
        return {"loss": loss, "cfm": loss.detach()}

    def validation_terms(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """CFM loss (fixed noise), and mel L1 / MR-STFT of a ``val_steps``-step sample against the crop."""
        g = self.generator
        wav, lengths = self.target(batch)
        gen = torch.Generator(device=wav.device).manual_seed(self.val_seed)
        out = {"cfm": flow_matching_loss(g, wav, lengths, generator=gen)}
        mel = g.frontend(wav)[0]
        frames = lengths // int(g.hop_length)
        fake, _ = g.sample(mel, frames, steps=self.val_steps, solver=self.val_solver,
                           temperature=self.val_temperature, seed=self.val_seed)
        n = min(fake.shape[-1], wav.shape[-1])
        fake, wav = fake[..., :n].float(), wav[..., :n]
        out["mel_l1"] = mel_l1(fake, wav, lambda x: g.frontend(x)[0])
        out["stft_sc"], out["stft_mag"] = multi_resolution_stft_loss(fake, wav, self.stft_resolutions)
        out["mrstft"] = out["stft_sc"] + out["stft_mag"]
        return out

    def validation_step(self, batch: dict[str, Any]) -> None:
        self._accumulate(self.validation_terms(batch), batch_size(batch))
