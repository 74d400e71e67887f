"""Note transcription training in the basic-pitch style (Bittner et al., ICASSP 2022; spotify/basic-pitch
``models.py`` / ``train.py``).

Batches are ``audiozoo.data`` crops of rendered music with their exact notes: ``{"audio": (B, T),
"lengths": (B,), "crop_start": [B ints], "notes": [B paths of notes.json]}`` (the ``music-render`` builder's
manifest). The model (``basic_pitch_nmp``) maps audio ``(B, T)`` to sigmoid posteriorgrams ``{"contour":
(B, L, 3 * S), "note": (B, L, S), "onset": (B, L, S)}`` with ``L = T // hop + 1`` frames; frame ``i`` is
centred on sample ``crop_start + i * hop`` (centred CQT).

Targets (:func:`note_targets`): ``note[i, p]`` = 1 while a note of pitch ``p`` sounds at frame ``i``'s time
(onset <= t < offset); ``onset[i, p]`` = 1 at the frame nearest each onset; ``contour`` = the note
matrix placed on the middle of each semitone's bins (bin ``3 (p - 21) + 1``: measured on the released
weights, the contour activation of a sounding note peaks there — 0.63 on average over BWV 347 against 0.15
at ``3 (p - 21)``). The reference derives its targets with mirdata at an integer 86 frames/s; here frame
times are exact (``hop / sr``), a difference of at most 3 ms per 2 s window.

Loss (``basic_pitch.models.loss``): binary cross-entropy with label smoothing 0.2 on each head, computed
on the sigmoid outputs as Keras does (clipped to [1e-7, 1 - 1e-7]); each head can be class-balanced
(``weighted_transcription_loss``: ``(1 - w) * BCE(negatives) + w * BCE(positives)``), which the reference
offers for onsets (``--weighted-onset-loss --positive-onset-weight``, off by default).

Validation on whole pieces (``data.eval_crop_seconds: null``, any batch size) runs the inference path of the
transcription pipeline (:mod:`audiozoo.data.notes`) — 2 s windows with 30 frames of overlap, note creation with
basic-pitch's defaults — and scores the notes against the score with ``mir_eval`` (onset-only and
onset+offset F1). With ``reference: true`` the same pieces also go through basic-pitch's own ``predict``
(ONNX Runtime, the released weights) and its scores are reported as ``ref_*``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ...data.notes import min_note_frames, model_output_to_notes, unwrap_output, window_audio, window_start_seconds
from ...errors import ConfigError, DataError
from ..losses.bce import weighted_bce
from .base import Task, register_task, unwrap

__all__ = ["HEADS", "TranscriptionTask", "note_targets", "weighted_bce"]

HEADS = ("contour", "note", "onset")
MIDI_OFFSET = 21  # note bin 0 = A0


@lru_cache(maxsize=4096)
def _read_notes(path: str) -> np.ndarray:
    """``notes.json`` (music-render) -> ``(N, 3)`` float64 [onset s, offset s, MIDI pitch]."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"notes file not found: {p}")
    try:
        doc = json.loads(p.read_text())
        notes = doc["notes"] if isinstance(doc, dict) else doc
        arr = np.array([[float(n["onset"]), float(n["offset"]), float(n["pitch"])] for n in notes], dtype=np.float64)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise DataError(f"{p}: expected {{'notes': [{{'onset', 'offset', 'pitch'}}...]}}: {e}") from e
    return arr.reshape(-1, 3)


