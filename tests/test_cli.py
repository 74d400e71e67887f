"""The `audiozoo` command line: list, info, error reporting."""

from __future__ import annotations

import json
import subprocess
import sys

from audiozoo.cli import main


def test_info_prints_paper_and_param_count(capsys):
    assert main(["info", "ast_base_p16"]) == 0
    out = capsys.readouterr().out
    assert "AST: Audio Spectrogram Transformer" in out and "86.59M" in out and "2104.01778" in out


def test_list_and_json(capsys):
    assert main(["list"]) == 0
    assert "ast_base_p16" in capsys.readouterr().out
    assert main(["list", "classify", "--json"]) == 0
    assert "ast_tiny" in json.loads(capsys.readouterr().out)


def test_unknown_model_is_a_clean_error(capsys):
    assert main(["info", "nope_model"]) == 2
    assert "no model named 'nope_model'" in capsys.readouterr().err


def test_console_script_entry_point():
    r = subprocess.run([sys.executable, "-m", "audiozoo.cli", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("audiozoo ")


def test_transcribe_verb_writes_midi_csv_png(tmp_path, capsys):
    """A 1 s 440 Hz tone (A4) -> one MIDI note 69, with the real basic-pitch weights."""
    import numpy as np
    import soundfile as sf

    sr = 22050
    t = np.arange(sr) / sr
    tone = (0.4 * np.sin(2 * np.pi * 440 * t) * np.minimum(1, 20 * (1 - t))).astype(np.float32)
    sf.write(tmp_path / "a4.wav", tone, sr)
    assert main(["transcribe", str(tmp_path / "a4.wav"), "-o", str(tmp_path / "out")]) == 0
    assert "a4.wav: " in capsys.readouterr().out
    for ext in ("mid", "csv", "png"):
        assert (tmp_path / "out" / f"a4.{ext}").stat().st_size > 0
    rows = (tmp_path / "out" / "a4.csv").read_text().splitlines()[1:]
    pitches = {int(r.split(",")[2]) for r in rows}
    assert 69 in pitches, rows
