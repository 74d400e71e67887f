"""Transcription pipeline (basic-pitch inference path): windowing, note creation, MIDI/CSV/PNG output."""

from __future__ import annotations

import csv
import functools
import json
import logging
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiozoo.data.midi import NOTE_CSV_COLUMNS as CSV_COLUMNS
from audiozoo.data.midi import notes_to_midi_bytes
from audiozoo.data.notes import (
    HOP_SAMPLES,
    OVERLAP_SAMPLES,
    WINDOW_SAMPLES,
    min_note_frames,
    model_output_to_notes,
    unwrap_output,
    window_audio,
)
from audiozoo.dsp.io import load_audio, resample
from audiozoo.errors import ConfigError
from audiozoo.pipelines.transcribe import TranscriptionPipeline
from audiozoo.resolve import resolve_model

CLIP = "librosa/sorohanro_-_solo-trumpet-06.ogg"


@functools.lru_cache(maxsize=1)
def _model() -> torch.nn.Module:
    return resolve_model("basic_pitch_nmp", "transcribe", trained=True).eval()


@functools.lru_cache(maxsize=2)
def _activations(path: str) -> dict[str, np.ndarray]:
    wav, sr = load_audio(path, mono=True)
    p = TranscriptionPipeline(_model())
    return p.activations(resample(wav, sr, 22050))


def _basic_pitch(module: str):
    logging.getLogger().setLevel(logging.ERROR)  # basic_pitch warns at import about missing TF/CoreML/TFLite
    import importlib

    return importlib.import_module(f"basic_pitch.{module}")


def test_min_note_frames_matches_reference_default():
    # predict(): round(127.70 ms * 22050 / 256 / 1000) = 11 frames
    assert min_note_frames(127.70) == 11


@pytest.mark.parity
@pytest.mark.parametrize("kw", [
    dict(onset_threshold=0.5, frame_threshold=0.3, min_note_len=11),  # basic-pitch defaults
    dict(onset_threshold=0.3, frame_threshold=0.15, min_note_len=5),  # more notes, more melodia-trick work
    dict(onset_threshold=0.5, frame_threshold=0.3, min_note_len=11, melodia_trick=False),
    dict(onset_threshold=0.4, frame_threshold=0.2, min_note_len=3, min_freq=300.0, max_freq=900.0),
])
def test_note_creation_parity(shared_data: Path, kw: dict):
    nc = _basic_pitch("note_creation")
    out = _activations(str(shared_data / CLIP))
    ref_kw = {("onset_thresh" if k == "onset_threshold" else "frame_thresh" if k == "frame_threshold" else k): v
              for k, v in kw.items()}
    # the reference zeroes bins in place (constrain_frequency): give it its own copies
    _, ref = nc.model_output_to_notes({k: v.copy() for k, v in out.items()}, **ref_kw)
    ours = model_output_to_notes(out, **kw)
    assert len(ours) > 3 and len(ours) == len(ref)
    for a, b in zip(ours, ref):  # same order as the reference, not only the same set
        # frame indices map to times through the same float64 formula: exact equality expected
        assert (a[0], a[1], a[2]) == (float(b[0]), float(b[1]), int(b[2]))
        # amplitude: the mean of the same float32 activations; 1e-5 allows a different summation order
        assert abs(a[3] - float(b[3])) < 1e-5
        assert a[4] == [int(x) for x in b[4]]


