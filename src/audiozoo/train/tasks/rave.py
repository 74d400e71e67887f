"""RAVE's two-stage training (Caillon & Esling 2021, arXiv:2111.05011, Sec. 3; acids-ircam/RAVE ``rave/model.py``
``RAVE.training_step``, ``rave/core.py`` ``AudioDistanceV1`` / ``MultiScaleSTFT`` / ``hinge_gan``,
``rave/discriminator.py``, ``rave/configs/v1.gin``).

Stage 1 (representation learning, steps ``< phase_1_steps``; v1: 1,000,000): the generator loss is

    multi-scale spectral distance on the PQMF bands + the same on the full-band waveform + beta * KL

with, per STFT scale ``n`` (Hann window ``n``, hop ``n/4``, centred, reflect padding; v1 scales 2048 ... 128):
``||X - Y||^2 / ||X||^2`` (a relative squared error of magnitudes) + ``mean|log(X + 1e-7) - log(Y + 1e-7)|``,
summed over scales (:func:`audiozoo.train.losses.stft.spectral_distance`); KL of the model's posterior
(``mean``, ``std``) as the official code computes it (:func:`audiozoo.train.losses.kl.rave_kl`), beta 0.1 (v1:
fixed).

Stage 2 (adversarial fine-tuning): the model's ``warmed_up`` flag is set: the encoder output is detached and its
parameters frozen, the noise synthesiser is added to the decoder output; a multi-scale discriminator is trained
with the hinge loss and the generator gets ``lambda_adv`` x hinge adversarial loss + ``lambda_fm`` x feature
matching (per scale, the mean over its feature maps of the L1 distance; averaged over scales) on top of the
spectral distances. v1.gin sets the feature-matching weight to 10; acids-rave 2.3.1 multiplies that weight in
twice (``loss_gen['feature_matching']`` already holds ``10 x`` and the sum multiplies by ``weights['feature_matching']``
again), i.e. an effective 100. ``lambda_fm`` defaults to 10 (the configured value).

Discriminator: the official v1 one by default (:class:`RAVEDiscriminator`: 3 scales, average pooling by 2 between
them, each a ConvNet 1 -> 64 -> 128 -> 256 -> 512 channels, kernel 15, stride 4, weight norm, LeakyReLU 0.2, then a
1x1 conv to one channel), or HiFi-GAN's MSD from :mod:`audiozoo.nn.discriminators` (``kind: hifigan_msd``). The task
builds it at ``setup`` and adds it to the trainer's models (``discriminator``), so it is checkpointed and resumed
with the run; a recipe may instead pass its own model under that name.

Departures from the official loop: the engine steps the discriminator, then the generator on every batch (the
official code alternates: discriminator on even batches, generator on odd ones, in stage 2); optimizers and
schedules come from the recipe (official: Adam lr 1e-3 (generator) / 1e-4 (discriminator), betas (0.5, 0.9), a
linear decay of the generator's rate to 0.1x over stage 1).

Batches: ``{"audio": (B, T)}`` waveform crops (``T`` is cropped to a multiple of the model's ``hop_length``).
Validation reports ``distance`` (the full-band spectral distance, the official ``validation`` metric), ``mb_distance``
and ``kl``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from ...errors import ConfigError, DataError
from ..losses import discriminator_loss, feature_matching_loss, generator_adversarial_loss
from ..losses.kl import rave_kl
from ..losses.stft import RAVE_V1_SCALES, spectral_distance
from ..optim import build_optimizer, build_scheduler
from ._common import check_gain_db, crop_to_hop, random_gain
from .base import Task, batch_size, register_task, unwrap

__all__ = ["RAVEDiscriminator", "RAVETask", "band_noise_baseline", "spectral_distance"]

V1_SCALES = RAVE_V1_SCALES


@torch.no_grad()
def band_noise_baseline(wav: Tensor, pqmf: nn.Module, frame: int, generator: torch.Generator | None = None) -> Tensor:
    """A trivial reference "codec": Gaussian noise in each PQMF band with that band's RMS per ``frame`` band samples.

    ``wav (B, T)`` (``T`` a multiple of ``pqmf.n_band * frame``) -> ``(B, T)``. It knows the coarse spectral envelope
    (M bands at the latent frame rate when ``frame = hop_length / M``) and nothing of the fine structure.
    """
    bands = pqmf(wav)
    b, m, n = bands.shape
    if n % frame:
        raise DataError(f"band_noise_baseline: {n} band samples are not a multiple of frame {frame}")
    rms = bands.reshape(b, m, n // frame, frame).square().mean(-1, keepdim=True).sqrt()
    noise = torch.randn(bands.shape, generator=generator, dtype=bands.dtype).reshape(b, m, n // frame, frame)
    return pqmf.inverse((noise * rms).reshape(b, m, n))


class _ConvNet(nn.Module):
    """One scale of RAVE v1's discriminator (official ``discriminator.ConvNet``): ``(B, 1, T)`` -> feature maps
    (every conv output, before its activation; the last is the score map)."""

    def __init__(self, capacity: int, n_layers: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        chans = [1] + [capacity * 2**i for i in range(n_layers)]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv1d(chans[i], chans[i + 1], kernel_size, stride=stride, padding=(kernel_size - 1) // 2))
            for i in range(n_layers))
        self.out = nn.Conv1d(chans[-1], 1, 1)

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        for conv in self.convs:
            x = conv(x)
            feats.append(x)
            x = F.leaky_relu(x, 0.2)
        feats.append(self.out(x))
        return feats


class RAVEDiscriminator(nn.Module):
    """RAVE v1 multi-scale discriminator: ``(B, T)`` -> ``(scores: list of (B, 1, T_s), fmaps: list of lists)``.

    v1.gin: 3 scales, capacity 64, 4 layers, kernel 15, stride 4 (``avg_pool1d(x, 2)`` between scales).
    """

    def __init__(self, capacity: int = 64, n_layers: int = 4, kernel_size: int = 15, stride: int = 4,
                 n_scales: int = 3) -> None:
        super().__init__()
        if n_scales < 1 or n_layers < 1 or capacity < 1:
            raise ConfigError("RAVEDiscriminator needs n_scales, n_layers and capacity >= 1")
        self.nets = nn.ModuleList(_ConvNet(capacity, n_layers, kernel_size, stride) for _ in range(n_scales))

    def forward(self, y: Tensor) -> tuple[list[Tensor], list[list[Tensor]]]:
        x = y.unsqueeze(1) if y.ndim == 2 else y
        scores, fmaps = [], []
        for i, net in enumerate(self.nets):
            if i:
                x = F.avg_pool1d(x, 2)
            feats = net(x)
            scores.append(feats[-1])
            fmaps.append(feats)
        return scores, fmaps


def build_discriminator(spec: Mapping[str, Any] | None) -> nn.Module:
    """``{"kind": "rave", capacity, n_layers, kernel_size, stride, n_scales}`` or ``{"kind": "hifigan_msd",
    num_scales, width}``."""
    spec = dict(spec or {})
    kind = spec.pop("kind", "rave")
    if kind == "rave":
        return RAVEDiscriminator(**spec)
    if kind == "hifigan_msd":
        from ...nn.discriminators import MultiScaleDiscriminator

        return MultiScaleDiscriminator(**spec)
    raise ConfigError(f"unknown discriminator kind {kind!r}; choose 'rave' or 'hifigan_msd'")


@register_task("rave")
class RAVETask(Task):
    """Train a RAVE model in two stages (see the module docstring).

    Args:
        phase_1_steps: optimizer steps of stage 1 before the adversarial stage 2 (v1: 1,000,000).
        beta: KL weight (v1: 0.1).
        stft_scales: full-band STFT sizes (v1: 2048 ... 128); band_stft_scales: for the PQMF bands (default:
            the same; scales too long for the band signals are skipped).
        lambda_adv, lambda_fm: adversarial / feature-matching weights of stage 2 (v1.gin: 1, 10).
        discriminator: spec for :func:`build_discriminator` (default: RAVE v1's), used unless the models
            already hold a ``discriminator``.
        gain_db: ``[low, high]``: training crops get a random gain in that range (dB), capped at a 0.99 peak
            (the official ``augmentations/gain.gin`` does the same kind of augmentation); ``None``: off.
        optim, schedule: generator (encoder + decoder) optimizer; d_optim, d_schedule: discriminator's
            (default: official Adam 1e-3 / 1e-4, betas (0.5, 0.9)).
    """

    monitor = "distance"
    monitor_mode = "min"

    def __init__(self, *, phase_1_steps: int = 1_000_000, beta: float = 0.1,
                 stft_scales: Sequence[int] = V1_SCALES, band_stft_scales: Sequence[int] | None = None,
                 log_epsilon: float = 1e-7, lambda_adv: float = 1.0, lambda_fm: float = 10.0,
                 discriminator: Mapping[str, Any] | None = None, optim: Mapping[str, Any] | None = None,
                 schedule: Mapping[str, Any] | None = None, d_optim: Mapping[str, Any] | None = None,
                 d_schedule: Mapping[str, Any] | None = None, model_key: str | None = None,
                 gain_db: Sequence[float] | None = None) -> None:
        super().__init__(optim or {"name": "adam", "lr": 1e-3, "betas": (0.5, 0.9)}, schedule)
        if int(phase_1_steps) < 0:
            raise ConfigError(f"phase_1_steps must be >= 0, got {phase_1_steps}")
        if not stft_scales or any(int(s) < 4 for s in stft_scales):
            raise ConfigError(f"stft_scales must be STFT sizes >= 4, got {stft_scales}")
        self.phase_1_steps = int(phase_1_steps)
        self.beta, self.log_epsilon = float(beta), float(log_epsilon)
        self.stft_scales = tuple(int(s) for s in stft_scales)
        self.band_stft_scales = tuple(int(s) for s in (band_stft_scales or stft_scales))
        self.lambda_adv, self.lambda_fm = float(lambda_adv), float(lambda_fm)
        self.discriminator_spec = dict(discriminator or {})
        build_discriminator(self.discriminator_spec)  # fail early on a bad spec
        self.d_optim_cfg = dict(d_optim or {"name": "adam", "lr": 1e-4, "betas": (0.5, 0.9)})
        self.d_schedule_cfg = dict(d_schedule or {"name": "constant"})
        self.model_key = model_key
        self.gain_db = check_gain_db(gain_db)

    # ---- models ---------------------------------------------------------------------------------
    @property
    def generator(self) -> nn.Module:
        """The RAVE model: ``models[model_key]`` or the first model that is not the discriminator."""
        if self.model_key is not None:
            return self.models[self.model_key]
        return next(m for k, m in self.models.items() if k != "discriminator")

    @property
    def discriminator(self) -> nn.Module:
        if "discriminator" not in self.models:
            raise ConfigError("RAVETask has no discriminator (it is built at setup)")
        return self.models["discriminator"]

    def setup(self, trainer: Any) -> None:
        super().setup(trainer)
        if "discriminator" not in trainer.models:
            trainer.models["discriminator"] = build_discriminator(self.discriminator_spec).to(self.device).train()
            self.models = dict(trainer.models)

    def configure_optimizers(self, models: Mapping[str, nn.Module]) -> tuple[list[torch.optim.Optimizer], list[Any]]:
        """``[discriminator's optimizer, generator's optimizer]`` (stage 0 is D, stage 1 is G)."""
        g = [p for k, m in models.items() if k != "discriminator" for p in unwrap(m).parameters()]
        d = [p for p in unwrap(models["discriminator"]).parameters()]
        opt_d, opt_g = build_optimizer(d, **self.d_optim_cfg), build_optimizer(g, **self.optim_cfg)
        return [opt_d, opt_g], [build_scheduler(opt_d, total_steps=self.total_steps, **self.d_schedule_cfg),
                                build_scheduler(opt_g, total_steps=self.total_steps, **self.schedule_cfg)]

    # ---- stages ---------------------------------------------------------------------------------
    def stage_for_step(self, step: int) -> int:
        return 2 if step >= self.phase_1_steps else 1

    def _sync_stage(self) -> int:
        step = getattr(self.trainer, "step", 0) if self.trainer is not None else 0
        stage = self.stage_for_step(step)
        model = unwrap(self.generator)
        frozen = not any(p.requires_grad for p in model.encoder.parameters())
        if model.stage != stage or frozen != (stage == 2):
            model.set_warmed_up(stage == 2)  # also restores the freeze after a resume
        return stage

    # ---- steps ----------------------------------------------------------------------------------
    def _audio(self, batch: Mapping[str, Any]) -> Tensor:
        if "audio" not in batch:
            raise DataError(f"RAVETask batches need 'audio' (B, T); got {sorted(batch)}")
        return crop_to_hop(batch["audio"], int(unwrap(self.generator).hop_length), 1, "RAVETask (one latent frame)")

    def shared_forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        stage = self._sync_stage() if self.generator.training else unwrap(self.generator).stage
        real = self._audio(batch)
        if self.gain_db is not None and self.generator.training:
            real = random_gain(real, self.gain_db)
        out = self.generator(real)
        return {**batch, "real": real, "fake": out.wav, "real_bands": out.target_bands, "fake_bands": out.bands,
                "kl": rave_kl(out.mean, out.std), "stage": stage}

    def distances(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        mb = spectral_distance(batch["real_bands"], batch["fake_bands"], self.band_stft_scales, self.log_epsilon)
        fb = spectral_distance(batch["real"], batch["fake"], self.stft_scales, self.log_epsilon)
        return {"mb_distance": mb, "distance": fb, "kl": batch["kl"].float()}

    def training_step(self, batch: dict[str, Any], optimizer_idx: int = 1) -> dict[str, Tensor]:
        real, fake, stage = batch["real"], batch["fake"], batch["stage"]
        if optimizer_idx == 0:  # discriminator (stage 2 only; stage 1: a zero loss that keeps the engine's contract)
            d = self.discriminator
            if stage == 2:
                scores_real, _ = d(real)
                scores_fake, _ = d(fake.detach())
                loss = discriminator_loss(scores_real, scores_fake, "hinge")
                return {"loss": loss, "d_loss": loss.detach()}
            return {"loss": sum(p.sum() * 0.0 for p in d.parameters())}
        terms = self.distances(batch)
        loss = terms["mb_distance"] + terms["distance"] + self.beta * terms["kl"]
        logs = {k: v.detach() for k, v in terms.items()}
        if stage == 2:
            _, fmaps_real = self.discriminator(real)
            scores_fake, fmaps_fake = self.discriminator(fake)
            adv = generator_adversarial_loss(scores_fake, "hinge")
            fm = sum(feature_matching_loss([r], [f]) / len(r) for r, f in zip(fmaps_real, fmaps_fake)) / len(fmaps_real)
            loss = loss + self.lambda_adv * adv + self.lambda_fm * fm
            logs.update(g_adv=adv.detach(), g_fm=fm.detach())
        return {"loss": loss, **logs}

    def validation_step(self, batch: dict[str, Any]) -> None:
        batch = self.shared_forward(batch)
        self._accumulate(self.distances(batch), batch_size(batch))
