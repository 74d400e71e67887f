"""`audiozoo demo --quick` writes real outputs (spectrogram PNGs, JSON, scored tagging when weights exist) and
prints its report as a table; the table's formatting is tested on a fake summary."""

from __future__ import annotations

import json

import pytest

from audiozoo.cli import main
from audiozoo.demo import TABLE_COLUMNS, add_row, format_table


def _fake_summary(root) -> dict:
    s: dict = {}
    add_row(s, "features", "log-mel + Kaldi fbank", "12 files", str(root / "features"), "PNG + JSON per file")
    add_row(s, "tag", "ast_tiny.fsdd_digits", "50 clips, shared/data/fsdd", "summary.json", "top-1 accuracy 0.960",
            "chance 0.100")
    add_row(s, "vocode", "apnet.freev_speech16k+griffinlim:32", "arctic_a0001.wav",
            str(root / "vocode" / ("arctic_a0001." + "x" * 60 + ".wav")), "MR-STFT dist 1.234",
            "griffinlim:32 (same mel) 1.567")
    add_row(s, "upsample", "-", "-", "skipped (no 16 kHz real speech input)")
    return s


def test_table_formatting(tmp_path):
    rows = _fake_summary(tmp_path)["table"]
    text = format_table(rows, max_width=40, root=tmp_path)
    lines = text.splitlines()
    assert len(lines) == 2 + len(rows)  # header, rule, one line per row
    assert lines[0].split() == list(TABLE_COLUMNS)
    assert set(lines[1].replace(" ", "")) == {"-"}
    # every column starts at the same offset on every line (the rule's dashes mark the columns)
    starts = [i for i, ch in enumerate(lines[1]) if ch == "-" and (i == 0 or lines[1][i - 1] == " ")]
    assert len(starts) == len(TABLE_COLUMNS)
    for line in lines[2:]:
        assert all(line[a - 1] == " " for a in starts[1:])
    cells = [[line[a:b].strip() for a, b in zip(starts, [*starts[1:], None])] for line in lines[2:]]
    assert cells[1][4:] == ["top-1 accuracy 0.960", "chance 0.100"]
    assert cells[0][3] == "features"  # a path under root is shown relative to it
    assert str(tmp_path) not in text
    assert cells[2][3].startswith("...") and cells[2][3].endswith("xxx.wav")  # a long path keeps its tail
    assert all(len(c) <= 40 for row in cells for c in row)
    assert cells[3][4:] == ["-", "-"]  # empty cells print as "-"
    assert format_table([]) == "(nothing ran)"


@pytest.mark.slow
def test_demo_quick_writes_outputs(tmp_path, capsys):
    assert main(["demo", "--quick", "-o", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["inputs"] > 0
    pngs = list((tmp_path / "features").glob("*.png"))
    assert len(pngs) == len(summary["pipelines"]["features"]) and all(p.stat().st_size > 1000 for p in pngs)
    tagged = summary["pipelines"]["audio-classification"]
    assert "ast_tiny.fsdd_digits" in tagged  # the shipped checkpoint is found and used
    for acc in tagged["ast_tiny.fsdd_digits"]["accuracy"].values():
        assert 0.0 <= acc["accuracy"] <= 1.0 and acc["n"] > 0
    # the console report is the table of summary["table"]: one row per thing that ran, with its metric
    assert format_table(summary["table"], root=tmp_path) in printed
    pipelines = {r["pipeline"] for r in summary["table"]}
    assert {"features", "tag"} <= pipelines
    assert any(r["pipeline"] == "tag" and r["metric"].startswith("top-1 accuracy") and r["baseline"]
               for r in summary["table"])
    # tts: the default voice speaks the six ARCTIC prompts (text it never trained on), judged by Whisper tiny.en;
    # measured WER 0.37 (fastspeech2_small) / 0.20 (delightful_tts_small), espeak-ng 0.30; babble scores ~1
    tts = summary["pipelines"]["tts"]
    assert len(tts["hypotheses"]) == 6 and tts["wer"] < 0.6 and "espeak_ng" in tts
    assert len(list((tmp_path / "tts").glob("sentence_*.wav"))) == 6
