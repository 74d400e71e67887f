"""Speech recognition training: attention encoder-decoders with an optional CTC branch (family ``asr``).

Batches are ``audiozoo.data`` items of a manifest with a ``text`` field (``speech-synth``, ``piper-speech``, or
any NeMo-style ASR manifest): ``{"audio": (B, T), "lengths": (B,), "text": [B strings]}``. The model
(``samba_asr_*``, ``conformer_aed_*``) brings its front end and tokenizer.

Per step:

1. optional speed perturbation of the whole batch (Ko et al., "Audio Augmentation for Speech Recognition",
   Interspeech 2015: resampling by a factor drawn from ``speed_perturb``, e.g. ``[0.9, 1.0, 1.1]``);
2. the model's front end (float32, outside autocast), then SpecAugment on the features (Park et al. 2019,
   arXiv:1904.08779; frequency and time masks, ``specaugment``);
3. transcripts normalised as they are scored (:func:`audiozoo.eval.asr.normalize_text`: NFKC, case-folded,
   punctuation removed, whitespace collapsed) and tokenised; the decoder reads ``bos`` + tokens and predicts
   tokens + ``eos`` (teacher forcing);
4. loss ``ctc_weight * CTC + (1 - ctc_weight) * CE`` (Kim et al. 2017, eq. 5) with label smoothing on the
   cross-entropy, each normalised per target token.

Validation adds the decoded transcripts' corpus CER and WER (greedy by default, or ``decode: beam``) against
the normalised references, and the CTC head's greedy CER (``ctc_cer``) when the model has one; the best
checkpoint is the one of lowest CER.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ...errors import ConfigError, DataError
from ...eval.asr import cer as corpus_cer
from ...eval.asr import normalize_text
from ...eval.asr import wer as corpus_wer
from ...nn.ctc import ctc_greedy_decode
from ..losses.ctc import IGNORE_INDEX, ctc_loss, joint_ctc_attention_loss, token_cross_entropy
from ._common import model_inputs
from .base import Task, register_task, unwrap

__all__ = ["ASRTask", "text_targets"]


def text_targets(tokenizer: Any, texts: Sequence[str], bos: int, eos: int, pad: int = 0
                 ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Decoder inputs and targets of ``texts`` (already normalised).

    Returns ``(dec_in (B, N+1), dec_target (B, N+1), labels (B, N), label_lengths (B,))``: ``dec_in`` is ``bos``
    + ids (padded with ``pad``), ``dec_target`` ids + ``eos`` (padded with :data:`IGNORE_INDEX`), ``labels`` the
    bare ids for CTC (padded with ``pad``).
    """
    ids = [tokenizer.encode(t) for t in texts]
    b, n = len(ids), max((len(x) for x in ids), default=0)
    dec_in = torch.full((b, n + 1), pad, dtype=torch.long)
    dec_target = torch.full((b, n + 1), IGNORE_INDEX, dtype=torch.long)
    labels = torch.full((b, max(n, 1)), pad, dtype=torch.long)
    for i, x in enumerate(ids):
        t = torch.tensor(x, dtype=torch.long)
        dec_in[i, 0] = bos
        dec_in[i, 1 : len(x) + 1] = t
        dec_target[i, : len(x)] = t
        dec_target[i, len(x)] = eos
        labels[i, : len(x)] = t
    return dec_in, dec_target, labels, torch.tensor([len(x) for x in ids], dtype=torch.long)


