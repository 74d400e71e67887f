"""Source-separation training: permutation-invariant (anonymous speakers) or fixed-order (named stems) targets.

A separator (:class:`audiozoo.models.contracts.SeparatorModel`: ``mixture (B, C, T) -> (B, S, C, T)``) learns to
recover the sources of a mixture.

Targets come from the batch, either

* ``batch["targets"]``: a ``(B, S, T)`` / ``(B, S, C, T)`` tensor (tests, custom loaders), or
* ``batch["stems"]``: the manifest's ``{name: path}`` of each item (the ``mixtures`` and ``music-render``
  builders write them), read here for the item's crop (``crop_start``, ``length`` of the
  :class:`~audiozoo.data.AudioDataset` batch) at the model's rate and channel count. Files are cached in memory
  (``cache_mb``), so a small corpus is read once.

Source order: ``pit=True`` (speech, anonymous speakers) matches estimates to references by utterance-level PIT
(Kolbæk et al. 2017) over the chosen loss; ``pit=False`` (music) uses the model's ``sources`` names as the
fixed order, a stem missing from an item being silence.

The mixture the model sees is the sum of the target sources (``mix_from_sources``, default) — exact for the
``mixtures`` builder, whose mixture *is* that sum — so the augmentations of Demucs (Défossez et al. 2019,
Section 4.3) can act on the sources first:

* ``remix``: each source is taken from another item of the batch (a random permutation per source), making new
  mixtures from the same stems ("remixing");
* ``flip_sign`` / ``flip_channels``: each source's polarity / stereo channels are flipped at random;
* ``scale``: each source is scaled by a factor drawn uniformly in ``[low, high]`` (Demucs: 0.25-1.25);
* ``shift``: each source is read at a random offset of up to ``shift`` samples (the output is ``shift`` shorter).

Pitch / tempo changes (Demucs' ``--repitch``, an external soundstretch run) are not included.

Query-conditioned targets (``query``; USS, Kong et al. 2023, arXiv:2305.07447, Section 3): the batch holds
single-source clips with weak labels (``batch["label"]``, class indices); each clip's segment is mixed with
``mix_num - 1`` segments of other labels from the batch (rescaled to its energy, ``match_energy``:
:func:`audiozoo.data.queries.mix_segments`) and a separator ``forward(mixture, condition) -> (B, 1, C, T)``
learns to recover it from a query condition: ``query: label`` a one-hot vector of the clip's label,
``query: tagger`` the outputs of a frozen tagger on the target segment (``query_model``, a resolver spec or a
module, default the model's ``config.query_model``; its probabilities or embedding after the model's
``config.query_type``: the paper's at_soft / embedding queries). The tagger is loaded at ``setup``, kept frozen
in float32 and is not part of the checkpoints. ``anchor_seconds``: the segment of each clip is the anchor the
tagger finds (the window of largest area under its probability of the clip's class over sliding windows,
:func:`audiozoo.data.queries.mine_anchors`; ``anchor_classes`` maps data label ``i`` to the tagger's class)
instead of the whole crop. Validation adds ``si_sdri_wrong_query``: the output for a partner's query, scored
against the target (it should be low).

Losses (:mod:`audiozoo.train.losses.separation`): ``si_sdr`` (Conv-TasNet), ``sd_sdr``, ``snr`` (optionally
soft-thresholded), ``l1`` (Demucs), ``mse``. Validation reports ``loss``, ``si_sdr`` (dB, PIT-matched when
``pit``), ``si_sdri`` (the improvement over the unprocessed mixture, the monitored value) and, for named
stems, ``si_sdr/<name>``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ...data.queries import framewise_scores, label_condition, mine_anchors, mix_segments, tagger_condition
from ...errors import ConfigError, DataError
from ..losses.separation import neg_si_sdr, pit, separation_loss
from ._common import frozen_model
from .base import Task, batch_size, register_task, unwrap

QUERIES = ("label", "tagger")

__all__ = ["SeparationTask", "augment_sources"]


def augment_sources(src: Tensor, *, remix: bool = False, flip_sign: bool = False, flip_channels: bool = False,
                    scale: Sequence[float] | None = None, shift: int = 0,
                    generator: torch.Generator | None = None) -> Tensor:
    """Demucs-style augmentations of sources ``(B, S, C, T)`` (see the module docstring); returns
    ``(B, S, C, T - shift)``."""
    b, s, c, t = src.shape
    dev = src.device

    def rand(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=generator).to(dev)

    if shift:
        if shift >= t:
            raise DataError(f"shift {shift} must be shorter than the crop ({t} samples)")
        offsets = (rand(b, s) * (shift + 1)).long().clamp(max=shift)
        idx = offsets[..., None] + torch.arange(t - shift, device=dev)
        src = torch.gather(src, -1, idx[:, :, None].expand(b, s, c, t - shift))
    if remix and b > 1:
        perms = torch.stack([torch.randperm(b, generator=generator) for _ in range(s)], 1).to(dev)  # (B, S)
        src = src[perms, torch.arange(s, device=dev)[None]]
    if flip_sign:
        src = src * (2.0 * (rand(b, s, 1, 1) < 0.5) - 1.0).to(src.dtype)
    if flip_channels and c == 2:
        swap = (rand(b, s, 1, 1) < 0.5).to(src.dtype)
        src = src * (1 - swap) + src.flip(2) * swap
    if scale is not None:
        lo, hi = float(scale[0]), float(scale[1])
        src = src * (lo + (hi - lo) * rand(b, s, 1, 1)).to(src.dtype)
    return src


@register_task("separation")
class SeparationTask(Task):
    """Train a separator.

    Args:
        loss: ``si_sdr`` | ``sd_sdr`` | ``snr`` | ``l1`` | ``mse`` (per source, averaged).
        pit: permutation-invariant targets (anonymous sources); else the model's ``sources`` order.
        snr_threshold_db: soft threshold of the ``snr`` loss (MixIT); ``None``: plain SNR.
        mix_from_sources: feed the model the sum of the (augmented) sources instead of ``batch["audio"]``.
        remix, flip_sign, flip_channels, scale, shift: augmentations (training only; module docstring).
        stem_names: stem keys of the manifest in target order for PIT (default: each item's own order).
        cache_mb: memory for stems read from files (0: no cache).
        query: ``None`` (PIT / fixed order), ``"label"`` or ``"tagger"``: query-conditioned targets (module
            docstring); ``pit`` and the source augmentations do not apply.
        query_model: the frozen tagger of ``query: tagger`` / ``anchor_seconds`` (spec or module).
        mix_num: sources per query mixture (target + partners); match_energy: rescale partners to the target.
        anchor_seconds: mine anchor segments of this length with the tagger; anchor_window_seconds /
            anchor_hop_seconds: its sliding windows; anchor_classes: tagger class of each data label.
        optim, schedule: see :class:`~audiozoo.train.tasks.base.Task`.
    """

    monitor = "si_sdri"
    monitor_mode = "max"

    def __init__(self, *, loss: str = "si_sdr", pit: bool = True, snr_threshold_db: float | None = None,
                 mix_from_sources: bool = True, remix: bool = False, flip_sign: bool = False,
                 flip_channels: bool = False, scale: Sequence[float] | None = None, shift: int = 0,
                 stem_names: Sequence[str] | None = None, cache_mb: float = 512.0, query: str | None = None,
                 query_model: Any = None, mix_num: int = 2, match_energy: bool = True,
                 anchor_seconds: float | None = None, anchor_window_seconds: float = 1.0,
                 anchor_hop_seconds: float = 0.25, anchor_classes: Sequence[int] | None = None,
                 optim: Mapping[str, Any] | None = None, schedule: Mapping[str, Any] | None = None) -> None:
        super().__init__(optim or {"name": "adam", "lr": 1e-3}, schedule)
        self.loss_name = str(loss)
        self.loss_fn = separation_loss(self.loss_name)
        self.loss_kw = {"snr_threshold_db": snr_threshold_db} if loss == "snr" and snr_threshold_db is not None else {}
        if snr_threshold_db is not None and loss != "snr":
            raise ConfigError("snr_threshold_db applies to loss: snr only")
        if scale is not None and (len(scale) != 2 or not 0 <= float(scale[0]) <= float(scale[1])):
            raise ConfigError(f"scale must be [low, high] with 0 <= low <= high, got {scale}")
        if int(shift) < 0 or float(cache_mb) < 0:
            raise ConfigError("shift and cache_mb must be >= 0")
        self.pit = bool(pit)
        self.mix_from_sources = bool(mix_from_sources)
        self.augment = dict(remix=bool(remix), flip_sign=bool(flip_sign), flip_channels=bool(flip_channels),
                            scale=tuple(scale) if scale is not None else None, shift=int(shift))
        self.stem_names = list(stem_names) if stem_names else None
        self.cache_bytes = int(float(cache_mb) * 2**20)
        self._cache: OrderedDict[tuple[str, int, int], Tensor] = OrderedDict()
        self._cached = 0
        if query is not None and query not in QUERIES:
            raise ConfigError(f"query must be one of {QUERIES} or null, got {query!r}")
        if int(mix_num) < 2:
            raise ConfigError(f"mix_num must be >= 2 (a target and a partner), got {mix_num}")
        if anchor_seconds is not None and (query is None or not float(anchor_seconds) > 0):
            raise ConfigError("anchor_seconds (> 0) applies to query-conditioned training (query: label | tagger)")
        if min(float(anchor_window_seconds), float(anchor_hop_seconds)) <= 0:
            raise ConfigError("anchor_window_seconds and anchor_hop_seconds must be > 0")
        self.query, self.query_spec = query, query_model
        self.mix_num, self.match_energy = int(mix_num), bool(match_energy)
        self.anchor_seconds = None if anchor_seconds is None else float(anchor_seconds)
        self.anchor_window, self.anchor_hop = float(anchor_window_seconds), float(anchor_hop_seconds)
        self.anchor_classes = [int(c) for c in anchor_classes] if anchor_classes is not None else None
        self.tagger: nn.Module | None = None

    # ---- data -------------------------------------------------------------------------------------
    def _sep(self):
        return unwrap(self.model)

    def _read(self, path: str, sr: int, channels: int) -> Tensor:
        """The whole file at ``sr`` as ``(channels, T)`` (mono files are repeated, stereo files down-mixed)."""
        from ...dsp.io import load_audio

        key = (str(path), sr, channels)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        try:
            wav, _ = load_audio(path, sample_rate=sr, mono=channels == 1)
        except Exception as e:  # noqa: BLE001 - AudioError / OSError: name the stem
            raise DataError(f"cannot read stem {path}: {e}") from e
        wav = wav[None] if wav.ndim == 1 else wav
        if wav.shape[0] != channels:
            wav = wav.mean(0, keepdim=True).expand(channels, -1).contiguous()
        if self.cache_bytes:
            self._cache[key] = wav
            self._cached += wav.numel() * 4
            while self._cached > self.cache_bytes and len(self._cache) > 1:
                _, old = self._cache.popitem(last=False)
                self._cached -= old.numel() * 4
        return wav

    def _stem_order(self, stems: Mapping[str, str]) -> list[str | None]:
        names = self._sep().sources
        if self.pit:
            order = self.stem_names or list(stems)
            if len(order) != len(names):
                raise DataError(f"the model separates {len(names)} sources but an item has stems {list(stems)}"
                                + (f" (stem_names {self.stem_names})" if self.stem_names else ""))
            return list(order)
        unknown = sorted(set(stems) - set(names))
        if unknown:
            raise DataError(f"stems {unknown} are not among the model's sources {names}")
        return [n if n in stems else None for n in names]

    def sources(self, batch: Mapping[str, Any]) -> Tensor:
        """Target sources ``(B, S, C, T)`` of a batch (``batch["targets"]`` or read from ``batch["stems"]``)."""
        m = self._sep()
        c = int(m.audio_channels)
        if isinstance(batch.get("targets"), Tensor):
            src = batch["targets"]
            if src.ndim == 3:
                src = src[:, :, None]
            if src.ndim != 4 or src.shape[1] != len(m.sources) or src.shape[2] != c:
                raise DataError(f"batch['targets'] must be (B, {len(m.sources)}, {c}, T), got {tuple(src.shape)}")
            return src.to(self.device).float()
        if "stems" not in batch:
            raise DataError(f"a separation batch needs 'targets' or 'stems' (a manifest with stems); got keys "
                            f"{sorted(batch)}")
        audio = batch["audio"]
        t = audio.shape[-1]
        sr = int(m.sample_rate)
        n = len(batch["stems"])
        starts = batch.get("crop_start")
        starts = [0] * n if starts is None else [int(v) for v in starts]
        offsets = batch.get("offset")  # stems are read from the same offset as the mixture segment
        offsets = [0.0] * n if offsets is None else [float(v or 0.0) for v in offsets]
        out = torch.zeros(n, len(m.sources), c, t)
        for i, stems in enumerate(batch["stems"]):
            if not stems:
                raise DataError(f"item {i} of the batch has no stems")
            a = starts[i] + round(offsets[i] * sr)
            for j, name in enumerate(self._stem_order(stems)):
                if name is None:
                    continue  # a named stem absent from this piece: silence
                seg = self._read(stems[name], sr, c)[:, a:a + t]
                out[i, j, :, : seg.shape[-1]] = seg
        return out.to(self.device)

    def inputs(self, batch: Mapping[str, Any], train: bool) -> tuple[Tensor, Tensor]:
        """``(mixture (B, C, T), sources (B, S, C, T))`` after augmentation."""
        src = self.sources(batch)
        if train and any(self.augment.values()):
            src = augment_sources(src, **self.augment)
        if self.mix_from_sources:
            mix = src.sum(1)
        else:
            mix = batch["audio"].to(self.device).float()
            mix = mix[:, None] if mix.ndim == 2 else mix
            mix = mix[..., : src.shape[-1]]
        return mix, src

    # ---- query-conditioned targets (USS) ------------------------------------------------------------
    def _tagger(self) -> nn.Module:
        if self.tagger is None:
            spec = self.query_spec or getattr(getattr(self._sep(), "config", None), "query_model", None)
            if spec is None:
                raise ConfigError("query: tagger / anchor_seconds need a query_model (or the model's "
                                  "config.query_model)")
            self.tagger = frozen_model(spec, self.device)
        return self.tagger

    def setup(self, trainer: Any) -> None:
        super().setup(trainer)
        if self.query == "tagger" or self.anchor_seconds is not None:
            self._tagger()

    def _anchors(self, audio: Tensor, labels: Tensor, sr: int) -> Tensor:
        """The anchor segment ``(B, C, anchor)`` of each clip ``(B, C, T)`` (module docstring)."""
        seg = round(self.anchor_seconds * sr)
        if audio.shape[-1] <= seg:
            return audio
        tagger = self._tagger()
        ids = labels if self.anchor_classes is None else torch.as_tensor(self.anchor_classes)[labels.cpu()]
        scores = framewise_scores(lambda w: tagger_condition(tagger, w, sr), audio.mean(1),
                                  max(1, round(self.anchor_window * sr)), max(1, round(self.anchor_hop * sr)))
        start = mine_anchors(scores, ids, seg, max(1, round(self.anchor_hop * sr)), audio.shape[-1])
        idx = start.to(audio.device)[:, None] + torch.arange(seg, device=audio.device)
        return torch.gather(audio, -1, idx[:, None].expand(-1, audio.shape[1], -1))

    def condition(self, target: Tensor, labels: Tensor) -> Tensor:
        """The query condition ``(B, D)`` of target segments ``(B, C, T)`` with weak labels ``(B,)``."""
        m = self._sep()
        dim = int(m.config.condition_dim)
        if self.query == "label":
            return label_condition(labels.cpu(), dim).to(self.device)
        kind = str(getattr(m.config, "query_type", "probabilities"))
        if kind == "onehot":
            raise ConfigError("a model with query_type 'onehot' trains with query: label")
        cond = tagger_condition(self._tagger(), target, int(m.sample_rate), kind)
        if cond.shape[-1] != dim:
            raise ConfigError(f"the query tagger gives {cond.shape[-1]}-d {kind}, the model takes condition_dim "
                              f"{dim}")
        return cond

    def query_inputs(self, batch: Mapping[str, Any]) -> tuple[Tensor, Tensor, Tensor, list[list[int]], Tensor]:
        """``(mixture (B, C, T), target (B, 1, C, T), condition (B, D), partners, labels)`` of a batch of
        weakly labelled single-source clips."""
        m = self._sep()
        if "label" not in batch:
            raise DataError(f"query-conditioned separation needs weak labels ('label'); got keys {sorted(batch)}")
        labels = torch.as_tensor(batch["label"]).long().flatten().cpu()
        audio = batch["audio"].to(self.device).float()
        audio = audio[:, None] if audio.ndim == 2 else audio
        c = int(m.audio_channels)
        if audio.shape[1] != c:
            audio = audio.mean(1, keepdim=True).expand(-1, c, -1)
        if self.anchor_seconds is not None:
            audio = self._anchors(audio, labels, int(m.sample_rate))
        mix, target, partners = mix_segments(audio, labels, self.mix_num, self.match_energy)
        return mix, target[:, None], self.condition(target, labels), partners, labels

    # ---- steps ------------------------------------------------------------------------------------
    def _losses(self, est: Tensor, src: Tensor) -> tuple[Tensor, Tensor]:
        """Per-source losses ``(B, S)`` and the estimates in reference order."""
        if self.pit:
            losses, perm = pit(self.loss_fn, est, src, channels=True, **self.loss_kw)
            est = est[torch.arange(est.shape[0], device=est.device)[:, None], perm]
            return losses, est
        return self.loss_fn(est, src, channels=True, **self.loss_kw), est

    def training_step(self, batch: dict[str, Any], optimizer_idx: int = 0) -> dict[str, Tensor]:
        if self.query is not None:
            mix, target, cond, _, _ = self.query_inputs(batch)
            est = self.model(mix, cond)
            return {"loss": self.loss_fn(est.float(), target, channels=True, **self.loss_kw).mean()}
        mix, src = self.inputs(batch, train=self._sep().training)
        est = self.model(mix)
        losses, _ = self._losses(est.float(), src)
        return {"loss": losses.mean()}

    @torch.no_grad()
    def _query_validation(self, batch: dict[str, Any]) -> None:
        mix, target, cond, partners, labels = self.query_inputs(batch)
        est = self.model(mix, cond).float()
        # scored: items that are mixtures (a batch whose other items all share an item's label gives it no
        # partner: its "mixture" is the target itself, SI-SDR ~ +inf, which would swamp the mean)
        has = torch.tensor([bool(p) for p in partners], device=target.device)
        live = (target.flatten(1).pow(2).sum(-1) > 1e-10) & has  # (B,)
        sdr = -neg_si_sdr(est, target, channels=True)[:, 0]
        base = -neg_si_sdr(mix[:, None], target, channels=True)[:, 0]
        n = max(1, int(live.sum()))
        out: dict[str, Any] = {"loss": float(self.loss_fn(est, target, channels=True, **self.loss_kw).mean()),
                               "si_sdr": float(sdr[live].sum()) / n, "si_sdri": float((sdr - base)[live].sum()) / n}
        # the same mixture queried for its first partner's class, scored against the target: should be low
        has = live.cpu()
        if bool(has.any()):
            other = torch.tensor([p[0] if p else i for i, p in enumerate(partners)])
            wrong = self.condition(target[:, 0][other], labels[other])
            sdr_w = -neg_si_sdr(self.model(mix, wrong).float(), target, channels=True)[:, 0]
            out["si_sdri_wrong_query"] = float((sdr_w - base)[has.to(sdr_w.device)].mean())
        self._accumulate(out, int(live.sum()))  # weighted by the mixtures scored (0: the batch made none)

    @torch.no_grad()
    def validation_step(self, batch: dict[str, Any]) -> None:
        if self.query is not None:
            return self._query_validation(batch)
        mix, src = self.inputs(batch, train=False)
        est = self.model(mix).float()
        losses, ordered = self._losses(est, src)
        # SI-SDR of silent references is meaningless: score only sources with energy
        live = src.flatten(2).pow(2).sum(-1) > 1e-10  # (B, S)
        sdr = -neg_si_sdr(ordered, src, channels=True)
        base = -neg_si_sdr(mix[:, None].expand_as(src), src, channels=True)
        n = max(1, int(live.sum()))
        out: dict[str, Any] = {"loss": float(losses.mean()), "si_sdr": float(sdr[live].sum()) / n,
                               "si_sdri": float((sdr - base)[live].sum()) / n}
        if not self.pit:
            for j, name in enumerate(self._sep().sources):
                if bool(live[:, j].any()):
                    out[f"si_sdr/{name}"] = float(sdr[:, j][live[:, j]].mean())
        self._accumulate(out, batch_size(batch))
