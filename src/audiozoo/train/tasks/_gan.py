"""Base classes of adversarial tasks (shared by ``gan``, ``vocoder`` and ``superres``; task modules never import
each other).

:class:`GANTask` -- GAN training in the HiFi-GAN style: discriminator step, then generator step, each with its own
optimizer and schedule (Kong et al. 2020, jik876/hifi-gan ``train.py``). Models: ``{"generator": G, <one or more
discriminators>: D...}``. Per micro-batch:

1. ``shared_forward``: ``fake = G(generator_input(batch))`` once, with gradients.
2. stage 0 (discriminators' optimizer): ``D(real)``, ``D(fake.detach())`` -> :func:`discriminator_loss`.
3. stage 1 (generator's optimizer, after D stepped): ``D(real)``, ``D(fake)`` ->
   ``lambda_adv * adversarial + lambda_fm * feature matching + lambda_recon * reconstruction``.

Real and fake go through each discriminator in one call (concatenated on the batch axis, then split),
so that a DDP-wrapped discriminator runs one forward per backward; this assumes discriminators without
batch statistics (HiFi-GAN's use weight/spectral norm, no BatchNorm). Subclasses override the hooks:
``generator_input``, ``target``, ``reconstruction_loss`` (HiFi-GAN: L1 of log-mels, x45).

:class:`WaveformGANTask` -- a mel-conditioned waveform generator (vocoder, super-resolution) trained on waveform
crops: the generator's own parameter-free front end computes its input mel from the crop; reconstruction terms
come from :meth:`WaveformGANTask.reconstruction_terms` (subclasses); discriminators are optional (reconstruction
only: one optimizer) and may be built from the recipe's ``discriminators`` specs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import ConfigError, DataError
from ...nn.discriminators import MultiPeriodDiscriminator, MultiScaleDiscriminator
from ...nn.discriminators_mbd import MultiBandDiscriminator
from ...nn.discriminators_mrd import MultiResolutionDiscriminator
from ...nn.discriminators_pwg import ParallelWaveGANDiscriminator
from ..losses import ADVERSARIAL, discriminator_loss, feature_matching_loss, generator_adversarial_loss
from ..optim import build_optimizer, build_scheduler
from ._common import check_gain_db, crop_to_hop, random_gain
from .base import Task, batch_size, unwrap

__all__ = ["DISCRIMINATORS", "GANTask", "WaveformGANTask"]

# ``discriminators: {name: {kind: ..., **kwargs}}`` in a recipe's task section
DISCRIMINATORS: dict[str, type[nn.Module]] = {
    "mpd": MultiPeriodDiscriminator, "msd": MultiScaleDiscriminator, "mbd": MultiBandDiscriminator,
    "mrd": MultiResolutionDiscriminator, "pwg": ParallelWaveGANDiscriminator}

Outputs = tuple[list[Tensor], list[list[Tensor]]]


class GANTask(Task):
    """Adversarial training with a reconstruction term.

    Args:
        lambda_adv, lambda_fm, lambda_recon: loss weights (HiFi-GAN: 1, 2, 45).
        adversarial: ``lsgan`` (HiFi-GAN) or ``hinge``.
        optim, schedule: generator optimizer/schedule (HiFi-GAN: AdamW lr 2e-4, betas (0.8, 0.99),
            ExponentialLR gamma 0.999 per epoch).
        d_optim, d_schedule: discriminators' (default: the generator's settings).
        generator_key: name of the generator in the models dict; every other model is a discriminator.
        warmup_adv_steps: generator-only steps before the adversarial terms switch on (0 = from the start;
            codecs/vocoders sometimes pretrain on reconstruction).
    """

    monitor = "recon"
    monitor_mode = "min"

    def __init__(self, *, lambda_adv: float = 1.0, lambda_fm: float = 2.0, lambda_recon: float = 45.0,
                 adversarial: str = "lsgan", optim: Mapping[str, Any] | None = None,
                 schedule: Mapping[str, Any] | None = None, d_optim: Mapping[str, Any] | None = None,
                 d_schedule: Mapping[str, Any] | None = None, generator_key: str = "generator",
                 warmup_adv_steps: int = 0) -> None:
        super().__init__(optim or {"name": "adamw", "lr": 2e-4, "betas": (0.8, 0.99)}, schedule)
        if adversarial not in ADVERSARIAL:
            raise ConfigError(f"unknown adversarial loss {adversarial!r}; choose one of {ADVERSARIAL}")
        self.lambda_adv, self.lambda_fm, self.lambda_recon = float(lambda_adv), float(lambda_fm), float(lambda_recon)
        self.adversarial = adversarial
        self.d_optim_cfg = dict(d_optim or self.optim_cfg)
        self.d_schedule_cfg = dict(d_schedule or self.schedule_cfg)
        self.generator_key = generator_key
        self.warmup_adv_steps = int(warmup_adv_steps)

    # ---- models ---------------------------------------------------------------------------------
    @property
    def generator(self) -> nn.Module:
        if self.generator_key not in self.models:
            raise ConfigError(f"GANTask needs a model named {self.generator_key!r}; got {sorted(self.models)}")
        return self.models[self.generator_key]

    @property
    def discriminators(self) -> dict[str, nn.Module]:
        d = {k: m for k, m in self.models.items() if k != self.generator_key}
        if not d:
            raise ConfigError("GANTask needs at least one discriminator besides the generator")
        return d

    def configure_optimizers(self, models: Mapping[str, nn.Module]) -> tuple[list[torch.optim.Optimizer], list[Any]]:
        """``[discriminators' optimizer, generator's optimizer]``: stage 0 is D, stage 1 is G."""
        g_params = [p for p in unwrap(models[self.generator_key]).parameters() if p.requires_grad]
        d_params = [p for k, m in models.items() if k != self.generator_key
                    for p in unwrap(m).parameters() if p.requires_grad]
        opt_d = build_optimizer(d_params, **self.d_optim_cfg)
        opt_g = build_optimizer(g_params, **self.optim_cfg)
        return [opt_d, opt_g], [build_scheduler(opt_d, total_steps=self.total_steps, **self.d_schedule_cfg),
                                build_scheduler(opt_g, total_steps=self.total_steps, **self.schedule_cfg)]

    # ---- hooks to override ----------------------------------------------------------------------
    def generator_input(self, batch: Mapping[str, Any]) -> Any:
        """What the generator consumes (default ``batch["input"]``; a vocoder: the mel)."""
        if "input" not in batch:
            raise DataError(f"GANTask batches need 'input' (or override generator_input); got {sorted(batch)}")
        return batch["input"]

    def target(self, batch: Mapping[str, Any]) -> Tensor:
        """The real signal (default ``batch["target"]``; a vocoder: the waveform)."""
        if "target" not in batch:
            raise DataError(f"GANTask batches need 'target' (or override target); got {sorted(batch)}")
        return batch["target"]

    def generate(self, batch: Mapping[str, Any]) -> Tensor:
        out = self.generator(self.generator_input(batch))
        return out[0] if isinstance(out, (tuple, list)) else out  # vocoders return (wav, lengths)

    def reconstruction_loss(self, fake: Tensor, real: Tensor, batch: Mapping[str, Any]) -> Tensor:
        """Default: L1 between fake and real (trimmed to the shorter length)."""
        n = min(fake.shape[-1], real.shape[-1])
        return F.l1_loss(fake[..., :n].float(), real[..., :n].float())

    def discriminate(self, disc: nn.Module, real: Tensor, fake: Tensor) -> tuple[Outputs, Outputs]:
        """``disc`` on real and fake in one call -> ((logits, fmaps) of real, (logits, fmaps) of fake).

        A discriminator returns a tensor, ``(logits, fmaps)`` with one entry per sub-discriminator, or
        ``(logit_tensor, fmap_list)`` for a single one.
        """
        n = min(fake.shape[-1], real.shape[-1])
        b = real.shape[0]
        out = disc(torch.cat([real[..., :n], fake[..., :n]], dim=0))
        if isinstance(out, Tensor):
            logits, fmaps = [out], [[]]
        else:
            logits, fmaps = out
            if isinstance(logits, Tensor):
                logits, fmaps = [logits], [list(fmaps)]
        split = lambda t: (t[:b], t[b:])  # noqa: E731
        lr, lf = zip(*(split(t) for t in logits))
        fr = [[split(t)[0] for t in fm] for fm in fmaps]
        ff = [[split(t)[1] for t in fm] for fm in fmaps]
        return (list(lr), fr), (list(lf), ff)

    # ---- steps ----------------------------------------------------------------------------------
    def shared_forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = dict(batch)
        out["fake"] = self.generate(batch)
        return out

    def _adv_on(self) -> bool:
        step = getattr(self.trainer, "step", 0) if self.trainer is not None else 0
        return step >= self.warmup_adv_steps

    def training_step(self, batch: dict[str, Any], optimizer_idx: int = 1) -> dict[str, Tensor]:
        real, fake = self.target(batch), batch["fake"]
        if optimizer_idx == 0:  # discriminators: fake is detached, D learns to tell them apart
            loss = real.new_zeros((), dtype=torch.float32)
            if self._adv_on():
                for d in self.discriminators.values():
                    (lr, _), (lf, _) = self.discriminate(d, real, fake.detach())
                    loss = loss + discriminator_loss(lr, lf, self.adversarial)
            if not loss.requires_grad:  # adversarial warm-up: nothing to learn yet
                loss = loss + sum(p.sum() * 0.0 for d in self.discriminators.values() for p in d.parameters())
            return {"loss": loss, "d_loss": loss.detach()}
        recon = self.reconstruction_loss(fake, real, batch)
        loss = self.lambda_recon * recon
        logs = {"recon": recon.detach()}
        if self._adv_on():
            adv, fm = recon.new_zeros(()), recon.new_zeros(())
            for d in self.discriminators.values():
                (_, fr), (lf, ff) = self.discriminate(d, real, fake)
                adv = adv + generator_adversarial_loss(lf, self.adversarial)
                fm = fm + feature_matching_loss(fr, ff)
            loss = loss + self.lambda_adv * adv + self.lambda_fm * fm
            logs.update(g_adv=adv.detach(), g_fm=fm.detach())
        logs["g_loss"] = loss.detach()
        return {"loss": loss, **logs}

    # ---- validation -----------------------------------------------------------------------------
    def validation_step(self, batch: dict[str, Any]) -> None:
        fake = self.generate(batch)
        recon = self.reconstruction_loss(fake, self.target(batch), batch)
        self._accumulate({"recon": recon}, batch_size(batch))


class WaveformGANTask(GANTask):
    """Train a mel-conditioned waveform generator on waveform crops (see the module docstring).

    The generator (``models[generator_key]`` or the recipe's single model) has a parameter-free ``frontend``
    (waveform ``(B, T)`` -> ``(log-mel (B, n_mels, L), lengths)``) and ``hop_length``; ``generator(mel)`` returns a
    waveform or ``(waveform, lengths)``. Subclasses implement :meth:`reconstruction_terms` (a dict holding the
    weighted sum ``recon``) and may override :meth:`generator_input` (e.g. a band-limited input) and
    :meth:`synthesize` (e.g. a generator that also returns spectra).

    Args:
        lambda_adv, lambda_fm, adversarial, warmup_adv_steps, optim, schedule, d_optim, d_schedule, generator_key:
            as :class:`GANTask` (used only when discriminators are given).
        gain_db: ``[low, high]``: train on crops scaled by a random gain in that range (dB), capped at a 0.99 peak;
            ``None`` (default): no augmentation.
        discriminators: ``{name: {kind: mpd | msd | mbd, **kwargs}}`` built at ``setup`` beside the generator (so
            they are optimised, checkpointed and resumed with the run); a recipe may instead give them as models.

    Batches: ``{"audio": (B, T), "lengths": (B,)}`` of fixed-length crops (padding is not masked).
    """

    monitor = "mel_l1"
    monitor_mode = "min"

    def __init__(self, *, lambda_adv: float = 1.0, lambda_fm: float = 2.0, adversarial: str = "lsgan",
                 optim: Mapping[str, Any] | None = None, schedule: Mapping[str, Any] | None = None,
                 d_optim: Mapping[str, Any] | None = None, d_schedule: Mapping[str, Any] | None = None,
                 generator_key: str = "generator", warmup_adv_steps: int = 0, gain_db: Sequence[float] | None = None,
                 discriminators: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        super().__init__(lambda_adv=lambda_adv, lambda_fm=lambda_fm, lambda_recon=1.0, adversarial=adversarial,
                         optim=optim, schedule=schedule, d_optim=d_optim, d_schedule=d_schedule,
                         generator_key=generator_key, warmup_adv_steps=warmup_adv_steps)
        self.discriminator_specs = {str(k): dict(v) for k, v in (discriminators or {}).items()}
        for name, spec in self.discriminator_specs.items():
            if spec.get("kind") not in DISCRIMINATORS:
                raise ConfigError(f"discriminator {name!r}: kind must be one of {sorted(DISCRIMINATORS)}, "
                                  f"got {spec.get('kind')!r}")
        self.gain_db = check_gain_db(gain_db)

    # ---- models / optimizers --------------------------------------------------------------------
    @property
    def generator(self) -> nn.Module:
        """``models[generator_key]``, or the only model (a recipe's single ``model:``)."""
        if len(self.models) == 1:
            return next(iter(self.models.values()))
        return super().generator

    def setup(self, trainer: Any) -> None:
        """Builds the recipe's ``discriminators`` (not registered models) beside the generator, as trainer
        models, so that they are optimised, checkpointed and resumed with the run."""
        super().setup(trainer)
        if self.discriminator_specs and len(trainer.models) == 1:
            self.generator_key = next(iter(trainer.models))
        for name, spec in self.discriminator_specs.items():
            if name not in trainer.models:
                kw = {k: v for k, v in spec.items() if k != "kind"}
                trainer.models[name] = DISCRIMINATORS[spec["kind"]](**kw).to(self.device).train()
        self.models = dict(trainer.models)

    @property
    def adversarial_on(self) -> bool:
        """Whether discriminators were given (else reconstruction-only, one optimizer)."""
        return len(self.models) > 1

    def configure_optimizers(self, models: Mapping[str, nn.Module]) -> tuple[list[torch.optim.Optimizer], list[Any]]:
        """GAN: ``[D, G]`` as :class:`GANTask`; generator only: ``[G]``."""
        if len(models) > 1:
            return super().configure_optimizers(models)
        params = [p for p in unwrap(next(iter(models.values()))).parameters() if p.requires_grad]
        opt = build_optimizer(params, **self.optim_cfg)
        return [opt], [build_scheduler(opt, total_steps=self.total_steps, **self.schedule_cfg)]

    # ---- data -> (mel, wav) ---------------------------------------------------------------------
    def _gen(self) -> nn.Module:
        return unwrap(self.generator)

    def target(self, batch: Mapping[str, Any]) -> Tensor:
        """The waveform crop ``(B, T')``, ``T'`` the largest multiple of the generator's hop <= T."""
        if "audio" not in batch:
            raise DataError(f"{type(self).__name__} batches need 'audio' (B, T); got {sorted(batch)}")
        return crop_to_hop(batch["audio"], int(self._gen().hop_length), 2, type(self).__name__)

    def generator_input(self, batch: Mapping[str, Any]) -> Tensor:
        """Log-mel ``(B, n_mels, L)`` of the crop, by the generator's front-end."""
        with torch.no_grad():
            mel, _ = self._gen().frontend(self.target(batch))
        return mel

    def augment_gain(self, wav: Tensor) -> Tensor:
        """Random gain per item, uniform in ``gain_db`` dB, capped so that no item exceeds a 0.99 peak."""
        return random_gain(wav, self.gain_db)

    def synthesize(self, mel: Tensor, out: dict[str, Any]) -> Tensor:
        """The generated waveform ``(B, T)`` of ``mel`` (may store extra outputs in ``out``)."""
        fake = self.generator(mel)
        return fake[0] if isinstance(fake, (tuple, list)) else fake

    def shared_forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = dict(batch)
        if self.gain_db is not None and self.generator.training and "audio" in batch:
            batch = {**batch, "audio": self.augment_gain(batch["audio"])}
            out["audio"] = batch["audio"]
        real = self.target(batch)
        mel = self.generator_input(batch)
        out["real"], out["mel"] = real, mel
        fake = self.synthesize(mel, out)
        n = min(fake.shape[-1], real.shape[-1])
        out["fake"], out["real"] = fake[..., :n], real[..., :n]
        return out

    # ---- losses ---------------------------------------------------------------------------------
    def _mel(self, wav: Tensor) -> Tensor:
        return self._gen().frontend(wav)[0]

    def reconstruction_terms(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Every reconstruction term of ``batch["fake"]`` against ``batch["real"]`` and their weighted sum
        ``recon`` (the generator's loss before the adversarial terms)."""
        raise NotImplementedError

    def reconstruction_loss(self, fake: Tensor, real: Tensor, batch: Mapping[str, Any]) -> Tensor:
        return self.reconstruction_terms({**batch, "fake": fake, "real": real})["recon"]

    # ---- steps ----------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], optimizer_idx: int = 0) -> dict[str, Tensor]:
        batch = {**batch, "target": batch["real"]}
        if self.adversarial_on:
            if optimizer_idx == 0:
                return super().training_step(batch, 0)
            return self._generator_step(batch)
        return self._generator_step(batch)

    def _generator_step(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        terms = self.reconstruction_terms(batch)
        loss = terms["recon"]
        logs = {k: v.detach() for k, v in terms.items()}
        if self.adversarial_on and self._adv_on():
            real, fake = batch["real"], batch["fake"]
            adv, fm = loss.new_zeros(()), loss.new_zeros(())
            for d in self.discriminators.values():
                (_, fr), (lf, ff) = self.discriminate(d, real, fake)
                adv = adv + generator_adversarial_loss(lf, self.adversarial)
                fm = fm + feature_matching_loss(fr, ff)
            loss = loss + self.lambda_adv * adv + self.lambda_fm * fm
            logs.update(g_adv=adv.detach(), g_fm=fm.detach())
        return {"loss": loss, **logs}

    def validation_step(self, batch: dict[str, Any]) -> None:
        batch = self.shared_forward(batch)
        terms = self.reconstruction_terms(batch)
        self._accumulate(terms, batch_size(batch))
