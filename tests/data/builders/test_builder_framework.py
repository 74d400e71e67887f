"""Builder registry, CLI, shared-data lookup, tool checks, MIDI writer and score/text helpers."""

from __future__ import annotations

import argparse
import json

import pytest

from audiozoo.data.builders import BUILDERS, add_cli, build
from audiozoo.data.builders.base import Journal, require_tool, shared_data_root
from audiozoo.data.builders.midi import TICKS_PER_SECOND, MidiNote, MidiTrack, midi_bytes
from audiozoo.errors import ConfigError, DataError, MissingDependencyError


def test_registry():
    assert set(BUILDERS) == {"fsdd", "yesno", "speech-synth", "music-render", "mixtures", "sonic-pi",
                             "piper-speech", "asr-pseudo"}
    for name, b in BUILDERS.items():
        assert b.name == name and b.description and b.license
    with pytest.raises(ConfigError, match="unknown corpus builder"):
        build("nope", "x")


def _parser():
    p = argparse.ArgumentParser(prog="audiozoo")
    add_cli(p.add_subparsers(dest="command"))
    return p


def test_cli_list_and_build(tmp_path, capsys, mix_sources):
    p = _parser()
    args = p.parse_args(["data", "list"])
    assert args.func(args) == 0
    assert "speech-synth" in capsys.readouterr().out
    out = tmp_path / "mx"
    args = p.parse_args(["data", "build", "mixtures", "--out", str(out), "--speech", str(mix_sources["speech"]),
                         "--count", "2", "--sir", "1", "2", "--seconds", "1", "--quiet"])
    assert args.func(args) == 0
    assert capsys.readouterr().out.strip() == str(out / "manifest.jsonl")
    assert json.loads((out / "build.json").read_text())["options"]["sir"] == [1.0, 2.0]
    assert "--sir 1.0 2.0" in (out / "README.md").read_text()  # the README's rebuild command
    args = p.parse_args(["data", "build", "fsdd", "--out", "x", "--valid"])
    assert args.valid is True and args.source is None
    with pytest.raises(SystemExit):  # --out is required
        p.parse_args(["data", "build", "fsdd"])
    with pytest.raises(SystemExit):  # choices are checked
        p.parse_args(["data", "build", "speech-synth", "--out", "x", "--text", "bible"])


def test_shared_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIOZOO_SHARED_DATA", str(tmp_path))
    assert shared_data_root() == tmp_path
    assert shared_data_root(tmp_path / ".") == tmp_path / "."
    with pytest.raises(DataError, match="--source"):
        shared_data_root(tmp_path / "missing")
    monkeypatch.setenv("AUDIOZOO_SHARED_DATA", str(tmp_path / "missing"))
    with pytest.raises(DataError, match="AUDIOZOO_SHARED_DATA"):
        shared_data_root()


def test_missing_tools_are_clear(tmp_path, monkeypatch):
    with pytest.raises(MissingDependencyError, match="apt-get install no-such-pkg"):
        require_tool("no-such-program-xyz", "a feature", "no-such-pkg")
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(MissingDependencyError, match="espeak-ng"):
        build("speech-synth", tmp_path / "s", limit=1, progress=False)
    with pytest.raises(MissingDependencyError, match="fluidsynth"):
        build("music-render", tmp_path / "m", pieces=1, progress=False)
    with pytest.raises(MissingDependencyError, match="sonic-pi-samples"):
        build("sonic-pi", tmp_path / "p", source=str(tmp_path), progress=False)


def test_text_source_missing_and_not_root(tmp_path, monkeypatch):
    import os

    from audiozoo.data.builders import speech_synth

    monkeypatch.setitem(speech_synth.TEXT_SOURCES, "wordnet", ("wordnet-base", [str(tmp_path / "none")], ""))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # not root: must not try apt-get
    with pytest.raises(MissingDependencyError, match="apt-get install wordnet-base"):
        speech_synth.load_sentences("wordnet")


def test_journal_survives_a_cut_line(tmp_path):
    j = Journal(tmp_path / ".journal.jsonl")
    j.append({"id": "a", "entry": {"x": 1}})
    with open(j.path, "a") as f:
        f.write('{"id": "b", "entr')  # interrupted mid-write
    j.append({"id": "c", "skip": True})
    assert set(j.load()) == {"a", "c"}


