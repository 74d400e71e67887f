"""``transcription`` pipeline: audio -> note events (+ MIDI / CSV / piano-roll PNG) with basic-pitch's NMP.

Follows the inference path of the official basic-pitch 0.4.0 code (Bittner et al., ICASSP 2022,
arXiv 2203.09893; ``basic_pitch/inference.py`` and ``note_creation.py``): windowing and note creation are
:mod:`audiozoo.data.notes`, MIDI and CSV writing :mod:`audiozoo.data.midi` (shared with training's validation);
this module runs the model over the windows and writes the files (+ a piano-roll PNG).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.midi import NOTE_CSV_COLUMNS, notes_to_midi_bytes, write_note_csv
from ..data.notes import (
    FFT_HOP,
    HOP_SAMPLES,
    MIDI_OFFSET,
    OVERLAP_SAMPLES,
    SAMPLE_RATE,
    WINDOW_SAMPLES,
    NoteEvent,
    min_note_frames,
    model_frames_to_time,
    model_output_to_notes,
    unwrap_output,
    window_audio,
)
from ..errors import AudioError, ConfigError
from ..resolve import resolve_model
from .base import AudioInput, Pipeline, batched, ensure_dir
from .plots import save_image_png

CSV_COLUMNS = NOTE_CSV_COLUMNS

# note decoding and MIDI/CSV writing live below both pipelines and training (audiozoo.data.notes,
# audiozoo.data.midi); their names are re-exported here for users of this module
__all__ = ["CSV_COLUMNS", "HOP_SAMPLES", "OVERLAP_SAMPLES", "SAMPLE_RATE", "WINDOW_SAMPLES", "TranscriptionPipeline",
           "min_note_frames", "model_output_to_notes", "notes_to_midi_bytes", "save_piano_roll_png", "unwrap_output",
           "window_audio", "write_note_csv"]


def save_piano_roll_png(note: np.ndarray, events: list[NoteEvent], path: str | os.PathLike, title: str = "") -> None:
    """Note activations ``(n_frames, 88)`` as a piano roll (time x MIDI pitch) with the notes outlined."""
    from matplotlib.patches import Rectangle

    n = note.shape[0]
    dur = float(model_frames_to_time(n)[-1]) + FFT_HOP / SAMPLE_RATE if n else 0.0

    def outline_notes(ax) -> None:
        for start, end, pitch, _, _ in events:
            ax.add_patch(Rectangle((start, pitch - 0.5), end - start, 1, fill=False, edgecolor="tab:red", lw=0.8))

    save_image_png(note.T, path, extent=(0, dur, MIDI_OFFSET - 0.5, MIDI_OFFSET + 87.5), ylabel="MIDI pitch",
                   title=title, cmap="Greys", height=4, colorbar={"label": "note activation"}, draw=outline_notes,
                   vmin=0, vmax=1)


# ----------------------------------------------------------------------------------------------- pipeline
class TranscriptionPipeline(Pipeline):
    """Audio -> notes ``{"input", "notes": [...], "num_frames", "duration_s", "files"?}`` (basic-pitch defaults)."""

    task = "transcription"
    family = "transcribe"
    sample_rate = SAMPLE_RATE

    def __init__(self, model: Any = "basic_pitch_nmp", onset_threshold: float = 0.5, frame_threshold: float = 0.3,
                 minimum_note_length_ms: float = 127.70, minimum_frequency: float | None = None,
                 maximum_frequency: float | None = None, multiple_pitch_bends: bool = False,
                 melodia_trick: bool = True, out_dir: str | os.PathLike | None = None, **kw: Any):
        super().__init__(**kw)
        for name, v in (("onset_threshold", onset_threshold), ("frame_threshold", frame_threshold)):
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {v}")
        if minimum_note_length_ms < 0:
            raise ConfigError(f"minimum_note_length_ms must be >= 0, got {minimum_note_length_ms}")
        for name, v in (("minimum_frequency", minimum_frequency), ("maximum_frequency", maximum_frequency)):
            if v is not None and not v > 0:
                raise ConfigError(f"{name} must be a positive frequency in Hz, got {v}")
        if minimum_frequency and maximum_frequency and minimum_frequency >= maximum_frequency:
            raise ConfigError(f"minimum_frequency {minimum_frequency} must be below maximum_frequency "
                              f"{maximum_frequency}")
        # channels_last: oneDNN's 2-D convolutions run ~1.4x faster on CPU in NHWC (outputs equal to 5e-7).
        self.model = resolve_model(model, "transcribe", trained=True)
        self.model = self.model.to(self.device, memory_format=torch.channels_last).eval()
        self.onset_threshold, self.frame_threshold = onset_threshold, frame_threshold
        self.min_note_len = min_note_frames(minimum_note_length_ms)
        self.min_freq, self.max_freq = minimum_frequency, maximum_frequency
        self.multiple_pitch_bends, self.melodia_trick = multiple_pitch_bends, melodia_trick
        self.out_dir = Path(out_dir) if out_dir is not None else None

    @torch.no_grad()
    def activations(self, wav: torch.Tensor) -> dict[str, np.ndarray]:
        """Mono ``(T,)`` at 22,050 Hz -> unwrapped {"note": (n, 88), "onset": (n, 88), "contour": (n, 264)}."""
        windows = window_audio(wav.float())
        n = wav.shape[-1]
        parts: dict[str, list[np.ndarray]] = {"note": [], "onset": [], "contour": []}
        for idx in batched(list(range(len(windows))), self.batch_size):
            out = self.model(windows[idx].to(self.device))
            for k in parts:  # drop each window's overlapping edges now: a long file keeps one copy of its frames
                parts[k].append(unwrap_output(out[k].float().cpu().numpy(), n))
        # then cut the joined frames to the signal's own count (no overlap left to drop)
        return {k: unwrap_output(np.concatenate(v)[None], n, n_overlapping_frames=0) for k, v in parts.items()}

    def _forward(self, a: AudioInput) -> dict[str, Any]:
        # Output frames are floor(T * 86 / 22050) (unwrap_output): a clip under one frame has no activations
        # to decode, so it is refused by name rather than returned as an empty (or broken) transcription.
        min_samples = math.ceil(SAMPLE_RATE / (SAMPLE_RATE // FFT_HOP))
        if a.wav.shape[-1] < min_samples:
            raise AudioError(f"{a.source}: too short to transcribe: {a.wav.shape[-1]} samples at {SAMPLE_RATE} Hz; "
                             f"need at least one model frame ({min_samples} samples = "
                             f"{1000 * min_samples / SAMPLE_RATE:.1f} ms)")
        out = self.activations(a.wav)
        events = model_output_to_notes(out, self.onset_threshold, self.frame_threshold, self.min_note_len,
                                       self.min_freq, self.max_freq, True, self.melodia_trick)
        events.sort(key=lambda e: (e[0], e[2], e[1]))
        notes = [{"start_s": round(s, 6), "end_s": round(e, 6), "pitch_midi": int(p), "amplitude": round(amp, 6),
                  "velocity": int(np.round(127 * amp)), "pitch_bends": b} for s, e, p, amp, b in events]
        result: dict[str, Any] = {"input": a.source, "notes": notes, "num_frames": int(out["note"].shape[0]),
                                  "duration_s": round(a.wav.shape[-1] / SAMPLE_RATE, 6)}
        if self.out_dir is not None:
            d = ensure_dir(self.out_dir)
            stem = Path(a.source).stem if not a.source.startswith("<") else "transcription"
            files = {"midi": d / f"{stem}.mid", "csv": d / f"{stem}.csv", "png": d / f"{stem}.png"}
            files["midi"].write_bytes(notes_to_midi_bytes(events, self.multiple_pitch_bends))
            write_note_csv(events, files["csv"])
            save_piano_roll_png(out["note"], events, files["png"], title=Path(a.source).name)
            result["files"] = {k: str(v) for k, v in files.items()}
        return result
