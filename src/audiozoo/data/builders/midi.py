"""The Standard MIDI File writer used by the corpus builders; it lives in :mod:`audiozoo.data.midi` (below the
builders, pipelines and training) and is re-exported here for the builders."""

from __future__ import annotations

from ..midi import (
    PPQ,
    TEMPO_US,
    TICKS_PER_SECOND,
    MidiNote,
    MidiTrack,
    midi_bytes,
    quantize,
    ticks_to_seconds,
    track_chunk,
)

__all__ = ["PPQ", "TEMPO_US", "TICKS_PER_SECOND", "MidiNote", "MidiTrack", "midi_bytes", "quantize",
           "ticks_to_seconds", "track_chunk"]
