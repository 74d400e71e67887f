"""Music-transcription metrics: note-level P/R/F1 (mir_eval.transcription), frame-level P/R/F1 and melody
(predominant-f0) accuracies (mir_eval.melody).

Note metrics follow the MIREX note-tracking task as implemented by ``mir_eval.transcription`` and
reported by Onsets and Frames (Hawthorne et al., 2018) and its successors: an estimated note matches a
reference note when the pitch is within 50 cents, the onset within 50 ms, and (for the "with offsets"
variant) the offset within max(50 ms, 20 % of the reference note's duration); matching is one-to-one.
"""

from __future__ import annotations

import numpy as np

from audiozoo.errors import ConfigError, DataError, require

from ._common import ArrayLike, same_shape, to_numpy

__all__ = ["midi_to_hz", "note_metrics", "frame_metrics", "melody_metrics"]


def midi_to_hz(pitch: ArrayLike) -> np.ndarray:
    """MIDI note number (69 = A4) to Hz, 12-tone equal temperament at A4 = 440 Hz."""
    return 440.0 * 2.0 ** ((to_numpy(pitch, "pitch") - 69.0) / 12.0)


def _notes(intervals: ArrayLike, pitches: ArrayLike, name: str, pitch_unit: str) -> tuple[np.ndarray, np.ndarray]:
    iv = to_numpy(intervals, f"{name}_intervals")
    if iv.size == 0:  # [] or np.zeros(0): no notes
        iv = iv.reshape(0, 2)
    p = to_numpy(pitches, f"{name}_pitches").reshape(-1)
    if iv.ndim != 2 or iv.shape[1] != 2:
        raise DataError(f"{name}_intervals: expected (N, 2) [onset, offset] seconds, got shape {iv.shape}")
    if p.shape[0] != iv.shape[0]:
        raise DataError(f"{name}: {iv.shape[0]} intervals but {p.shape[0]} pitches")
    if np.any(iv[:, 1] <= iv[:, 0]) or np.any(iv < 0):
        raise DataError(f"{name}_intervals: every note needs 0 <= onset < offset (seconds)")
    if pitch_unit == "midi":
        p = midi_to_hz(p)
    elif pitch_unit != "hz":
        raise ConfigError(f"note_metrics: pitch_unit must be 'hz' or 'midi', got '{pitch_unit}'")
    if np.any(p <= 0):
        raise DataError(f"{name}_pitches: pitches in Hz must be positive")
    return iv, p


def note_metrics(
    est_intervals: ArrayLike,
    est_pitches: ArrayLike,
    ref_intervals: ArrayLike,
    ref_pitches: ArrayLike,
    *,
    pitch_unit: str = "hz",
    onset_tolerance: float = 0.05,
    offset_ratio: float = 0.2,
    offset_min_tolerance: float = 0.05,
    pitch_tolerance: float = 50.0,
) -> dict[str, float]:
    """Note precision / recall / F1 without and with offsets (``mir_eval.transcription``).

    Args:
        est_intervals, ref_intervals: ``(N, 2)`` note [onset, offset] times in seconds.
        est_pitches, ref_pitches: ``(N,)`` pitches, in Hz (mir_eval's unit) or MIDI numbers with
            ``pitch_unit="midi"`` (converted at A4 = 440 Hz).
        onset_tolerance: seconds (50 ms, MIREX).
        offset_ratio, offset_min_tolerance: offset window = max(offset_min_tolerance,
            offset_ratio * reference duration) (0.2 and 50 ms, MIREX).
        pitch_tolerance: cents (50).
    Returns:
        ``precision``, ``recall``, ``f1`` (onset + pitch), ``precision_with_offsets``,
        ``recall_with_offsets``, ``f1_with_offsets`` (onset + pitch + offset). An empty estimate or
        reference scores 0, as in mir_eval.
    """
    transcription = require("mir_eval.transcription", "note-level transcription metrics", extra="metrics")
    est_iv, est_p = _notes(est_intervals, est_pitches, "est", pitch_unit)
    ref_iv, ref_p = _notes(ref_intervals, ref_pitches, "ref", pitch_unit)
    common = {"onset_tolerance": onset_tolerance, "pitch_tolerance": pitch_tolerance}
    if len(est_p) == 0 or len(ref_p) == 0:  # mir_eval warns and scores 0; say it without the warning
        return dict.fromkeys(
            ("precision", "recall", "f1", "precision_with_offsets", "recall_with_offsets", "f1_with_offsets"),
            0.0,
        )
    p, r, f, _ = transcription.precision_recall_f1_overlap(ref_iv, ref_p, est_iv, est_p, offset_ratio=None, **common)
    po, ro, fo, _ = transcription.precision_recall_f1_overlap(
        ref_iv,
        ref_p,
        est_iv,
        est_p,
        offset_ratio=offset_ratio,
        offset_min_tolerance=offset_min_tolerance,
        **common,
    )
    return {
        "precision": float(p),
        "recall": float(r),
        "f1": float(f),
        "precision_with_offsets": float(po),
        "recall_with_offsets": float(ro),
        "f1_with_offsets": float(fo),
    }


