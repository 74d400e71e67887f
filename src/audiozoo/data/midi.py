"""Standard MIDI File (type 1) writing and note-event files: the rendering of note lists (corpus builders) and
the output of transcription (pipelines, training validation), below both.

Times are given in seconds and stored at a fixed tempo of 120 bpm with ``PPQ`` ticks per quarter note, so one
tick is ``1 / TICKS_PER_SECOND`` s. :func:`quantize` gives the times that the file (and so the rendered audio)
really uses; annotations written from it are exact.

- :func:`midi_bytes`: tracks of :class:`MidiNote` (rendering: one program/channel per track);
- :func:`notes_to_midi_bytes`, :func:`write_note_csv`: transcribed note events with pitch bends, as basic-pitch
  0.4.0 writes them (``basic_pitch/note_creation.py``; Bittner et al., ICASSP 2022);
- :func:`track_chunk`: one MTrk chunk from timed messages (the public building block of both).
"""

from __future__ import annotations

import csv
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .notes import CONTOUR_BINS_PER_SEMITONE, NoteEvent

__all__ = [
    "ELECTRIC_PIANO_1", "N_PITCH_BEND_TICKS", "NOTE_CSV_COLUMNS", "PPQ", "TEMPO_US", "TICKS_PER_SECOND", "MidiNote",
    "MidiTrack", "bend_ticks", "drop_overlapping_pitch_bends", "midi_bytes", "notes_to_midi_bytes", "quantize",
    "ticks_to_seconds", "track_chunk", "write_note_csv",
]

N_PITCH_BEND_TICKS = 8192
ELECTRIC_PIANO_1 = 4  # GM program basic-pitch writes its notes with
NOTE_CSV_COLUMNS = ["start_time_s", "end_time_s", "pitch_midi", "velocity", "pitch_bend"]

PPQ = 960
TEMPO_US = 500_000  # microseconds per quarter note = 120 bpm
TICKS_PER_SECOND = PPQ * 1_000_000 // TEMPO_US  # 1920 ticks/s: 0.52 ms resolution


@dataclass(frozen=True)
class MidiNote:
    onset: float  # seconds
    offset: float  # seconds
    pitch: int  # MIDI note number 0..127
    velocity: int  # 1..127


@dataclass(frozen=True)
class MidiTrack:
    notes: Sequence[MidiNote]
    channel: int  # 0..15 (9 is GM percussion)
    program: int  # GM program 0..127
    name: str = ""


def quantize(seconds: float) -> int:
    """Seconds -> ticks of the written file."""
    return int(round(seconds * TICKS_PER_SECOND))


def ticks_to_seconds(ticks: int) -> float:
    return ticks / TICKS_PER_SECOND


def _varlen(n: int) -> bytes:
    """MIDI variable-length quantity: 7 bits per byte, high bit set on all but the last."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(reversed(out))


def track_chunk(events: list[tuple[int, int, bytes]], end_tick: int) -> bytes:
    """An MTrk chunk from ``(tick, order, message)`` events plus End of Track at ``end_tick``.

    Events are sorted by tick, then by ``order`` (so a note-off can precede a note-on at the same tick);
    ``message`` is the raw MIDI or meta-event bytes.
    """
    data = bytearray()
    now = 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        data += _varlen(tick - now) + msg
        now = tick
    data += _varlen(max(0, end_tick - now)) + b"\xff\x2f\x00"
    return b"MTrk" + struct.pack(">I", len(data)) + bytes(data)


def midi_bytes(tracks: Sequence[MidiTrack], end_seconds: float) -> bytes:
    """A type-1 SMF: a conductor track (tempo) plus one track per :class:`MidiTrack`.

    Every track ends at ``end_seconds`` so files holding different subsets of the tracks (the mix
    and each stem) render to the same length. Note-offs sort before note-ons at the same tick, so a
    repeated pitch is re-struck rather than cut.
    """
    end_tick = quantize(end_seconds)
    conductor = track_chunk([(0, 0, b"\xff\x51\x03" + TEMPO_US.to_bytes(3, "big"))], end_tick)
    chunks = [conductor]
    for tr in tracks:
        ch = tr.channel
        ev: list[tuple[int, int, bytes]] = []
        if tr.name:
            name = tr.name.encode("ascii", "replace")[:127]
            ev.append((0, 0, b"\xff\x03" + _varlen(len(name)) + name))
        ev.append((0, 1, bytes([0xC0 | ch, tr.program & 0x7F])))
        for n in tr.notes:
            on, off = quantize(n.onset), quantize(n.offset)
            ev.append((on, 3, bytes([0x90 | ch, n.pitch & 0x7F, max(1, min(127, n.velocity))])))
            ev.append((off, 2, bytes([0x80 | ch, n.pitch & 0x7F, 0])))
        chunks.append(track_chunk(ev, end_tick))
    header = b"MThd" + struct.pack(">IHHH", 6, 1, len(chunks), PPQ)
    return header + b"".join(chunks)


# ------------------------------------------------------------------------------ transcribed note events
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
    chunks = [track_chunk([(0, 0, b"\xff\x51\x03" + TEMPO_US.to_bytes(3, "big"))], end_tick)]
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
        chunks.append(track_chunk(ev, end_tick))
    header = b"MThd" + struct.pack(">IHHH", 6, 1, len(chunks), PPQ)
    return header + b"".join(chunks)


def write_note_csv(events: list[NoteEvent], path: str | os.PathLike) -> None:
    """basic-pitch's note-event CSV: start_time_s, end_time_s, pitch_midi, velocity, then any bends."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(NOTE_CSV_COLUMNS)
        for start, end, pitch, amp, bends in events:
            w.writerow([start, end, pitch, int(np.round(127 * amp)), *(bends or [])])
