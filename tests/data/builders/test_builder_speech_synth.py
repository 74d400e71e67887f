from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from audiozoo.data import read_manifest
from audiozoo.data.builders import BUILDERS, build
from audiozoo.dsp.io import audio_info

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                reason="espeak-ng is not installed (scripts/setup.sh installs it)")


def test_speech_synth_single_voice_and_resume(tmp_path):
    out = tmp_path / "tts"
    man = build("speech-synth", out, limit=10, sample_rate=16000, progress=False)
    items = read_manifest(man, check_files=True)
    assert len(items) == 10
    for it in items:
        info = audio_info(it["audio_filepath"])
        assert info["sample_rate"] == 16000 and info["channels"] == 1
        assert it["duration"] == pytest.approx(info["duration"], abs=1e-5)  # rounded to 1 us in the manifest
        assert 0.5 < it["duration"] < 15
        assert it["text"][0].isupper() and it["text"][-1] in ".?!" and it["text"].isascii()
        assert it["phonemes"] and not it["phonemes"].isascii()  # IPA
        assert it["speaker"] == "espeak:en-us"
    assert len({it["text"] for it in items}) == 10
    split_sizes = [len(read_manifest(out / f"{k}.jsonl")) if (out / f"{k}.jsonl").stat().st_size else 0
                   for k in ("train", "valid", "test")]
    assert sum(split_sizes) == 10
    stats = json.loads((out / "stats.json").read_text())
    assert stats["items"] == 10 and stats["per_speaker"] == {"espeak:en-us": 10}
    readme = (out / "README.md").read_text()
    assert "wordnet-base" in readme and "license" in readme.lower()
    # a second run does no work
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "wavs").iterdir()}
    build("speech-synth", out, limit=10, sample_rate=16000, progress=False)
    assert BUILDERS["speech-synth"].last_context.built == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "wavs").iterdir()} == mtimes
    # deleting one item rebuilds exactly it, with the same content
    victim = out / "wavs" / "000003.wav"
    data = victim.read_bytes()
    victim.unlink()
    build("speech-synth", out, limit=10, sample_rate=16000, progress=False)
    assert BUILDERS["speech-synth"].last_context.built == 1
    assert victim.read_bytes() == data  # deterministic synthesis
    assert {p: p.stat().st_mtime_ns for p in (out / "wavs").iterdir() if p != victim} == {
        p: t for p, t in mtimes.items() if p != victim}


def test_speech_synth_multi_voice_hours(tmp_path):
    man = build("speech-synth", tmp_path / "multi", voices="multi", hours=0.002, seed=1, progress=False)
    items = read_manifest(man)
    total = sum(it["duration"] for it in items)
    # stops at the first item that reaches the target (7.2 s): never short, at most one item over
    assert total >= 7.2 and total - items[-1]["duration"] < 7.2
    speakers = [it["speaker"] for it in items]
    assert len(set(speakers)) == len(speakers) >= 2  # round-robin over the voices
    assert speakers[:2] == ["espeak:en-us", "espeak:en-gb"]


@pytest.mark.skipif(shutil.which("text2wave") is None or not any(
    Path("/usr/share/festival/voices").glob("*/ked_diphone")),
    reason="festival and festvox-kdlpc16k are not installed (the builder installs them on demand as root)")
def test_speech_synth_festival_voice(tmp_path):
    man = build("speech-synth", tmp_path / "fest", voices="festival:ked_diphone,en-us", limit=2, sample_rate=16000,
                progress=False)
    items = read_manifest(man, check_files=True)
    assert [it["speaker"] for it in items] == ["festival:ked_diphone", "espeak:en-us"]
    assert 0.5 < items[0]["duration"] < 15 and items[0]["phonemes"]
    assert "festival" in (tmp_path / "fest" / "README.md").read_text()


def test_speech_synth_bad_festival_voice(tmp_path):
    from audiozoo.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown festival voice"):
        build("speech-synth", tmp_path / "bad", voices="festival:nobody", limit=1, progress=False)
