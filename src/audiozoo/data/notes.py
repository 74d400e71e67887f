"""Note decoding of frame activations (basic-pitch's windowing and note creation), below both training and
pipelines.

Follows the inference path of the official basic-pitch 0.4.0 code (Bittner et al., ICASSP 2022,
arXiv 2203.09893; ``basic_pitch/inference.py`` and ``note_creation.py``), re-implemented here:

* windowing (:func:`window_audio`, :func:`unwrap_output`): the signal is left-padded with half the overlap
  (15 frames of 256 samples) and cut into 2 s - 256-sample windows (43,844 samples = 172 model frames) every
  36,164 samples, so consecutive windows overlap by 30 frames; 15 frames are dropped at each window edge and the
  rest concatenated.
* note creation (:func:`model_output_to_notes`): onset peaks over threshold are tracked forward through the
  frame activations until 11 frames (``energy_tol``) stay below the frame threshold; the "melodia trick" then
  turns leftover energy into notes; per-note pitch bends come from the contour output (1/3-semitone bins).

Note events are ``(start_s, end_s, pitch_midi, amplitude, bends | None)``; :mod:`audiozoo.data.midi` writes them.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import ConfigError

__all__ = [
    "ANNOT_N_FRAMES", "CONTOUR_BINS_PER_SEMITONE", "FFT_HOP", "HOP_SAMPLES", "MIDI_OFFSET", "N_CONTOUR_BINS",
    "N_OVERLAP_FRAMES", "NoteEvent", "OVERLAP_SAMPLES", "SAMPLE_RATE", "WINDOW_SAMPLES", "constrain_frequency",
    "infer_onsets", "min_note_frames", "model_frames_to_time", "model_output_to_notes", "output_to_notes",
    "pitch_bends", "unwrap_output", "window_audio", "window_start_seconds",
]

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


def window_start_seconds(window: int, offset_samples: int = 0, sample_rate: int = SAMPLE_RATE) -> float:
    """Time (s) of frame 0 of window ``window`` of :func:`window_audio`, for a signal starting at sample
    ``offset_samples`` of a longer recording (the half-overlap of zeros is prepended before the first window)."""
    return (offset_samples + window * HOP_SAMPLES - OVERLAP_SAMPLES // 2) / sample_rate
