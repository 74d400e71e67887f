"""Note metrics vs mir_eval on hand cases; frame metrics by hand and vs mir_eval.multipitch."""

from __future__ import annotations

import numpy as np
import pytest

from audiozoo.errors import DataError
from audiozoo.eval import frame_metrics, midi_to_hz, note_metrics

REF_IV = np.array([[0.0, 1.0], [1.0, 1.5], [2.0, 3.0]])
REF_MIDI = np.array([60, 64, 67])


def _mir_eval(ref_iv, ref_hz, est_iv, est_hz, offset_ratio):
    import mir_eval.transcription

    return mir_eval.transcription.precision_recall_f1_overlap(
        ref_iv, ref_hz, est_iv, est_hz, offset_ratio=offset_ratio
    )[:3]


def test_midi_to_hz():
    np.testing.assert_allclose(midi_to_hz([69, 81, 60]), [440.0, 880.0, 261.6255653], rtol=1e-9)


@pytest.mark.parity
def test_one_missed_note():
    # Estimate the first two notes exactly (onsets jittered by 20 ms, inside the 50 ms window); miss the third.
    est_iv = REF_IV[:2] + 0.02
    out = note_metrics(est_iv, REF_MIDI[:2], REF_IV, REF_MIDI, pitch_unit="midi")
    # By hand: 2 matches, 2 estimates, 3 references -> P = 1, R = 2/3, F1 = 0.8, with or without offsets.
    for suffix in ("", "_with_offsets"):
        assert out[f"precision{suffix}"] == pytest.approx(1.0)
        assert out[f"recall{suffix}"] == pytest.approx(2 / 3)
        assert out[f"f1{suffix}"] == pytest.approx(0.8)
    ref = _mir_eval(REF_IV, midi_to_hz(REF_MIDI), est_iv, midi_to_hz(REF_MIDI[:2]), 0.2)
    assert (out["precision_with_offsets"], out["recall_with_offsets"], out["f1_with_offsets"]) == pytest.approx(ref)


@pytest.mark.parity
def test_one_offset_error():
    # Note 2 (0.5 s long) ends 0.3 s late: outside max(50 ms, 0.2 * 0.5 s) = 0.1 s, so it matches on
    # onset only.
    est_iv = REF_IV.copy()
    est_iv[1, 1] += 0.3
    hz = midi_to_hz(REF_MIDI)
    out = note_metrics(est_iv, hz, REF_IV, hz)
    assert (out["precision"], out["recall"], out["f1"]) == pytest.approx((1.0, 1.0, 1.0))
    assert (out["precision_with_offsets"], out["recall_with_offsets"], out["f1_with_offsets"]) == pytest.approx(
        (2 / 3, 2 / 3, 2 / 3)
    )
    assert (out["precision"], out["recall"], out["f1"]) == pytest.approx(_mir_eval(REF_IV, hz, est_iv, hz, None))
    assert (
        out["precision_with_offsets"],
        out["recall_with_offsets"],
        out["f1_with_offsets"],
    ) == pytest.approx(_mir_eval(REF_IV, hz, est_iv, hz, 0.2))
    # A 0.08 s late offset is inside the 0.1 s window: all notes match with offsets too.
    est_iv[1, 1] = REF_IV[1, 1] + 0.08
    assert note_metrics(est_iv, hz, REF_IV, hz)["f1_with_offsets"] == pytest.approx(1.0)


def test_note_metrics_wrong_pitch_empty_and_errors():
    hz = midi_to_hz(REF_MIDI)
    out = note_metrics(REF_IV, hz * 2 ** (1 / 12), REF_IV, hz)  # every note a semitone sharp: > 50 cents
    assert out["f1"] == 0.0
    assert note_metrics(np.zeros((0, 2)), [], REF_IV, hz)["recall"] == 0.0
    with pytest.raises(DataError, match="onset < offset"):
        note_metrics([[1.0, 0.5]], [440.0], REF_IV, hz)
    with pytest.raises(DataError, match="2 intervals but 3"):
        note_metrics(REF_IV[:2], hz, REF_IV, hz)


def test_frame_metrics_hand_case():
    ref = np.array([[1, 1, 0, 0], [0, 1, 1, 0]])
    est = np.array([[0.9, 0.2, 0.0, 0.0], [0.0, 0.7, 0.6, 0.8]])  # TP 3, FP 1, FN 1 at threshold 0.5
    out = frame_metrics(est, ref)
    assert out == pytest.approx({"precision": 0.75, "recall": 0.75, "f1": 0.75, "accuracy": 0.6})
    assert frame_metrics(np.zeros((2, 4)), ref)["precision"] == 0.0  # no estimate: 0, as mir_eval


@pytest.mark.parity
def test_frame_metrics_match_mir_eval_multipitch():
    import mir_eval.multipitch

    rng = np.random.default_rng(0)
    n_pitch, n_frames, hop = 88, 200, 0.01
    ref = rng.random((n_pitch, n_frames)) < 0.05
    est = np.where(rng.random((n_pitch, n_frames)) < 0.8, ref, rng.random((n_pitch, n_frames)) < 0.05)
    freqs = midi_to_hz(np.arange(21, 21 + n_pitch))  # one semitone per bin: 100 cents > 50-cent tolerance
    times = np.arange(n_frames) * hop
    ref_f = [freqs[ref[:, t]] for t in range(n_frames)]
    est_f = [freqs[est[:, t]] for t in range(n_frames)]
    scores = mir_eval.multipitch.evaluate(times, ref_f, times, est_f)
    out = frame_metrics(est, ref)
    # Same counts, same ratios; 1e-9 absorbs float division only.
    assert out["precision"] == pytest.approx(scores["Precision"], abs=1e-9)
    assert out["recall"] == pytest.approx(scores["Recall"], abs=1e-9)
    assert out["accuracy"] == pytest.approx(scores["Accuracy"], abs=1e-9)