def frame_metrics(est_roll: ArrayLike, ref_roll: ArrayLike, *, threshold: float = 0.5) -> dict[str, float]:
    """Frame-level precision / recall / F1 / accuracy on piano-rolls, pooled over all (pitch, frame)
    cells of all items (the frame metrics of Onsets and Frames; equal to ``mir_eval.multipitch``'s
    precision/recall/accuracy when each roll bin is one semitone).

    ``precision = TP / (TP + FP)``, ``recall = TP / (TP + FN)``, ``f1`` their harmonic mean and
    ``accuracy = TP / (TP + FP + FN)`` (Dixon, 2000). A zero denominator gives 0, as in mir_eval.

    Args:
        est_roll: ``(..., P, L)`` activations or probabilities, active where ``>= threshold``, or bool.
        ref_roll: ``(..., P, L)`` reference roll (active where ``> 0.5``, i.e. 0/1 or bool).
    """
    est = to_numpy(est_roll, "est_roll")
    ref = to_numpy(ref_roll, "ref_roll")
    same_shape(est, ref, "est_roll/ref_roll")
    if est.ndim < 2:
        raise DataError(f"frame_metrics: expected (..., P, L) piano-rolls, got shape {est.shape}")
    e, r = est >= threshold, ref > 0.5
    tp = float(np.sum(e & r))
    fp = float(np.sum(e & ~r))
    fn = float(np.sum(~e & r))
    precision = tp / (tp + fp) if tp + fp > 0 else 0.0
    recall = tp / (tp + fn) if tp + fn > 0 else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    accuracy = tp / (tp + fp + fn) if tp + fp + fn > 0 else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "accuracy": accuracy}


def melody_metrics(ref_times: ArrayLike, ref_f0: ArrayLike, est_times: ArrayLike, est_f0: ArrayLike,
                   *, cent_tolerance: float = 50.0) -> dict[str, float]:
    """Melody (predominant f0) scores of ``mir_eval.melody`` (MIREX audio melody extraction).

    Both contours are resampled by mir_eval to a 10 ms grid; a frame with f0 ``<= 0`` is unvoiced.
    Returns ``voicing_recall``, ``voicing_false_alarm``, ``raw_pitch_accuracy`` (voiced reference frames whose
    estimate is within ``cent_tolerance`` cents, whatever the estimated voicing), ``raw_chroma_accuracy`` (the
    same modulo octaves) and ``overall_accuracy`` (all frames: voicing right and, where voiced, pitch right).
    """
    melody = require("mir_eval.melody", "melody extraction metrics", extra="metrics")
    rt, rf = to_numpy(ref_times, "ref_times").reshape(-1), to_numpy(ref_f0, "ref_f0").reshape(-1)
    et, ef = to_numpy(est_times, "est_times").reshape(-1), to_numpy(est_f0, "est_f0").reshape(-1)
    for t, f, name in ((rt, rf, "ref"), (et, ef, "est")):
        if t.shape != f.shape or t.size == 0:
            raise DataError(f"melody_metrics: {name} times {t.shape} and f0 {f.shape} must be equal, non-empty")
        if np.any(np.diff(t) <= 0):
            raise DataError(f"melody_metrics: {name} times must increase")
    scores = melody.evaluate(rt.astype(np.float64), rf.astype(np.float64), et.astype(np.float64),
                             ef.astype(np.float64), cent_tolerance=cent_tolerance)
    keys = {"Voicing Recall": "voicing_recall", "Voicing False Alarm": "voicing_false_alarm",
            "Raw Pitch Accuracy": "raw_pitch_accuracy", "Raw Chroma Accuracy": "raw_chroma_accuracy",
            "Overall Accuracy": "overall_accuracy"}
    return {v: float(scores[k]) for k, v in keys.items()}
