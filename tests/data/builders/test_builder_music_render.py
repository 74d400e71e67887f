from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from audiozoo.data import read_manifest
from audiozoo.data.builders import build
from audiozoo.data.builders.music_render import default_soundfont
from audiozoo.dsp.io import load_audio

pytestmark = [
    pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="fluidsynth is not installed (scripts/setup.sh)"),
    pytest.mark.skipif(default_soundfont() is None, reason="no GM soundfont in /usr/share/sounds/sf2"),
]


@pytest.mark.slow  # ~5 s: 2 pieces x (1 mix + 4 stems) fluidsynth renders
def test_music_render_two_pieces(tmp_path):
    pytest.importorskip("music21")
    out = tmp_path / "mr"
    man = build("music-render", out, pieces=2, reassign_instruments=True, progress=False)
    items = read_manifest(man, check_files=True)
    assert len(items) == 2
    for it in items:
        mix, sr = load_audio(it["audio_filepath"])
        assert sr == 22050 and it["duration"] == pytest.approx(mix.shape[-1] / sr, abs=1e-5)
        stems = {k: load_audio(p)[0] for k, p in it["stems"].items()}
        assert len(stems) >= 2 and all(s.shape == mix.shape for s in stems.values())
        # fluidsynth is linear up to voice-level details (isolated clicks at note changes): measured
        # max |mix - sum(stems)| 2.7e-4..3.2e-3 and RMS ~5e-5 for chorales peaking at ~0.2 (plus 16-bit
        # rounding, 1.5e-5 per file); a wrong stem or offset would give errors of the signal's size
        diff = mix - sum(stems.values())
        assert float(diff.abs().max()) < 1e-2
        assert float(diff.pow(2).mean().sqrt()) < 2e-4
        meta = json.loads(open(it["notes"]).read())
        notes = meta["notes"]
        assert len(notes) == it["num_notes"] > 20
        assert {n["part"] for n in notes} == set(it["stems"])
        assert all(0 <= n["onset"] < n["offset"] <= it["duration"] for n in notes)
        assert [n["onset"] for n in notes] == sorted(n["onset"] for n in notes)
        programs = [p["program"] for p in meta["parts"]]
        assert len(set(programs)) == len(programs)  # reassigned: one timbre per part
        # each stem sounds where its notes are: energy after its first onset, silence long after the end
        for name, s in stems.items():
            first = min(n["onset"] for n in notes if n["part"] == name)
            x = s.numpy()
            assert np.abs(x[: int(first * sr)]).max(initial=0.0) < 1e-3
            assert np.abs(x[int(first * sr) : int((first + 0.5) * sr)]).max() > 1e-2
    stats = json.loads((out / "stats.json").read_text())
    assert stats["pieces"] == 2 and stats["stems"] == sum(len(it["stems"]) for it in items)
    assert "fluidsynth" in (out / "README.md").read_text().lower()