def note_targets(notes: np.ndarray, start_s: float, n_frames: int, frame_s: float, n_semitones: int = 88,
                 bins_per_semitone: int = 3) -> dict[str, np.ndarray]:
    """Frame targets of the notes seen from a crop starting at ``start_s``.

    Args:
        notes: ``(N, 3)`` [onset s, offset s, MIDI pitch] of the whole piece.
        start_s: time of frame 0; frame ``i`` is at ``start_s + i * frame_s``.
    Returns:
        ``{"note": (L, S), "onset": (L, S), "contour": (L, S * bins_per_semitone)}`` float32 0/1 arrays.
    """
    note = np.zeros((n_frames, n_semitones), np.float32)
    onset = np.zeros_like(note)
    for on, off, pitch in notes:
        k = int(round(pitch)) - MIDI_OFFSET
        if not 0 <= k < n_semitones:
            continue
        first = max(0, int(np.ceil((on - start_s) / frame_s - 1e-9)))
        last = min(n_frames, int(np.ceil((off - start_s) / frame_s - 1e-9)))  # frames with t < offset
        if first < last:
            note[first:last, k] = 1.0
        i = int(np.floor((on - start_s) / frame_s + 0.5))
        if 0 <= i < n_frames:
            onset[i, k] = 1.0
    contour = np.zeros((n_frames, n_semitones * bins_per_semitone), np.float32)
    contour[:, bins_per_semitone // 2 :: bins_per_semitone] = note
    return {"note": note, "onset": onset, "contour": contour}


@register_task("transcribe")
class TranscriptionTask(Task):
    """Train a basic-pitch-style transcriber on rendered music with exact notes.

    Args:
        label_smoothing: of every head's BCE (basic-pitch: 0.2).
        positive_weight: head -> class-balancing weight of its positives (``None``/absent: plain BCE);
            e.g. ``{onset: 0.95}`` is ``--weighted-onset-loss --positive-onset-weight 0.95``.
        loss_weights: head -> weight of its loss in the total (default 1 each, as Keras sums them).
        onset_threshold, frame_threshold, minimum_note_length_ms: note creation at validation
            (basic-pitch's defaults).
        reference: also score basic-pitch's own ``predict`` (ONNX Runtime, released weights) on the
            validation pieces (needs the ``basic-pitch`` package).
        freeze_batchnorm: keep every BatchNorm in inference mode while training (running statistics fixed,
            scale and shift still learned). Needed to fine-tune the released weights: their exporter folded
            the BatchNorms into the convolutions and left identity layers (mean 0, variance 1 - eps), so
            batch statistics would renormalise every activation — measured: validation onset F1 fell from
            0.64 to 0.06 in 50 steps at lr 1e-4 without it.
        optim, schedule: see :class:`Task` (basic-pitch: Adam, lr 1e-3).
    """

    monitor = "onset_f1"
    monitor_mode = "max"

    def __init__(self, *, label_smoothing: float = 0.2, positive_weight: Mapping[str, float] | None = None,
                 loss_weights: Mapping[str, float] | None = None, onset_threshold: float = 0.5,
                 frame_threshold: float = 0.3, minimum_note_length_ms: float = 127.70, reference: bool = False,
                 freeze_batchnorm: bool = False, optim: Mapping[str, Any] | None = None,
                 schedule: Mapping[str, Any] | None = None) -> None:
        super().__init__(optim or {"name": "adam", "lr": 1e-3}, schedule)
        if not 0 <= label_smoothing < 1:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)
        self.positive_weight = self._per_head("positive_weight", positive_weight, None)
        for k, w in self.positive_weight.items():
            if w is not None and not 0 <= w <= 1:
                raise ConfigError(f"positive_weight.{k} must be in [0, 1], got {w}")
        self.loss_weights = self._per_head("loss_weights", loss_weights, 1.0)
        self.onset_threshold, self.frame_threshold = float(onset_threshold), float(frame_threshold)
        self.minimum_note_length_ms = float(minimum_note_length_ms)
        self.reference = bool(reference)
        self.freeze_batchnorm = bool(freeze_batchnorm)
        self._ref_model: Any = None

    @staticmethod
    def _per_head(name: str, value: Mapping[str, Any] | None, default: Any) -> dict[str, Any]:
        value = dict(value or {})
        bad = set(value) - set(HEADS)
        if bad:
            raise ConfigError(f"{name} has unknown heads {sorted(bad)}; heads are {HEADS}")
        return {h: value.get(h, default) for h in HEADS}

    # ---- targets and loss -----------------------------------------------------------------------
    def targets(self, batch: Mapping[str, Any], n_frames: int) -> dict[str, Tensor]:
        """``{"note": (B, L, S), "onset": (B, L, S), "contour": (B, L, 3 S)}`` for the batch's crops."""
        model = unwrap(self.model)
        c = model.config
        if "notes" not in batch or "crop_start" not in batch:
            raise DataError("transcription batches need 'notes' (notes.json paths) and 'crop_start' "
                            "(audiozoo.data.AudioDataset provides it); build the data with `music-render`")
        frame_s = model.hop_length / model.sample_rate
        per = [note_targets(_read_notes(str(path)), int(start) / model.sample_rate, n_frames, frame_s,
                            c.n_semitones, c.bins_per_semitone)
               for path, start in zip(batch["notes"], batch["crop_start"])]
        return {h: torch.from_numpy(np.stack([t[h] for t in per])).to(self.device) for h in HEADS}

    def training_step(self, batch: dict[str, Any], optimizer_idx: int = 0) -> dict[str, Tensor]:
        if self.freeze_batchnorm:
            for m in self.model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()
        out = self.model(batch["audio"])
        tgt = self.targets(batch, out["note"].shape[1])
        logs: dict[str, Tensor] = {}
        total = out["note"].new_zeros((), dtype=torch.float32)
        for h in HEADS:
            loss = weighted_bce(out[h], tgt[h], label_smoothing=self.label_smoothing,
                                positive_weight=self.positive_weight[h])
            logs[f"loss_{h}"] = loss.detach()
            total = total + self.loss_weights[h] * loss
        return {"loss": total, **logs}

    # ---- validation: notes of whole pieces ------------------------------------------------------
    def on_validation_start(self) -> None:
        super().on_validation_start()
        self._note_sums: dict[str, float] = {}
        self._pieces = 0

    def validation_step(self, batch: dict[str, Any]) -> None:
        from ...eval.music import note_metrics

        model = unwrap(self.model)
        for i in range(batch["audio"].shape[0]):
            wav = batch["audio"][i, : int(batch["lengths"][i])].float().cpu()
            windows = window_audio(wav).to(self.device)
            with torch.no_grad():
                out = model(windows)
                # the loss on the windows, against targets at each window's own time axis
                tgt = self._window_targets(batch["notes"][i], int(batch["crop_start"][i]), windows.shape[0],
                                           out["note"].shape[1])
                losses = {h: float(weighted_bce(out[h], tgt[h], label_smoothing=self.label_smoothing,
                                                positive_weight=self.positive_weight[h])) for h in HEADS}
            acts = {h: unwrap_output(out[h].float().cpu().numpy(), wav.shape[0]) for h in HEADS}
            events = model_output_to_notes(acts, self.onset_threshold, self.frame_threshold,
                                           min_note_frames(self.minimum_note_length_ms), None, None, True, True)
            ref = _read_notes(str(batch["notes"][i]))
            start_s = int(batch["crop_start"][i]) / model.sample_rate
            ref = ref[(ref[:, 0] >= start_s) & (ref[:, 0] < start_s + wav.shape[0] / model.sample_rate)]
            ref_iv, ref_p = ref[:, :2] - start_s, ref[:, 2]
            m = self._score(events, ref_iv, ref_p, note_metrics)
            row = {"loss": sum(self.loss_weights[h] * losses[h] for h in HEADS),
                   **{f"loss_{h}": v for h, v in losses.items()}, **m}
            if self.reference:
                row.update({f"ref_{k}": v for k, v in self._score(self._reference_notes(wav), ref_iv, ref_p,
                                                                    note_metrics).items()})
            self._accumulate(row, 1)

    def _window_targets(self, notes_path: str, crop_start: int, n_windows: int, n_frames: int) -> dict[str, Tensor]:
        model = unwrap(self.model)
        c, sr = model.config, model.sample_rate
        notes = _read_notes(str(notes_path))
        per = [note_targets(notes, window_start_seconds(w, crop_start, sr), n_frames, model.hop_length / sr,
                            c.n_semitones, c.bins_per_semitone) for w in range(n_windows)]
        return {h: torch.from_numpy(np.stack([t[h] for t in per])).to(self.device) for h in HEADS}

    @staticmethod
    def _score(events: list, ref_iv: np.ndarray, ref_p: np.ndarray, note_metrics: Any) -> dict[str, float]:
        est_iv = np.array([[e[0], e[1]] for e in events], dtype=np.float64).reshape(-1, 2)
        est_p = np.array([e[2] for e in events], dtype=np.float64)
        m = note_metrics(est_iv, est_p, ref_iv.reshape(-1, 2), ref_p, pitch_unit="midi")
        return {"onset_precision": m["precision"], "onset_recall": m["recall"], "onset_f1": m["f1"],
                "offset_f1": m["f1_with_offsets"], "notes": float(len(events))}

    def _reference_notes(self, wav: Tensor) -> list:
        """basic-pitch 0.4.0 ``predict`` on ONNX Runtime with the released weights (same defaults)."""
        import contextlib
        import io
        import logging
        import tempfile

        import soundfile as sf

        from ...errors import MissingDependencyError, require

        inference = require("basic_pitch.inference", "reference transcription scores", "parity")
        if self._ref_model is None:
            # the released weights inside the reference package itself (its ONNX export)
            onnx = Path(inference.__file__).resolve().parent / "saved_models" / "icassp_2022" / "nmp.onnx"
            if not onnx.is_file():
                raise MissingDependencyError(f"reference scores need basic-pitch's released nmp.onnx; not found at "
                                             f"{onnx}")
            logging.getLogger().setLevel(logging.ERROR)
            self._ref_model = inference.Model(str(onnx))
        with tempfile.TemporaryDirectory() as d, contextlib.redirect_stdout(io.StringIO()):
            path = Path(d) / "x.wav"
            sf.write(path, wav.numpy(), 22050, subtype="FLOAT")
            _, _, events = inference.predict(str(path), self._ref_model, self.onset_threshold, self.frame_threshold,
                                             self.minimum_note_length_ms)
        return [(float(s), float(e), int(p), float(a), None) for s, e, p, a, _ in events]
