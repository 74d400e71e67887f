"""Spectrogram VQGAN training (SpecVQGAN's codebook stage; Iashin & Rahtu 2021, arXiv:2110.08791, Section 3.1).

The official loss (``specvqgan/modules/losses/vqperceptual.py`` ``VQLPAPSWithDiscriminator``, taming-transformers'
``VQLPIPSWithDiscriminator`` with LPAPS), on the codec's network-domain mels ``x`` and reconstructions ``x_hat``
``(B, 1, n_mels, M)``:

* ``nll = mean |x - x_hat| + perceptual_weight * mean LPAPS(x, x_hat)`` (``rec_loss``, the monitored metric);
* ``q_loss = ||sg[e] - z||^2 + codebook_beta ||e - sg[z]||^2`` (the official ``VectorQuantizer`` loss: weight 1 on
  the encoder's commitment, 0.25 on the codebook term; an EMA codebook ignores the latter), times
  ``codebook_weight``;
* from step ``disc_start`` on, a PatchGAN (:class:`audiozoo.nn.autoencoder2d.NLayerDiscriminator`, ``ndf 64``,
  3 layers) with the hinge loss: the generator adds ``lambda * disc_factor * (-mean D(x_hat))``, ``lambda`` the
  adaptive weight (:func:`audiozoo.train.losses.vqgan.adaptive_weight`: gradient-norm ratio at the decoder's last
  layer, clamped to ``[min_adapt_weight, max_adapt_weight]``, times ``disc_weight``); the discriminator is trained
  on ``x`` against ``x_hat.detach()``.

Two optimizers when a discriminator is used (the official order: autoencoder, then discriminator; Adam betas
(0.5, 0.9) in the paper's configs), one otherwise (``disc_start: null``). The paper's VGGSound config:
``disc_start 30001, disc_weight 0.8, codebook_weight 1, perceptual_weight 1, min/max_adapt_weight 1`` (so the
adaptive weight is in effect a constant 0.8), lr 4.5e-6 x batch size.

LPAPS (:class:`audiozoo.train.losses.lpaps.LPAPS`) needs a spectrogram classifier: ``lpaps: {model: SPEC}`` is
resolved here (``vggishish_small.TAG``, a folder, or a module), frozen; its per-bin input statistics (a
``VGGishish``'s ``norm_means``/``norm_stds``) scale the codec's [-1, 1] mels as the official ``ScalingLayer``
when the codec codes SpecVQGAN's own mel (``scaling: auto``), else the mels go in as they are.

Batches: ``{"audio": (B, T)}`` crops (the codec's front end makes the mel; ``gain_db`` augments the level) or
``{"mel": (B, n_mels, M)}`` front-end log-mels. Metrics: ``rec_loss``, ``l1``, ``p_loss``, ``q_loss``,
``commitment``, ``codebook``, ``g_loss``, ``d_weight``, ``d_loss``, and the codebook's ``perplexity`` / ``usage``
(all ``Q`` rows share one codebook, so counted together), per batch and over the validation set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ...errors import ConfigError, DataError
from ...nn.autoencoder2d import NLayerDiscriminator
from ..losses.lpaps import LPAPS, probe_channels
from ..losses.quantize import vq_losses
from ..losses.vqgan import VQGAN_D_LOSSES, adaptive_weight, vqgan_discriminator_loss
from ..optim import build_optimizer, build_scheduler
from ._common import check_gain_db, code_histogram, codebook_perplexity, random_gain
from .base import Task, batch_size, register_task, unwrap

__all__ = ["SpecVQGANTask"]


@register_task("specvqgan")
class SpecVQGANTask(Task):
    """Train a spectrogram VQGAN codebook (see the module docstring).

    Args:
        perceptual_weight: LPAPS weight (0 disables it; then ``lpaps`` is not needed).
        lpaps: ``{"model": spec, "method": "feature_maps", "scaling": "auto" | "none", "lin_init": 1.0,
            "use_dropout": True, "trained": True}``.
        codebook_weight, codebook_beta: weight of the quantiser loss and of its codebook term (1, 0.25).
        disc_start: first step with the adversarial terms (``None``: no discriminator, one optimizer).
        disc_weight, disc_factor, disc_loss: adaptive-weight scale (0.8 in the paper's configs), the factor
            after ``disc_start`` (1), ``"hinge"`` or ``"vanilla"``.
        min_adapt_weight, max_adapt_weight: clamp of the adaptive weight (taming: 0, 1e4; SpecVQGAN's configs 1, 1).
        disc: PatchGAN settings ``{"ndf": 64, "n_layers": 3}``.
        optim, schedule, d_optim, d_schedule: autoencoder's and discriminator's (default: the autoencoder's).
        gain_db: random level ``[low, high]`` dB for audio batches (capped at a 0.99 peak); ``None``: none.
    """

    monitor = "rec_loss"
    monitor_mode = "min"

    def __init__(self, *, perceptual_weight: float = 1.0, lpaps: Mapping[str, Any] | None = None,
                 codebook_weight: float = 1.0, codebook_beta: float = 0.25, disc_start: int | None = 30001,
                 disc_weight: float = 0.8, disc_factor: float = 1.0, disc_loss: str = "hinge",
                 min_adapt_weight: float = 0.0, max_adapt_weight: float = 1e4, disc: Mapping[str, Any] | None = None,
                 optim: Mapping[str, Any] | None = None, schedule: Mapping[str, Any] | None = None,
                 d_optim: Mapping[str, Any] | None = None, d_schedule: Mapping[str, Any] | None = None,
                 gain_db: Sequence[float] | None = None) -> None:
        super().__init__(optim or {"name": "adam", "lr": 4.5e-6, "betas": (0.5, 0.9)}, schedule)
        if min(perceptual_weight, codebook_weight, codebook_beta, disc_weight, disc_factor) < 0:
            raise ConfigError("SpecVQGANTask weights must be >= 0")
        if disc_loss not in VQGAN_D_LOSSES:
            raise ConfigError(f"disc_loss must be one of {VQGAN_D_LOSSES}, got {disc_loss!r}")
        if not 0 <= min_adapt_weight <= max_adapt_weight:
            raise ConfigError(f"need 0 <= min_adapt_weight <= max_adapt_weight, got {min_adapt_weight}, "
                              f"{max_adapt_weight}")
        self.perceptual_weight, self.codebook_weight = float(perceptual_weight), float(codebook_weight)
        self.codebook_beta = float(codebook_beta)
        self.lpaps_cfg = dict(lpaps or {})
        bad = set(self.lpaps_cfg) - {"model", "method", "scaling", "lin_init", "use_dropout", "trained"}
        if bad:
            raise ConfigError(f"lpaps settings are model, method, scaling, lin_init, use_dropout, trained; got "
                              f"{sorted(bad)}")
        if self.perceptual_weight > 0 and "model" not in self.lpaps_cfg:
            raise ConfigError("perceptual_weight > 0 needs lpaps: {model: <spectrogram classifier>} (e.g. a "
                              "vggishish weight set); set perceptual_weight: 0 to train without LPAPS")
        if self.lpaps_cfg.get("scaling", "auto") not in ("auto", "none"):
            raise ConfigError(f"lpaps scaling must be 'auto' or 'none', got {self.lpaps_cfg['scaling']!r}")
        self.disc_start = None if disc_start is None else int(disc_start)
        self.disc_weight, self.disc_factor, self.disc_loss = float(disc_weight), float(disc_factor), disc_loss
        self.min_adapt_weight, self.max_adapt_weight = float(min_adapt_weight), float(max_adapt_weight)
        self.disc_cfg = {"ndf": 64, "n_layers": 3, **dict(disc or {})}
        self.d_optim_cfg = dict(d_optim or self.optim_cfg)
        self.d_schedule_cfg = dict(d_schedule or self.schedule_cfg)
        self.gain_db = check_gain_db(gain_db)
        self.lpaps: LPAPS | None = None
        self.generator_key = "model"
        self._val_counts: Tensor | None = None

    # ---- models ---------------------------------------------------------------------------------
    @property
    def generator(self) -> nn.Module:
        return self.models[self.generator_key]

    @property
    def discriminator(self) -> nn.Module | None:
        return self.models.get("discriminator")

    def _codec(self) -> nn.Module:
        return unwrap(self.generator)

    def setup(self, trainer: Any) -> None:
        """Builds the PatchGAN beside the codec (as a trainer model: optimised, checkpointed, resumed) and LPAPS."""
        super().setup(trainer)
        keys = [k for k in trainer.models if k != "discriminator"]
        if len(keys) != 1:
            raise ConfigError(f"the specvqgan task trains one codec (and its discriminator); got models {keys}")
        self.generator_key = keys[0]
        codec = unwrap(trainer.models[self.generator_key])
        for attr in ("image", "forward_image", "normalize", "decoder"):
            if not hasattr(codec, attr):
                raise ConfigError(f"the specvqgan task trains a spectrogram VQGAN (models/codec/specvqgan.py); "
                                  f"{type(codec).__name__} has no {attr!r}")
        if self.disc_start is not None and "discriminator" not in trainer.models:
            trainer.models["discriminator"] = NLayerDiscriminator(1, **self.disc_cfg).to(self.device).train()
        self.models = dict(trainer.models)
        if self.perceptual_weight > 0 and self.lpaps is None:
            self.lpaps = self._build_lpaps(codec).to(self.device)

    def _build_lpaps(self, codec: nn.Module) -> LPAPS:
        from ...resolve import resolve_model

        cfg = self.lpaps_cfg
        net = resolve_model(cfg["model"], "classify", trained=bool(cfg.get("trained", True)))
        method = str(cfg.get("method", "feature_maps"))
        n_mels = int(codec.n_mels)
        shift: Tensor | float | None = None
        scale: Tensor | float | None = None
        ncfg = getattr(net, "config", None)
        means, stds = getattr(ncfg, "norm_means", None), getattr(ncfg, "norm_stds", None)
        ccfg = codec.config
        specvqgan_mel = (ccfg.mel_log == "log10" and ccfg.norm_clip is not None and abs(ccfg.norm_scale - 0.4) < 1e-9
                         and abs(ccfg.norm_offset - 0.6) < 1e-9)
        if cfg.get("scaling", "auto") == "auto" and specvqgan_mel and means is not None and len(means) == n_mels:
            # the classifier standardises the [0, 1] mel; the codec's [-1, 1] mel is 2 m - 1 (official ScalingLayer)
            shift = 2 * torch.tensor(means, dtype=torch.float32) - 1
            scale = 2 * torch.tensor(stds, dtype=torch.float32)
        channels = probe_channels(net, n_mels, method)
        return LPAPS(net, channels, method=method, shift=shift, scale=scale,
                     use_dropout=bool(cfg.get("use_dropout", True)), lin_init=float(cfg.get("lin_init", 1.0)))

    def configure_optimizers(self, models: Mapping[str, nn.Module]) -> tuple[list[torch.optim.Optimizer], list[Any]]:
        """``[autoencoder]`` or ``[autoencoder, discriminator]`` (the official order)."""
        g = [p for p in unwrap(models[self.generator_key]).parameters() if p.requires_grad]
        opt_g = build_optimizer(g, **self.optim_cfg)
        opts = [opt_g]
        scheds = [build_scheduler(opt_g, total_steps=self.total_steps, **self.schedule_cfg)]
        if "discriminator" in models:
            d = [p for p in unwrap(models["discriminator"]).parameters() if p.requires_grad]
            opt_d = build_optimizer(d, **self.d_optim_cfg)
            opts.append(opt_d)
            scheds.append(build_scheduler(opt_d, total_steps=self.total_steps, **self.d_schedule_cfg))
        return opts, scheds

    # ---- forward --------------------------------------------------------------------------------
    def shared_forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = dict(batch)
        codec = self._codec()
        if "mel" in batch:
            mel = batch["mel"].float()
            res = codec.forward_image(codec.normalize(mel[..., : mel.shape[-1] // codec.time_factor
                                                          * codec.time_factor]))
        elif "audio" in batch:
            wav = batch["audio"]
            if wav.ndim == 3 and wav.shape[1] == 1:
                wav = wav[:, 0]
            if self.gain_db is not None and self.generator.training:
                wav = random_gain(wav, self.gain_db)
            res = self.generator(wav.float())
        else:
            raise DataError(f"specvqgan batches need 'audio' (B, T) or 'mel' (B, n_mels, M); got {sorted(batch)}")
        out.update(x=res.input, x_rec=res.reconstruction, codes=res.codes, vq=res.vq)
        return out

    def _disc_on(self) -> bool:
        step = getattr(self.trainer, "step", 0) if self.trainer is not None else 0
        return self.discriminator is not None and self.disc_start is not None and step >= self.disc_start

    def reconstruction_terms(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """``l1``, ``p_loss``, ``rec_loss`` (= nll), the quantiser terms and the codebook usage of ``batch``."""
        x, x_rec = batch["x"].float(), batch["x_rec"].float()
        out = {"l1": (x - x_rec).abs().mean()}
        if self.lpaps is not None and self.perceptual_weight > 0:
            out["p_loss"] = self.lpaps(x, x_rec).mean()
            out["rec_loss"] = out["l1"] + self.perceptual_weight * out["p_loss"]
        else:
            out["rec_loss"] = out["l1"]
        q = vq_losses(batch["vq"], commitment_weight=1.0, codebook_weight=self.codebook_beta)
        out.update(commitment=q["commitment"], codebook=q["codebook"], q_loss=q["vq"])
        k = int(self._codec().codebook_size)
        codes = batch["codes"]
        ppl, usage = codebook_perplexity(code_histogram(codes.reshape(codes.shape[0], 1, -1), k))
        out.update(perplexity=ppl.detach(), usage=usage.detach())
        return out

    # ---- steps ----------------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], optimizer_idx: int = 0) -> dict[str, Tensor]:
        if optimizer_idx == 0:
            terms = self.reconstruction_terms(batch)
            nll = terms["rec_loss"]
            loss = nll + self.codebook_weight * terms["q_loss"]
            logs = {k: v.detach() for k, v in terms.items()}
            if self._disc_on():
                g_loss = -self.discriminator(batch["x_rec"]).float().mean()
                last = self._codec().decoder.conv_out.weight
                w = adaptive_weight(nll, g_loss, last, self.disc_weight, self.min_adapt_weight, self.max_adapt_weight)
                loss = loss + w * self.disc_factor * g_loss
                logs.update(g_loss=g_loss.detach(), d_weight=w.detach())
            return {"loss": loss, **logs}
        d = self.discriminator
        if not self._disc_on():  # before disc_start: nothing to learn (a zero loss that reaches D's parameters)
            return {"loss": sum(p.sum() * 0.0 for p in d.parameters()), "d_loss": torch.zeros(())}
        lr, lf = d(batch["x"].detach()), d(batch["x_rec"].detach())
        loss = self.disc_factor * vqgan_discriminator_loss(lr, lf, self.disc_loss)
        return {"loss": loss, "d_loss": loss.detach(), "logits_real": lr.detach().mean(),
                "logits_fake": lf.detach().mean()}

    # ---- validation -----------------------------------------------------------------------------
    def on_validation_start(self) -> None:
        super().on_validation_start()
        self._val_counts = None

    def validation_step(self, batch: dict[str, Any]) -> None:
        batch = self.shared_forward(batch)
        terms = self.reconstruction_terms(batch)
        self._accumulate({k: v for k, v in terms.items() if k not in ("perplexity", "usage")}, batch_size(batch))
        codes = batch["codes"]
        counts = code_histogram(codes.reshape(codes.shape[0], 1, -1), int(self._codec().codebook_size))
        self._val_counts = counts if self._val_counts is None else self._val_counts + counts

    def validation_end(self) -> dict[str, float]:
        metrics = super().validation_end()
        if self._val_counts is not None:
            ppl, usage = codebook_perplexity(self._val_counts)
            metrics.update(perplexity=float(ppl), usage=float(usage))
        return metrics