@pytest.mark.parity
def test_note_creation_parity_melodia_only():
    """Onsets below threshold: every note comes from the melodia trick (leftover-energy tracking)."""
    nc = _basic_pitch("note_creation")
    rng = np.random.default_rng(0)
    n = 300
    note = (rng.random((n, 88)) * 0.2).astype(np.float32)
    for t0, t1, f in [(10, 60, 40), (50, 120, 44), (150, 290, 20), (200, 230, 87), (5, 40, 0)]:
        note[t0:t1, f] = 0.6 + 0.3 * rng.random(t1 - t0)
    out = {"note": note, "onset": np.zeros_like(note), "contour": rng.random((n, 264)).astype(np.float32)}
    _, ref = nc.model_output_to_notes({k: v.copy() for k, v in out.items()}, 0.5, 0.3, infer_onsets=False)
    ours = model_output_to_notes(out, infer_onsets_=False)
    assert len(ours) == len(ref) == 5
    for a, b in zip(ours, ref):
        assert (a[0], a[1], a[2]) == (float(b[0]), float(b[1]), int(b[2]))
        assert abs(a[3] - float(b[3])) < 1e-5  # float32 mean, summation order
        assert a[4] == [int(x) for x in b[4]]


@pytest.mark.parity
@pytest.mark.parametrize("seconds", [0.7, 4.3])  # shorter than one window; several windows + a padded tail
def test_windowing_and_unwrap_match_reference(tmp_path: Path, seconds: float):
    bi = _basic_pitch("inference")
    rng = np.random.default_rng(1)
    t = np.arange(int(seconds * 22050)) / 22050
    audio = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    path = tmp_path / "x.wav"
    sf.write(path, audio, 22050, subtype="FLOAT")
    ref = list(bi.get_audio_input(str(path), OVERLAP_SAMPLES, HOP_SAMPLES))
    ref_windows = np.concatenate([w[..., 0] for w, _, _ in ref])
    ours = window_audio(torch.from_numpy(audio))
    assert ours.shape == ref_windows.shape and ours.shape[1] == WINDOW_SAMPLES
    np.testing.assert_array_equal(ours.numpy(), ref_windows)  # pure copies and zero padding: exact
    with torch.no_grad():
        out = _model()(ours)
    for k in ("note", "onset", "contour"):
        o = out[k].numpy()
        np.testing.assert_array_equal(unwrap_output(o, audio.size), bi.unwrap_output(o, ref[0][2], 30))
    # the pipeline's activations are the same windows through the same network, unwrapped
    act = TranscriptionPipeline(_model(), batch_size=2).activations(torch.from_numpy(audio))
    assert act["note"].shape == (int(audio.size * 86 / 22050), 88)
    # batching (2 vs all windows) only changes float reduction order in the convs: 1e-5 absolute on [0, 1]
    np.testing.assert_allclose(act["note"], unwrap_output(out["note"].numpy(), audio.size), atol=1e-5)


def _read_midi_notes(data: bytes) -> list[tuple[int, int]]:
    """(tick, pitch) of every note-on with velocity > 0; checks the SMF chunk structure on the way."""
    assert data[:4] == b"MThd"
    _, _, ntrk, _ = struct.unpack(">IHHH", data[4:14])
    pos, notes = 14, []
    for _ in range(ntrk):
        assert data[pos : pos + 4] == b"MTrk"
        (length,) = struct.unpack(">I", data[pos + 4 : pos + 8])
        trk, pos, i, tick = data[pos + 8 : pos + 8 + length], pos + 8 + length, 0, 0
        while i < len(trk):
            delta = 0
            while True:
                b = trk[i]
                i += 1
                delta = (delta << 7) | (b & 0x7F)
                if b < 0x80:
                    break
            tick += delta
            st = trk[i]
            if st == 0xFF:
                i += 3 + trk[i + 2]  # meta events here are short (tempo, end of track)
            elif st >> 4 == 0xC:
                i += 2
            else:
                if st >> 4 == 0x9 and trk[i + 2] > 0:
                    notes.append((tick, trk[i + 1]))
                i += 3
        assert trk.endswith(b"\xff\x2f\x00")
    assert pos == len(data)
    return notes


