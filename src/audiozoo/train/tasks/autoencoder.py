"""Autoencoder pretraining, then a classifier on the frozen encoders: the staged training of statistics
embeddings (Verma 2021, arXiv:2110.03183, Sec. 2-3; :mod:`audiozoo.models.classify.stats_embed`), through the
engine.

Stages, by epoch (the fitting stages see the training split only, without labels):

0. before the first step, ``model.fit_normalization(features, lengths)`` on every training clip's features
   (when the model has it: per-bin statistics that standardise the autoencoders' inputs);
1. epochs ``< pretrain_epochs``: the autoencoders learn to reconstruct their inputs. The model gives
   ``reconstruct(features, lengths) -> {name: (target (B, N, D), reconstruction (B, N, D), valid (B, N))}``; the
   loss is the mean over its entries of the masked MSE
   (:func:`audiozoo.train.losses.regression.autoencoder_reconstruction_loss`);
   only ``model.autoencoder_parameters()`` learn;
2. at the end of the last pretraining epoch, ``model.fit_codebooks(features, lengths, seed=...)`` (when the
   model has it: k-means on the codes) and the autoencoder parameters are frozen;
3. the remaining epochs train the classifier ``model(features, lengths) -> logits`` with cross-entropy.

Stage 3 caches what the frozen part computes: when the model splits its forward into ``embedding(features,
lengths)`` (fixed once the encoders are frozen; the statistics model's histograms) and ``classify_embedding(z)``,
each clip's embedding is computed once (keyed by ``audio_filepath``, ``crop_start`` and length, as
:class:`audiozoo.data.AudioDataset` batches carry them) and reused in later epochs -- the same numbers as the full
forward, at the cost of the head alone (``cache_embeddings: false`` turns it off; it is off under DDP).

Validation reports the reconstruction loss (``recon``; up to the stage switch and in stand-alone evaluation), and
the classifier's ``loss``, ``accuracy`` and ``macro_f1`` (monitored: ``accuracy``; the head is untrained during
pretraining, so ``best/`` is a classifier epoch). One optimizer serves both stages (parameters without gradient
are skipped by Adam/AdamW), so a resumed run continues exactly; the fitted statistics and codebooks are model
buffers and are checkpointed with it.

Batches: ``{"audio": (B, T), "lengths": (B,), "label": (B,)}`` (or precomputed ``features``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...errors import ConfigError
from ..losses.regression import autoencoder_reconstruction_loss
from ._common import label_metrics, model_inputs, single_labels
from .base import Task, batch_size, register_task, unwrap

__all__ = ["AutoencoderTask"]


@register_task("autoencoder")
class AutoencoderTask(Task):
    """Pretrain a model's autoencoders on reconstruction, then train its classifier (see the module docstring).

    Args:
        pretrain_epochs: epochs of stage 1 (the statistics-embedding recipe: 10); 0 skips pretraining (the
            normalisation and codebooks are still fitted before the first step).
        label_smoothing: of the classifier's cross-entropy.
        fit_seed: seed of the codebook fitting (k-means++ seeding and point sampling).
        cache_embeddings: reuse each clip's frozen embedding in the classifier stage (see the module docstring).
        optim, schedule: one optimizer for both stages (see :class:`~audiozoo.train.tasks.base.Task`).
    """

    monitor = "accuracy"
    monitor_mode = "max"
    uses_labels = True

    def __init__(self, *, pretrain_epochs: int = 10, label_smoothing: float = 0.0, fit_seed: int = 0,
                 cache_embeddings: bool = True, optim: Mapping[str, Any] | None = None,
                 schedule: Mapping[str, Any] | None = None) -> None:
        super().__init__(optim, schedule)
        if int(pretrain_epochs) < 0:
            raise ConfigError(f"pretrain_epochs must be >= 0, got {pretrain_epochs}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.pretrain_epochs = int(pretrain_epochs)
        self.label_smoothing = float(label_smoothing)
        self.fit_seed = int(fit_seed)
        self.cache_embeddings = bool(cache_embeddings)
        self._cache: dict[tuple, Tensor] = {}

    # ---- stages ---------------------------------------------------------------------------------
    def _net(self) -> nn.Module:
        net = unwrap(self.model)
        for name in ("reconstruct", "autoencoder_parameters"):
            if not callable(getattr(net, name, None)):
                raise ConfigError(f"the autoencoder task needs a model with {name}(); {type(net).__name__} has none")
        return net

    def _epoch(self) -> int:
        return int(getattr(getattr(self.trainer, "state", None), "epoch", 0) or 0)

    @property
    def pretraining(self) -> bool:
        """Whether the current epoch is an autoencoder (stage 1) epoch."""
        return self._epoch() < self.pretrain_epochs

    def _freeze_autoencoders(self, frozen: bool) -> None:
        for p in self._net().autoencoder_parameters():
            p.requires_grad_(not frozen)
        self._cache.clear()

    @torch.no_grad()
    def _training_features(self) -> tuple[Tensor, Tensor]:
        """Features ``(N, F, L)`` (padded to the longest) and frame lengths ``(N,)`` of the training split."""
        feats, lengths = [], []
        for batch in self.trainer.train_loader:
            batch = {k: v.to(self.device) if isinstance(v, Tensor) else v for k, v in batch.items()}
            f, n = model_inputs(self.model, batch)
            feats.append(f.float())
            lengths.append(n if n is not None else torch.full((f.shape[0],), f.shape[-1], device=f.device))
        width = max(f.shape[-1] for f in feats)
        return torch.cat([F.pad(f, (0, width - f.shape[-1])) for f in feats]), torch.cat(lengths).long()

    def on_fit_start(self) -> None:
        net = self._net()
        if self.trainer is not None and self.trainer.step == 0:
            fit_norm = getattr(net, "fit_normalization", None)
            if callable(fit_norm):
                fit_norm(*self._training_features())
            if self.pretrain_epochs == 0:
                self._fit_codebooks()
        self._freeze_autoencoders(not self.pretraining)

    def _fit_codebooks(self) -> None:
        fit = getattr(self._net(), "fit_codebooks", None)
        if callable(fit):
            was = self.model.training
            self.model.eval()
            fit(*self._training_features(), seed=self.fit_seed)
            self.model.train(was)

    def on_epoch_end(self, epoch: int) -> None:
        if epoch == self.pretrain_epochs - 1:  # the last pretraining epoch: fit codebooks, freeze the encoders
            self._fit_codebooks()
            self._freeze_autoencoders(True)

    # ---- steps ----------------------------------------------------------------------------------
    def reconstruction(self, batch: Mapping[str, Any]) -> Tensor:
        feats, lengths = model_inputs(self.model, batch)
        return autoencoder_reconstruction_loss(self._net().reconstruct(feats, lengths))

    def _cache_keys(self, batch: Mapping[str, Any]) -> list[tuple] | None:
        """Per-clip keys when the frozen embedding may be cached for this batch, else ``None``."""
        net = unwrap(self.model)
        if not (self.cache_embeddings and self.trainer is not None and not self.pretraining
                and callable(getattr(net, "embedding", None)) and callable(getattr(net, "classify_embedding", None))
                and not torch.distributed.is_initialized() and "features" not in batch
                and isinstance(batch.get("audio_filepath"), list) and isinstance(batch.get("crop_start"), list)):
            return None
        lengths = batch.get("lengths")
        n = lengths.tolist() if isinstance(lengths, Tensor) else [None] * len(batch["audio_filepath"])
        return [(str(p), int(s), m) for p, s, m in zip(batch["audio_filepath"], batch["crop_start"], n)]

    def classification(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
        """``(cross-entropy, logits (B, C), labels (B,))``."""
        keys = self._cache_keys(batch)
        if keys is None:
            feats, lengths = model_inputs(self.model, batch)
            logits = self.model(feats, lengths).float()
        else:
            net = unwrap(self.model)
            if any(k not in self._cache for k in keys):
                with torch.no_grad():
                    z = net.embedding(*model_inputs(self.model, batch))
                self._cache.update(zip(keys, z.detach()))
            logits = net.classify_embedding(torch.stack([self._cache[k] for k in keys])).float()
        y = single_labels(batch, logits.shape[-1], self.device)
        return F.cross_entropy(logits, y, label_smoothing=self.label_smoothing), logits, y

    def training_step(self, batch: dict[str, Any], optimizer_idx: int = 0) -> dict[str, Tensor]:
        if self.pretraining:
            loss = self.reconstruction(batch)
            return {"loss": loss, "recon": loss.detach()}
        loss, logits, y = self.classification(batch)
        return {"loss": loss, "accuracy": (logits.argmax(-1) == y).float().mean().detach()}

    def on_validation_start(self) -> None:
        super().on_validation_start()
        self._scores: list[Tensor] = []
        self._labels: list[Tensor] = []

    def validation_step(self, batch: dict[str, Any]) -> None:
        loss, logits, y = self.classification(batch)
        row = {"loss": loss}
        if self._epoch() <= self.pretrain_epochs or self.trainer is None:  # frozen after: the same every epoch
            row["recon"] = self.reconstruction(batch)
        self._accumulate(row, batch_size(batch))
        self._scores.append(logits.cpu())
        self._labels.append(y.cpu())

    def validation_end(self) -> dict[str, float]:
        metrics = super().validation_end()
        if self._scores:
            metrics.update(label_metrics(torch.cat(self._scores), torch.cat(self._labels)))
        return metrics