@register_task("asr")
class ASRTask(Task):
    """Joint CTC/attention training of a sequence-to-sequence recogniser.

    Args:
        ctc_weight: weight of the CTC loss (0: attention only; needs a model with a CTC head when > 0).
        label_smoothing: of the decoder's cross-entropy (0.1 in ESPnet's Conformer recipes).
        specaugment: keyword arguments of :class:`audiozoo.dsp.SpecAugment` (e.g. ``{freq_masks: 2, freq_width:
            27, time_masks: 2, time_width: 40}``), or None.
        speed_perturb: factors to draw one per batch from (e.g. ``[0.9, 1.0, 1.1]``), or None.
        text_key: the batch key holding the transcripts.
        decode: validation decoding, ``"greedy"`` or ``"beam"`` (``beam_size``).
        max_decode_len: cap on validation hypotheses (tokens); default: 2 x the longest reference + 10.
        optim, schedule: see :class:`Task` (Samba-ASR's paper: AdamW, lr 1e-4, weight decay 0.01, eps 1e-8).
    """

    monitor = "cer"
    monitor_mode = "min"

    def __init__(self, *, ctc_weight: float = 0.3, label_smoothing: float = 0.1,
                 specaugment: Mapping[str, Any] | None = None, speed_perturb: Sequence[float] | None = None,
                 text_key: str = "text", decode: str = "greedy", beam_size: int = 4,
                 max_decode_len: int | None = None, optim: Mapping[str, Any] | None = None,
                 schedule: Mapping[str, Any] | None = None) -> None:
        super().__init__(optim, schedule)
        from ...dsp.augment import SpecAugment

        if not 0.0 <= ctc_weight <= 1.0:
            raise ConfigError(f"ctc_weight must be in [0, 1], got {ctc_weight}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        try:
            self.specaugment = SpecAugment(**dict(specaugment)) if specaugment else None
        except TypeError as e:
            raise ConfigError(f"task.specaugment: {e}") from e
        if speed_perturb is not None and (not speed_perturb or any(not 0.5 <= float(f) <= 2.0 for f in speed_perturb)):
            raise ConfigError(f"speed_perturb must be a non-empty list of factors in [0.5, 2], got {speed_perturb}")
        if decode not in ("greedy", "beam"):
            raise ConfigError(f"decode must be 'greedy' or 'beam', got {decode!r}")
        self.ctc_weight, self.label_smoothing = float(ctc_weight), float(label_smoothing)
        self.speed_perturb = [float(f) for f in speed_perturb] if speed_perturb else None
        self.text_key, self.decode, self.beam_size = text_key, decode, int(beam_size)
        self.max_decode_len = max_decode_len
        self._hyps: list[str] = []
        self._refs: list[str] = []
        self._ctc_hyps: list[str] = []

    # ---- inputs -------------------------------------------------------------------------------------
    def _texts(self, batch: Mapping[str, Any]) -> list[str]:
        texts = batch.get(self.text_key)
        if texts is None:
            raise DataError(f"the ASR task needs transcripts under {self.text_key!r} in every batch; got keys "
                            f"{sorted(batch)}")
        if not all(isinstance(t, str) for t in texts):
            raise DataError(f"{self.text_key!r} must hold strings")
        return [normalize_text(t) for t in texts]

    def _speed(self, batch: dict[str, Any]) -> dict[str, Any]:
        factor = random.choice(self.speed_perturb)
        if factor == 1.0:
            return batch
        from ...dsp.io import resample

        sr = int(unwrap(self.model).frontend.sample_rate)
        # speeding up by f = playing sr * f samples per second: resample to sr / f, read back at sr
        audio = resample(batch["audio"].float(), sr, int(round(sr / factor)))
        lengths = torch.div(batch["lengths"].double(), factor).round().long().clamp(1, audio.shape[-1])
        return {**batch, "audio": audio, "lengths": lengths}

    def features(self, batch: dict[str, Any], train: bool) -> tuple[Tensor, Tensor]:
        if train and self.speed_perturb and "audio" in batch:
            batch = self._speed(batch)
        feats, lengths = model_inputs(self.model, batch)
        if lengths is None:
            lengths = torch.full((feats.shape[0],), feats.shape[-1], dtype=torch.long, device=feats.device)
        if train and self.specaugment is not None:
            feats = self.specaugment.train()(feats, lengths)
        return feats, lengths

    # ---- steps --------------------------------------------------------------------------------------
    def _loss(self, feats: Tensor, lengths: Tensor, texts: list[str]) -> dict[str, Tensor]:
        core = unwrap(self.model)
        dec_in, dec_target, labels, label_len = (t.to(feats.device) for t in text_targets(
            core.tokenizer, texts, core.bos_id, core.eos_id, int(core.tokenizer.pad_id or 0)))
        use_ctc = self.ctc_weight > 0
        if use_ctc and getattr(core, "ctc_head", None) is None:
            raise ConfigError(f"task.ctc_weight={self.ctc_weight} but {type(core).__name__} has no CTC head "
                              "(build it with ctc=true, or set ctc_weight: 0)")
        out = self.model(feats, lengths, dec_in, return_ctc=use_ctc)
        logits, ctc = (out[0], out[1:]) if use_ctc else (out, None)
        att = token_cross_entropy(logits, dec_target, self.label_smoothing)
        logs: dict[str, Tensor] = {"att_loss": att.detach()}
        ctc_l = None
        if ctc is not None:
            ctc_l = ctc_loss(ctc[0], ctc[1], labels, label_len, core.blank_id)
            logs["ctc_loss"] = ctc_l.detach()
        with torch.no_grad():
            mask = dec_target != IGNORE_INDEX
            logs["token_acc"] = (logits.argmax(-1)[mask] == dec_target[mask]).float().mean()
        return {"loss": joint_ctc_attention_loss(att, ctc_l, self.ctc_weight), **logs}

    def training_step(self, batch: dict[str, Any], optimizer_idx: int = 0) -> dict[str, Tensor]:
        texts = self._texts(batch)
        return self._loss(*self.features(batch, train=True), texts)

    # ---- validation ---------------------------------------------------------------------------------
    def on_validation_start(self) -> None:
        super().on_validation_start()
        self._hyps, self._refs, self._ctc_hyps = [], [], []

    def validation_step(self, batch: dict[str, Any]) -> None:
        core = unwrap(self.model)
        refs = self._texts(batch)
        feats, lengths = self.features(batch, train=False)
        self._accumulate(self._loss(feats, lengths, refs), len(refs))
        max_len = self.max_decode_len or 2 * max(len(core.tokenizer.encode(r)) for r in refs) + 10
        toks, lens = core.generate(feats.float(), lengths, method=self.decode, beam_size=self.beam_size,
                                   max_len=max_len)
        self._hyps += [core.tokenizer.decode(toks[i, : int(lens[i])].tolist()) for i in range(len(refs))]
        self._refs += refs
        if getattr(core, "ctc_head", None) is not None:
            memory, mem_len = core.encode(feats.float(), lengths)
            ids = ctc_greedy_decode(core.ctc_log_probs(memory), mem_len.cpu(), blank=core.blank_id)
            self._ctc_hyps += [core.tokenizer.decode(x) for x in ids]

    def validation_end(self) -> dict[str, float]:
        out = super().validation_end()
        keep = [i for i, r in enumerate(self._refs) if r.strip()]  # an empty reference has no error rate
        if keep:
            refs = [self._refs[i] for i in keep]
            out["cer"] = corpus_cer(refs, [self._hyps[i] for i in keep])
            out["wer"] = corpus_wer(refs, [self._hyps[i] for i in keep])
            if self._ctc_hyps:
                out["ctc_cer"] = corpus_cer(refs, [self._ctc_hyps[i] for i in keep])
                out["ctc_wer"] = corpus_wer(refs, [self._ctc_hyps[i] for i in keep])
        return out
