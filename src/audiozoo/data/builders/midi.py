"""A minimal Standard MIDI File (type 1) writer for rendering note lists exactly.

Times are given in seconds and stored at a fixed tempo of 120 bpm with ``PPQ`` ticks per quarter
note, so one tick is ``1 / TICKS_PER_SECOND`` s. :func:`quantize` gives the times that the file (and
so the rendered audio) really uses; annotations written from it are exact.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

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


def _chunk(events: list[tuple[int, int, bytes]], end_tick: int) -> bytes:
    """An MTrk chunk from (tick, order, message) events plus End of Track at ``end_tick``."""
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
    conductor = _chunk([(0, 0, b"\xff\x51\x03" + TEMPO_US.to_bytes(3, "big"))], end_tick)
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
        chunks.append(_chunk(ev, end_tick))
    header = b"MThd" + struct.pack(">IHHH", 6, 1, len(chunks), PPQ)
    return header + b"".join(chunks)