def test_midi_writer_round_trip():
    music21 = pytest.importorskip("music21")  # the 'music' extra; installed in CI
    notes = [MidiNote(0.0, 0.5, 60, 100), MidiNote(0.5, 1.25, 60, 90), MidiNote(0.25, 2.0, 67, 70)]
    data = midi_bytes([MidiTrack(notes, channel=2, program=41, name="viola")], end_seconds=3.0)
    mf = music21.midi.MidiFile()
    mf.readstr(data)
    assert mf.format == 1 and mf.ticksPerQuarterNote == 960 and len(mf.tracks) == 2
    t = 0
    got = []
    for ev in mf.tracks[1].events:
        if ev.isDeltaTime():
            t += ev.time
        elif ev.isNoteOn() or ev.isNoteOff():
            got.append((t / TICKS_PER_SECOND, ev.pitch, ev.isNoteOn(), ev.channel))
        elif ev.type == music21.midi.ChannelVoiceMessages.PROGRAM_CHANGE:
            assert ev.data == 41 and ev.channel == 3  # music21 numbers channels from 1
    # exact times; at 0.5 s the first note's off comes before the second's on (a re-strike)
    assert got == [(0.0, 60, True, 3), (0.25, 67, True, 3), (0.5, 60, False, 3), (0.5, 60, True, 3),
                   (1.25, 60, False, 3), (2.0, 67, False, 3)]
    assert t / TICKS_PER_SECOND == 3.0  # end of track: every file of a piece has the same length


def test_extract_parts_seconds_ties_and_chords():
    music21 = pytest.importorskip("music21")
    from audiozoo.data.builders.music_render import _fix_overlaps, extract_parts

    s = music21.stream.Score()
    p = music21.stream.Part()
    p.partName = "Upper"
    p.insert(0, music21.tempo.MetronomeMark(number=60))
    a, b = music21.note.Note("C4", quarterLength=1.0), music21.note.Note("C4", quarterLength=1.0)
    a.tie, b.tie = music21.tie.Tie("start"), music21.tie.Tie("stop")
    p.append([a, b, music21.chord.Chord(["E4", "G4"], quarterLength=0.5)])
    s.insert(0, p)
    parts = extract_parts(s, tempo=None)
    assert parts[0]["name"] == "Upper"
    # 60 bpm: one quarter = 1 s; the tie is merged into one 2 s note
    assert sorted(parts[0]["notes"]) == [(0.0, 2.0, 60, 80), (2.0, 2.5, 64, 80), (2.0, 2.5, 67, 80)]
    assert extract_parts(s, tempo=120.0)[0]["notes"][0][:2] == (0.0, 1.0)
    fixed = _fix_overlaps([MidiNote(0, 2, 60, 80), MidiNote(1, 3, 60, 80), MidiNote(1, 3, 62, 80)])
    assert [(n.onset, n.offset, n.pitch) for n in fixed] == [(0, 1, 60), (1, 3, 60), (1, 3, 62)]


def test_clean_sentence():
    from audiozoo.data.builders.speech_synth import clean_sentence, resolve_voices

    assert clean_sentence("the pilot reported two kills during the mission") == (
        "The pilot reported two kills during the mission.")
    assert clean_sentence("  He said --  no way  ") == "He said, no way."
    assert clean_sentence("Costs $200 today, really") is None  # symbols/digits: spoken form unknown
    assert clean_sentence("Caf\u00e9 society is here now") is None  # non-ASCII
    assert clean_sentence("Too short") is None
    assert clean_sentence(" ".join(["word"] * 30)) is None
    assert clean_sentence("(an aside) in brackets here") is None
    assert resolve_voices("single") == ["espeak:en-us"]
    assert resolve_voices("en-gb+f3, flite:slt") == ["espeak:en-gb+f3", "flite:slt"]
    assert resolve_voices("festival:kal_diphone") == ["festival:kal_diphone"]  # installed / checked by prepare()
    with pytest.raises(ConfigError):
        resolve_voices("mbrola:us1")
