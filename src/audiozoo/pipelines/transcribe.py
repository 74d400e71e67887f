"""``transcription`` pipeline: audio -> note events (+ MIDI / CSV / piano-roll PNG) with basic-pitch's NMP.

Follows the inference path of the official basic-pitch 0.4.0 code (Bittner et al., ICASSP 2022,
arXiv 2203.09893; ``basic_pitch/inference.py`` and ``note_creation.py``), re-implemented here:

* windowing: the signal is left-padded with half the overlap (15 frames of 256 samples) and cut into
  2 s - 256-sample windows (43,844 samples = 172 model frames) every 36,164 samples, so consecutive
  windows overlap by 30 frames; 15 frames are dropped at each window edge and the rest concatenated.
* note creation: onset peaks over threshold are tracked forward through the frame activations until 11
  frames (``energy_tol``) stay below the frame threshold; the "melodia trick" then turns leftover
  energy into notes; per-note pitch bends come from the contour output (1/3-semitone bins).
"""

from __future__ import annotations

import csv
import math
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.builders.midi import PPQ, TEMPO_US, _chunk, quantize
from ..errors import AudioError, ConfigError
from ..resolve import resolve_model
from .base import AudioInput, Pipeline, batched, ensure_dir
from .plots import save_image_png

# basic_pitch/constants.py
SAMPLE_RATE = 22050
FFT_HOP = 256
ANNOT_N_FRAMES = (SAMPLE_RATE // FFT_HOP) * 2  # 172 frames per 2 s training window
WINDOW_SAMPLES = SAMPLE_RATE * 2 - FFT_HOP  # AUDIO_N_SAMPLES = 43,844
N_OVERLAP_FRAMES = 30  # inference.run_inference
OVERLAP_SAMPLES = N_OVERLAP_FRAMES * FFT_HOP
HOP_SAMPLES = WINDOW_SAMPLES - OVERLAP_SAMPLES
MIDI_OFFSET = 21  # note bin 0 = A0 = MIDI 21
MAX_FREQ_IDX = 87
CONTOUR_BINS_PER_SEMITONE = 3
N_CONTOUR_BINS = 88 * CONTOUR_BINS_PER_SEMITONE
N_PITCH_BEND_TICKS = 8192
ELECTRIC_PIANO_1 = 4  # GM program basic-pitch writes its notes with
CSV_COLUMNS = ["start_time_s", "end_time_s", "pitch_midi", "velocity", "pitch_bend"]

NoteEvent = tuple[float, float, int, float, "list[int] | None"]


# --------------------------------------------------------------------------------------------- windowing
def window_audio(wav: torch.Tensor) -> torch.Tensor:
    """Cut mono audio ``(T,)`` at 22,050 Hz into basic-pitch's overlapping windows ``(N, 43844)``.

    Half the overlap is prepended as zeros so the first kept frame is the signal's first frame; windows
    start every ``HOP_SAMPLES`` up to the padded length and the last ones are zero-padded.
    """
    if wav.ndim != 1:
        raise ConfigError(f"window_audio expects a mono waveform (T,), got shape {tuple(wav.shape)}")
    x = torch.cat([wav.new_zeros(OVERLAP_SAMPLES // 2), wav])
    starts = range(0, x.shape[0], HOP_SAMPLES)
    out = wav.new_zeros(len(starts), WINDOW_SAMPLES)
    for i, s in enumerate(starts):
        seg = x[s : s + WINDOW_SAMPLES]
        out[i, : seg.shape[0]] = seg
    return out


def unwrap_output(output: np.ndarray, original_length: int, n_overlapping_frames: int = N_OVERLAP_FRAMES
                  ) -> np.ndarray:
    """Per-window outputs ``(N, L, F)`` -> one matrix ``(n_frames, F)`` trimmed to the signal's length.

    ``n_frames = floor(original_length * 86 / 22050)`` (86 = the integer annotation frame rate basic-pitch
    uses here, not 22050 / 256).
    """
    if output.ndim != 3:
        raise ConfigError(f"unwrap_output expects (windows, frames, bins), got shape {output.shape}")
    half = n_overlapping_frames // 2
    if half > 0:
        output = output[:, half:-half, :]
    n_frames = int(np.floor(original_length * ((SAMPLE_RATE // FFT_HOP) / SAMPLE_RATE)))
    return output.reshape(-1, output.shape[2])[:n_frames]


def model_frames_to_time(n_frames: int) -> np.ndarray:
    """Frame index -> seconds ``(n_frames,)``, with basic-pitch's per-window drift correction.

    The model's 172 frames per window span slightly more than the window's 171.27 hops, so each window
    shifts later frames back; the extra 1.8 ms is the reference's empirical alignment constant.
    """
    idx = np.arange(n_frames)
    window_offset = (FFT_HOP / SAMPLE_RATE) * (ANNOT_N_FRAMES - WINDOW_SAMPLES / FFT_HOP) + 0.0018
    return (idx * FFT_HOP) / SAMPLE_RATE - window_offset * np.floor(idx / ANNOT_N_FRAMES)


def min_note_frames(minimum_note_length_ms: float) -> int:
    """Milliseconds -> frames as ``predict`` does (at 22050 / 256 frames/s): 127.70 ms -> 11."""
    return int(np.round(minimum_note_length_ms / 1000 * (SAMPLE_RATE / FFT_HOP)))


# ----------------------------------------------------------------------------------------- note creation
def _hz_to_midi(f: float) -> float:
    return 12.0 * (math.log2(f) - math.log2(440.0)) + 69.0


def constrain_frequency(onsets: np.ndarray, frames: np.ndarray, max_freq: float | None,
                        min_freq: float | None) -> None:
    """Zero (in place) the note bins above ``max_freq`` / below ``min_freq`` (Hz)."""
    if max_freq is not None:
        i = int(np.round(_hz_to_midi(max_freq) - MIDI_OFFSET))
        onsets[:, max(i, 0):] = 0
        frames[:, max(i, 0):] = 0
    if min_freq is not None:
        i = int(np.round(_hz_to_midi(min_freq) - MIDI_OFFSET))
        onsets[:, : max(i, 0)] = 0
        frames[:, : max(i, 0)] = 0


def infer_onsets(onsets: np.ndarray, frames: np.ndarray, n_diff: int = 2) -> np.ndarray:
    """Add onsets where frame activations jump: max(onsets, rescaled min over 1..n_diff-frame rises)."""
    f = frames.astype(np.float64)
    rises = []
    for n in range(1, n_diff + 1):
        # f delayed by n frames (zeros before the start); sized from f so clips shorter than n frames work
        prev = np.zeros_like(f)
        prev[n:] = f[: max(f.shape[0] - n, 0)]
        rises.append(f - prev)
    diff = np.min(rises, axis=0)
    diff[diff < 0] = 0
    diff[:n_diff] = 0
    peak = diff.max() if diff.size else 0.0
    # The reference divides by the max unguarded (NaN on all-flat input); a flat input adds nothing.
    if peak > 0:
        diff = onsets.max() * diff / peak
    return np.maximum(onsets.astype(np.float64), diff)


def _track(energy: np.ndarray, t: int, f: int, step: int, stop: int, thresh: float, tol: int,
           clear: bool) -> tuple[int, int]:
    """Walk from frame ``t`` by ``step`` until ``tol`` frames in a row fall below ``thresh`` or ``stop``.

    Returns (frame where the walk stopped, trailing below-threshold count). With ``clear`` the visited
    frames of bin ``f`` and its two neighbours are zeroed (melodia trick).
    """
    k = 0
    while (t < stop if step > 0 else t > stop) and k < tol:
        k = k + 1 if energy[t, f] < thresh else 0
        if clear:
            energy[t, max(f - 1, 0) : min(f + 1, MAX_FREQ_IDX) + 1] = 0
        t += step
    return t, k


def output_to_notes(frames: np.ndarray, onsets: np.ndarray, onset_threshold: float = 0.5,
                    frame_threshold: float = 0.3, min_note_len: int = 11, infer_onsets_: bool = True,
                    min_freq: float | None = None, max_freq: float | None = None, melodia_trick: bool = True,
                    energy_tol: int = 11) -> list[tuple[int, int, int, float]]:
    """Note activations ``(n_frames, 88)`` + onsets ``(n_frames, 88)`` -> [(start, end frame, MIDI, amplitude)].

    Same algorithm and event order as ``output_to_notes_polyphonic``: onsets are taken latest first
    (descending time, then pitch); a note needs more than ``min_note_len`` frames; amplitude is the mean
    frame activation over the note.
    """
    frames = np.array(frames, copy=True)
    onsets = np.array(onsets, copy=True)
    n = frames.shape[0]
    constrain_frequency(onsets, frames, max_freq, min_freq)
    if infer_onsets_:
        onsets = infer_onsets(onsets, frames)
    # strict local maxima in time (scipy.signal.argrelmax(axis=0): edges are never peaks)
    peak = np.zeros(onsets.shape, dtype=bool)
    if n > 2:
        peak[1:-1] = (onsets[1:-1] > onsets[:-2]) & (onsets[1:-1] > onsets[2:])
    t_idx, f_idx = np.nonzero(np.where(peak, onsets, 0) >= onset_threshold)
    energy = frames.astype(np.float64)
    notes: list[tuple[int, int, int, float]] = []
    for t0, f in zip(t_idx[::-1].tolist(), f_idx[::-1].tolist()):
        if t0 >= n - 1:
            continue
        t, k = _track(energy, t0 + 1, f, 1, n - 1, frame_threshold, energy_tol, clear=False)
        end = t - k
        if end - t0 <= min_note_len:
            continue
        energy[t0:end, max(f - 1, 0) : min(f + 1, MAX_FREQ_IDX) + 1] = 0
        notes.append((t0, end, f + MIDI_OFFSET, float(np.mean(frames[t0:end, f]))))
    if melodia_trick:
        # Leftover energy (notes without a detected onset): grow from the strongest frame both ways.
        while energy.size and np.max(energy) > frame_threshold:
            mid, f = np.unravel_index(np.argmax(energy), energy.shape)
            mid, f = int(mid), int(f)
            energy[mid, f] = 0
            t, k = _track(energy, mid + 1, f, 1, n - 1, frame_threshold, energy_tol, clear=True)
            end = t - 1 - k
            t, k = _track(energy, mid - 1, f, -1, 0, frame_threshold, energy_tol, clear=True)
            start = t + 1 + k
            if end - start <= min_note_len:
                continue
            notes.append((start, end, f + MIDI_OFFSET, float(np.mean(frames[start:end, f]))))
    return notes


def pitch_bends(contours: np.ndarray, notes: list[tuple[int, int, int, float]], n_bins_tolerance: int = 25
                ) -> list[list[int]]:
    """Per note, the contour peak per frame in 1/3-semitone offsets from the note's bin ``(end - start,)``.

    The contour ``(n_frames, 264)`` is weighted by a Gaussian (std 5 bins) centred on the note's bin
    ``3 * (pitch - 21)`` within +-25 bins, as ``get_pitch_bends`` does.
    """
    tol = n_bins_tolerance
    w = 2 * tol + 1
    gauss = np.exp(-0.5 * (np.arange(w) - tol) ** 2 / 25.0)  # scipy gaussian(w, std=5)
    out = []
    for start, end, pitch, _ in notes:
        c = CONTOUR_BINS_PER_SEMITONE * (pitch - MIDI_OFFSET)
        lo, hi = max(c - tol, 0), min(N_CONTOUR_BINS, c + tol + 1)
        g = gauss[max(0, tol - c) : w - max(0, c - (N_CONTOUR_BINS - tol - 1))]
        sub = contours[start:end, lo:hi] * g
        out.append((np.argmax(sub, axis=1) - (c - lo)).tolist())
    return out


def model_output_to_notes(output: dict[str, np.ndarray], onset_threshold: float = 0.5, frame_threshold: float = 0.3,
                          min_note_len: int = 11, min_freq: float | None = None, max_freq: float | None = None,
                          include_pitch_bends: bool = True, melodia_trick: bool = True,
                          infer_onsets_: bool = True) -> list[NoteEvent]:
    """Unwrapped outputs {"note": (n, 88), "onset": (n, 88), "contour": (n, 264)} -> note events.

    Events are ``(start_s, end_s, pitch_midi, amplitude, bends | None)`` in the reference's order.
    """
    for k in ("note", "onset", "contour"):
        if k not in output:
            raise ConfigError(f"model output needs keys note/onset/contour, got {sorted(output)}")
    notes = output_to_notes(output["note"], output["onset"], onset_threshold, frame_threshold, min_note_len,
                            infer_onsets_, min_freq, max_freq, melodia_trick)
    bends = pitch_bends(output["contour"], notes) if include_pitch_bends else [None] * len(notes)
    times = model_frames_to_time(output["contour"].shape[0])
    return [(float(times[s]), float(times[e]), p, a, b) for (s, e, p, a), b in zip(notes, bends)]


# ------------------------------------------------------------------------------------------------ writers
def drop_overlapping_pitch_bends(events: list[NoteEvent]) -> list[NoteEvent]:
    """Sorted events with bends removed from notes overlapping another (MIDI bends are per channel)."""
    ev = sorted(events, key=lambda e: (e[0], e[1], e[2], e[3]))
    for i in range(len(ev) - 1):
        for j in range(i + 1, len(ev)):
            if ev[j][0] >= ev[i][1]:
                break
            ev[i] = (*ev[i][:4], None)
            ev[j] = (*ev[j][:4], None)
    return ev


def bend_ticks(bends: list[int]) -> list[int]:
    """1/3-semitone bends -> 14-bit pitch-wheel values (4096 = one semitone at the default +-2 range)."""
    t = np.round(np.asarray(bends) * 4096 / CONTOUR_BINS_PER_SEMITONE).astype(int)
    return np.clip(t, -N_PITCH_BEND_TICKS, N_PITCH_BEND_TICKS - 1).tolist()


def notes_to_midi_bytes(events: list[NoteEvent], multiple_pitch_bends: bool = False) -> bytes:
    """A type-1 MIDI file of the events (Electric Piano 1, 120 bpm), with pitch bends as basic-pitch writes.

    Without ``multiple_pitch_bends`` every note goes on one channel and overlapping notes lose their bends;
    with it each pitch gets its own track and channel (cycling over the 15 non-drum channels).
    """
    if not multiple_pitch_bends:
        events = drop_overlapping_pitch_bends(events)
    groups: dict[int, list[NoteEvent]] = {}
    for e in events:
        groups.setdefault(e[2] if multiple_pitch_bends else 0, []).append(e)
    end = max([e[1] for e in events], default=0.0)
    end_tick = quantize(end)
    chunks = [_chunk([(0, 0, b"\xff\x51\x03" + TEMPO_US.to_bytes(3, "big"))], end_tick)]
    channels = [c for c in range(16) if c != 9]
    for gi, key in enumerate(sorted(groups)):
        ch = channels[gi % len(channels)]
        ev: list[tuple[int, int, bytes]] = [(0, 0, bytes([0xC0 | ch, ELECTRIC_PIANO_1]))]
        for start, stop, pitch, amp, bends in groups[key]:
            vel = max(1, min(127, int(np.round(127 * amp))))
            ev.append((quantize(start), 3, bytes([0x90 | ch, pitch & 0x7F, vel])))
            ev.append((quantize(stop), 2, bytes([0x80 | ch, pitch & 0x7F, 0])))
            if bends:
                for tm, v in zip(np.linspace(start, stop, len(bends)).tolist(), bend_ticks(bends)):
                    u = v + N_PITCH_BEND_TICKS  # 14-bit unsigned, LSB first
                    ev.append((quantize(tm), 1, bytes([0xE0 | ch, u & 0x7F, (u >> 7) & 0x7F])))
        chunks.append(_chunk(ev, end_tick))
    header = b"MThd" + struct.pack(">IHHH", 6, 1, len(chunks), PPQ)
    return header + b"".join(chunks)


def write_note_csv(events: list[NoteEvent], path: str | os.PathLike) -> None:
    """basic-pitch's note-event CSV: start_time_s, end_time_s, pitch_midi, velocity, then any bends."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        for start, end, pitch, amp, bends in events:
            w.writerow([start, end, pitch, int(np.round(127 * amp)), *(bends or [])])


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
        parts: dict[str, list[np.ndarray]] = {"note": [], "onset": [], "contour": []}
        for idx in batched(list(range(len(windows))), self.batch_size):
            out = self.model(windows[idx].to(self.device))
            for k in parts:
                parts[k].append(out[k].float().cpu().numpy())
        return {k: unwrap_output(np.concatenate(v), wav.shape[-1]) for k, v in parts.items()}

    def _process(self, a: AudioInput) -> dict[str, Any]:
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
