"""Neural codec training: waveform -> codes -> waveform, reconstruction + commitment + (optional) adversarial terms.

Models: ``{"model": codec}`` (reconstruction only: one optimizer) or with discriminators (built from the recipe's
``discriminators`` specs, HiFi-GAN-style D step then G step; :class:`~audiozoo.train.tasks._gan.WaveformGANTask`).
The codec's ``forward(wav)`` returns ``(audio (B, T), codes (B, Q, L), vq: VQOutput, ...)``
(:class:`audiozoo.models.codec.encodec.EnCodec`, :class:`~audiozoo.models.codec.wavtokenizer.WavTokenizer`); its
quantisers update their EMA codebooks in that forward (k-means on the first batch, dead codes replaced).

Generator loss, as the systems define it:

* ``"mel"``: L1 of log mel spectrograms (``log(max(mel, 1e-7))``, magnitude mels, HTK scale without
  normalisation, n_fft 1024 / hop 256 / 100 bands at 24 kHz: Vocos' and WavTokenizer's ``MelSpecReconstructionLoss``;
  weight 45 in both);
* ``"mrstft"``: the multi-resolution STFT loss (spectral convergence + log-magnitude L1, Yamamoto et al. 2020);
* ``"l1"``: the waveform L1 (EnCodec's time-domain term, weight 0.1);
* ``commitment``: ``||z - sg[q]||^2`` averaged over codebooks (EnCodec weight 1; WavTokenizer 1000);
* adversarial + feature matching from the discriminators (``mpd``, ``msd``, ``mbd``: WavTokenizer uses MPD + a
  multi-resolution discriminator + DAC's multi-band STFT discriminator; EnCodec its multi-scale STFT one).

Bitrate / conditioning during training: ``bandwidths`` (kbps; EnCodec Section 3.2 samples one per batch among 1.5 to
24) -> ``model(wav, bandwidth=b)``; ``bandwidth_ids: n`` -> a random AdaLayerNorm id in ``[0, n)`` per step
(WavTokenizer's training; validation uses id 0 and the largest bandwidth).

Metrics: ``mel_l1`` (monitored), ``commitment``, and codebook usage from the codes: ``perplexity`` (``exp`` of the
entropy of the code histogram, averaged over codebooks; at most the codebook size) and ``usage`` (the fraction of
codes used at least once), over each training batch and over the whole validation set.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ...dsp.mel import MelSpectrogram
from ...errors import ConfigError
from ..losses.mel import mel_l1
from ..losses.quantize import commitment_loss
from ..losses.stft import PWG_RESOLUTIONS, check_resolutions, multi_resolution_stft_loss
from ._common import code_histogram, codebook_perplexity
from ._gan import WaveformGANTask
from .base import batch_size, register_task

__all__ = ["CodecTask", "code_histogram", "codebook_perplexity"]

LOSSES = ("mel", "mrstft", "l1")


@register_task("codec")
class CodecTask(WaveformGANTask):
    """Train a neural codec on waveform crops (see the module docstring).

    Args:
        losses: reconstruction terms, any of ``"mel"``, ``"mrstft"``, ``"l1"``.
        lambda_mel, lambda_stft, lambda_l1, lambda_commit: their weights (defaults: 45, 1, 0.1, 1).
        mel: settings of the loss mel (``n_fft``, ``hop_length``, ``n_mels``; Vocos: 1024, 256, 100).
        stft_resolutions: MR-STFT ``(n_fft, hop, win)`` triples (default Parallel WaveGAN's).
        bandwidths: target bandwidths (kbps) sampled per training step (models with a ``bandwidth`` argument).
        bandwidth_ids: sample an AdaLayerNorm id in ``[0, bandwidth_ids)`` per training step (WavTokenizer: 4).
        gain_db, discriminators, lambda_adv, lambda_fm, adversarial, warmup_adv_steps, optim, schedule, d_optim,
            d_schedule, generator_key: as :class:`~audiozoo.train.tasks._gan.WaveformGANTask`.

    Batches: ``{"audio": (B, T), "lengths": (B,)}`` of fixed-length crops (trimmed to a multiple of the hop).
    """

    monitor = "mel_l1"
    monitor_mode = "min"

    def __init__(self, *, losses: Sequence[str] = ("mel", "mrstft"), lambda_mel: float = 45.0,
                 lambda_stft: float = 1.0, lambda_l1: float = 0.1, lambda_commit: float = 1.0,
                 mel: Mapping[str, int] | None = None,
                 stft_resolutions: Sequence[Sequence[int]] = PWG_RESOLUTIONS,
                 bandwidths: Sequence[float] | None = None, bandwidth_ids: int | None = None,
                 lambda_adv: float = 1.0, lambda_fm: float = 2.0, adversarial: str = "lsgan",
                 optim: Mapping[str, Any] | None = None, schedule: Mapping[str, Any] | None = None,
                 d_optim: Mapping[str, Any] | None = None, d_schedule: Mapping[str, Any] | None = None,
                 generator_key: str = "generator", warmup_adv_steps: int = 0, gain_db: Sequence[float] | None = None,
                 discriminators: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        super().__init__(lambda_adv=lambda_adv, lambda_fm=lambda_fm, adversarial=adversarial, optim=optim,
                         schedule=schedule, d_optim=d_optim, d_schedule=d_schedule, generator_key=generator_key,
                         warmup_adv_steps=warmup_adv_steps, gain_db=gain_db, discriminators=discriminators)
        losses = [losses] if isinstance(losses, str) else list(losses)
        if not losses or any(x not in LOSSES for x in losses):
            raise ConfigError(f"CodecTask losses must be a non-empty subset of {LOSSES}, got {losses}")
        if min(lambda_mel, lambda_stft, lambda_l1, lambda_commit) < 0:
            raise ConfigError("CodecTask loss weights must be >= 0")
        self.losses = losses
        self.lambda_mel, self.lambda_stft = float(lambda_mel), float(lambda_stft)
        self.lambda_l1, self.lambda_commit = float(lambda_l1), float(lambda_commit)
        self.mel_cfg = {"n_fft": 1024, "hop_length": 256, "n_mels": 100, **dict(mel or {})}
        bad = set(self.mel_cfg) - {"n_fft", "hop_length", "n_mels"}
        if bad:
            raise ConfigError(f"CodecTask mel settings are n_fft, hop_length, n_mels; got {sorted(bad)}")
        self.stft_resolutions = check_resolutions(stft_resolutions)
        self.bandwidths = [float(b) for b in bandwidths] if bandwidths else None
        if bandwidth_ids is not None and int(bandwidth_ids) < 1:
            raise ConfigError(f"bandwidth_ids must be >= 1, got {bandwidth_ids}")
        self.bandwidth_ids = int(bandwidth_ids) if bandwidth_ids else None
        self._mel_fn: MelSpectrogram | None = None
        self._val_counts: Tensor | None = None

    # ---- the loss mel ---------------------------------------------------------------------------
    def _mel(self, wav: Tensor) -> Tensor:
        if self._mel_fn is None:
            c = self.mel_cfg
            # torchaudio.transforms.MelSpectrogram defaults, as Vocos uses them: HTK mels, no norm, reflect, power 1
            self._mel_fn = MelSpectrogram(int(self._gen().sample_rate), c["n_fft"], c["hop_length"],
                                          n_mels=c["n_mels"], power=1.0, htk=True, norm=None, pad_mode="reflect")
        self._mel_fn = self._mel_fn.to(wav.device)
        return torch.log(self._mel_fn(wav.float()).clamp(min=1e-7))

    # ---- forward --------------------------------------------------------------------------------
    def _codec_kwargs(self) -> dict[str, Any]:
        training = self._gen().training
        kw: dict[str, Any] = {}
        if self.bandwidths:
            kw["bandwidth"] = random.choice(self.bandwidths) if training else max(self.bandwidths)
        if self.bandwidth_ids:
            kw["bandwidth_id"] = random.randrange(self.bandwidth_ids) if training else 0
        return kw

    def shared_forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = dict(batch)
        if self.gain_db is not None and self.generator.training and "audio" in batch:
            batch = {**batch, "audio": self.augment_gain(batch["audio"])}
            out["audio"] = batch["audio"]
        real = self.target(batch)
        res = self.generator(real, **self._codec_kwargs())
        fake, codes, vq = res[0], res[1], res[2]
        n = min(fake.shape[-1], real.shape[-1])
        out.update(real=real[..., :n], fake=fake[..., :n], codes=codes, vq=vq)
        return out

    # ---- losses ---------------------------------------------------------------------------------
    def reconstruction_terms(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Every term (unweighted), their weighted sum ``recon`` (commitment included) and the codebook metrics."""
        fake, real = batch["fake"].float(), batch["real"].float()
        out: dict[str, Tensor] = {"mel_l1": mel_l1(fake, real, self._mel)}
        total = self.lambda_mel * out["mel_l1"] if "mel" in self.losses else fake.new_zeros(())
        if "mrstft" in self.losses:
            out["stft_sc"], out["stft_mag"] = multi_resolution_stft_loss(fake, real, self.stft_resolutions)
            total = total + self.lambda_stft * (out["stft_sc"] + out["stft_mag"])
        if "l1" in self.losses:
            out["wave_l1"] = F.l1_loss(fake, real)
            total = total + self.lambda_l1 * out["wave_l1"]
        out["commitment"] = commitment_loss(batch["vq"])
        total = total + self.lambda_commit * out["commitment"]
        out["recon"] = total
        k = self._gen().codebook_size
        if k:
            out["perplexity"], out["usage"] = (v.detach() for v in codebook_perplexity(code_histogram(
                batch["codes"], int(k))))
        return out

    # ---- validation: codebook usage over the whole set --------------------------------------------
    def on_validation_start(self) -> None:
        super().on_validation_start()
        self._val_counts = None

    def validation_step(self, batch: dict[str, Any]) -> None:
        batch = self.shared_forward(batch)
        terms = self.reconstruction_terms(batch)
        self._accumulate({k: v for k, v in terms.items() if k not in ("perplexity", "usage")}, batch_size(batch))
        k = self._gen().codebook_size
        if k:
            counts = code_histogram(batch["codes"], int(k))
            self._val_counts = counts if self._val_counts is None else self._val_counts + counts

    def validation_end(self) -> dict[str, float]:
        metrics = super().validation_end()
        if self._val_counts is not None:
            ppl, usage = codebook_perplexity(self._val_counts)
            metrics.update(perplexity=float(ppl), usage=float(usage))
        return metrics