@pytest.mark.slow
def test_end_to_end_on_rendered_chorale(tmp_path: Path):
    from audiozoo.data.builders import build
    from audiozoo.eval.music import note_metrics

    manifest = build("music-render", tmp_path / "corpus", pieces=1, progress=False)
    item = json.loads(manifest.read_text().splitlines()[0])
    ref = json.loads((manifest.parent / item["notes"]).read_text())["notes"]
    out_dir = tmp_path / "out"
    r = TranscriptionPipeline(_model(), out_dir=out_dir)(str(manifest.parent / item["audio_filepath"]))
    json.dumps(r)  # JSON-able
    est = r["notes"]
    scores = note_metrics([[n["start_s"], n["end_s"]] for n in est], [n["pitch_midi"] for n in est],
                          [[n["onset"], n["offset"]] for n in ref], [n["pitch"] for n in ref], pitch_unit="midi")
    print(f"rendered chorale: {len(est)} notes vs {len(ref)}, onset-only note metrics {scores}")
    f1 = scores["f1"]  # onset + pitch (50 ms, 50 cents), offsets ignored
    # basic-pitch on the GM-piano rendering of bwv347: onset-only F1 measured 0.864 (P 0.79, R 0.96);
    # 0.5 leaves margin for soundfont differences while still failing on misaligned times or pitches
    assert f1 > 0.5, scores
    files = r["files"]
    midi = Path(files["midi"]).read_bytes()
    on = _read_midi_notes(midi)
    assert sorted(p for _, p in on) == sorted(n["pitch_midi"] for n in est)
    # ticks are 1/1920 s at 120 bpm: the first note-on lies within one tick of the first note's start
    assert abs(min(t for t, _ in on) / 1920 - min(n["start_s"] for n in est)) <= 1 / 1920
    with open(files["csv"]) as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == CSV_COLUMNS and len(rows) == len(est) + 1
    assert Path(files["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parity
def test_midi_readable_by_pretty_midi(tmp_path: Path):
    import pretty_midi

    events = [(0.1, 0.6, 60, 0.8, [0, 1, 2, 1]), (0.5, 1.0, 64, 0.5, [0, -1]), (1.2, 1.5, 67, 0.3, None)]
    path = tmp_path / "x.mid"
    path.write_bytes(notes_to_midi_bytes(events))
    pm = pretty_midi.PrettyMIDI(str(path))
    notes = sorted((n.start, n.end, n.pitch, n.velocity) for i in pm.instruments for n in i.notes)
    # times are quantised to 1/1920 s ticks: within half a tick
    for (s, e, p, v), (s0, e0, p0, a0, _) in zip(notes, events):
        assert abs(s - s0) <= 1 / 3840 and abs(e - e0) <= 1 / 3840 and p == p0 and v == round(127 * a0)
    # the first two notes overlap, so (as in basic-pitch) neither keeps its bends on the shared channel
    assert sum(len(i.pitch_bends) for i in pm.instruments) == 0
    path.write_bytes(notes_to_midi_bytes(events, multiple_pitch_bends=True))
    pm = pretty_midi.PrettyMIDI(str(path))
    bends = {i.notes[0].pitch: [b.pitch for b in i.pitch_bends] for i in pm.instruments}
    assert bends == {60: [0, 1365, 2731, 1365], 64: [0, -1365], 67: []}  # round(b * 4096 / 3)


def test_pipeline_rejects_bad_settings():
    with pytest.raises(ConfigError, match="onset_threshold"):
        TranscriptionPipeline(_model(), onset_threshold=1.5)
    with pytest.raises(ConfigError, match="minimum_frequency"):
        TranscriptionPipeline(_model(), minimum_frequency=1000.0, maximum_frequency=200.0)
    with pytest.raises(ConfigError, match="classify model; this needs transcribe"):
        TranscriptionPipeline("ast_base_p16")


def test_pipeline_array_input_and_resampling():
    sr = 16000
    t = np.arange(int(1.5 * sr)) / sr
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)  # A4 = MIDI 69
    r = TranscriptionPipeline(_model())({"array": tone, "sampling_rate": sr})
    assert r["num_frames"] == int(1.5 * 22050 * 86 / 22050)
    assert r["notes"], r
    assert 69 in {n["pitch_midi"] for n in r["notes"]}
