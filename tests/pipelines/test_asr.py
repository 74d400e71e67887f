"""ASR and alignment pipelines: pause-aware segmentation, output formats, word timestamps from CTC alignment,
windowed posteriors, the CLI verbs, and the shipped model on real speech."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import audiozoo
from audiozoo.cli import main
from audiozoo.errors import ConfigError, DataError
from audiozoo.hub import save_pretrained
from audiozoo.pipelines import pipeline
from audiozoo.pipelines.asr import DEFAULT_ASR_MODEL, energy_segments, to_srt, to_textgrid, to_vtt

SR = 16000


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    m = audiozoo.create_model("conformer_aed_small", dim=32, enc_layers=1, dec_layers=1, heads=2, dec_heads=2,
                              kernel_size=5, max_target_len=20)
    d = tmp_path_factory.mktemp("asr") / "tiny"
    save_pretrained(m, d)
    return d


def _speechlike(seconds: float, seed: int = 0, gaps=()) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = 0.2 * rng.standard_normal(int(seconds * SR)).astype(np.float32)
    for a, b in gaps:
        x[int(a * SR) : int(b * SR)] *= 1e-3
    return x


def test_energy_segments_cut_in_pauses():
    wav = torch.from_numpy(_speechlike(10.0, gaps=[(2.8, 3.2), (6.9, 7.3)]))
    segs = energy_segments(wav, SR, max_seconds=4.0)
    assert segs[0][0] == 0 and segs[-1][1] == wav.numel()
    assert all(b - a <= 4 * SR for a, b in segs) and all(segs[i][1] == segs[i + 1][0] for i in range(len(segs) - 1))
    cuts = [b / SR for _, b in segs[:-1]]
    assert len(cuts) == 2 and 2.8 <= cuts[0] <= 3.2 and 6.9 <= cuts[1] <= 7.3, cuts
    assert energy_segments(wav[:100], SR, 4.0) == [(0, 100)]


def test_subtitle_and_textgrid_formats():
    segs = [{"start": 0.0, "end": 1.5, "text": "hello"}, {"start": 1.5, "end": 2.0, "text": ""},
            {"start": 2.0, "end": 3661.25, "text": "world"}]
    assert to_srt(segs) == "1\n00:00:00,000 --> 00:00:01,500\nhello\n\n2\n00:00:02,000 --> 01:01:01,250\nworld\n\n"
    assert to_vtt(segs).startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\nhello\n")
    res = {"duration_s": 2.0, "words": [{"word": "hi", "start": 0.5, "end": 0.9}],
           "chars": [{"char": "h", "start": 0.5, "end": 0.6}, {"char": "i", "start": 0.7, "end": 0.9}]}
    tg = to_textgrid(res)
    assert 'name = "words"' in tg and "intervals: size = 3" in tg and 'text = "hi"' in tg
    assert tg.count("intervals [") == 3 + 5  # words: gap, hi, gap; chars: gap, h, gap, i, gap


def test_asr_pipeline_segments_and_word_times(tiny_dir):
    pipe = pipeline("asr", model=str(tiny_dir), max_segment_seconds=1.5)
    wav = _speechlike(4.0, seed=1, gaps=[(1.2, 1.4)])
    r = pipe({"array": wav, "sampling_rate": SR})
    assert r["model"] == str(tiny_dir) and r["duration_s"] == 4.0
    assert len(r["segments"]) >= 3 and r["segments"][-1]["end"] == 4.0
    assert r["text"] == " ".join(s["text"] for s in r["segments"] if s["text"])
    for w in r["words"]:
        assert 0 <= w["start"] <= w["end"] <= 4.0 + 1e-6 and 0 < w["score"] <= 1
    silent = pipe({"array": np.zeros(SR, np.float32), "sampling_rate": SR})
    assert silent["text"] == "" and silent["words"] == []
    with pytest.raises(ConfigError):
        pipeline("asr", model=str(tiny_dir), beam_size=0)


def test_align_pipeline_words_in_order(tiny_dir, tmp_path):
    pipe = pipeline("align", model=str(tiny_dir))
    audio = {"array": _speechlike(3.0, seed=2), "sampling_rate": SR}
    res = pipe.align(audio, "Hello, World! It's me.")
    assert res["text"] == "hello world it's me"
    assert [w["word"] for w in res["words"]] == ["hello", "world", "it's", "me"]
    assert "".join(c["char"] for c in res["chars"]) == "helloworldit'sme"
    starts = [w["start"] for w in res["words"]]
    assert starts == sorted(starts) and all(w["end"] <= 3.0 + 1e-6 for w in res["words"])
    with pytest.raises(DataError, match="cannot align"):
        pipe.align(audio, "room 101")
    with pytest.raises(DataError, match="needs"):
        pipe.align({"array": _speechlike(0.3), "sampling_rate": SR}, "a much longer sentence than this audio")
    # windowed posteriors of a long input have the length of the single pass
    long = torch.from_numpy(_speechlike(9.0, seed=3))
    pipe.window_seconds, pipe.context_seconds = 2.0, 0.5
    windowed = pipe.ctc_log_probs(long)
    pipe.window_seconds = 60.0
    assert abs(windowed.shape[0] - pipe.ctc_log_probs(long).shape[0]) <= 1


def test_align_needs_a_ctc_head(tmp_path):
    m = audiozoo.create_model("samba_asr_small", dim=16, enc_layers=1, dec_layers=1, ctc=False)
    save_pretrained(m, tmp_path / "noctc")
    with pytest.raises(ConfigError, match="CTC head"):
        pipeline("align", model=str(tmp_path / "noctc"))


def test_cli_asr_and_align(tiny_dir, tmp_path, capsys):
    wav = tmp_path / "a.wav"
    sf.write(wav, _speechlike(2.0, seed=4), SR)
    assert main(["asr", str(wav), "-m", str(tiny_dir), "--format", "srt", "-o", str(tmp_path / "a.srt")]) == 0
    assert (tmp_path / "a.srt").is_file()
    assert main(["asr", str(wav), "-m", str(tiny_dir), "--format", "json", "--beam", "2"]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{"):])["duration_s"] == 2.0
    assert main(["asr", str(wav), "-m", str(tiny_dir), "--decoder", "ctc"]) == 0
    (tmp_path / "t.txt").write_text("one two three\n")
    argv = ["align", str(wav), str(tmp_path / "t.txt"), "-m", str(tiny_dir), "-o", str(tmp_path / "x.TextGrid")]
    assert main(argv) == 0
    assert 'text = "three"' in (tmp_path / "x.TextGrid").read_text()
    assert main(["align", str(wav), "one two", "-m", str(tiny_dir), "-o", str(tmp_path / "x.json")]) == 0
    assert [w["word"] for w in json.loads((tmp_path / "x.json").read_text())["words"]] == ["one", "two"]


def _shared() -> Path:
    return Path(os.environ.get("AUDIOZOO_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))


def test_shipped_model_on_real_speech():
    """The shipped small model transcribes and aligns a real CMU ARCTIC recording (weak: synthetic training)."""
    f = _shared() / "speech_sources" / "cmu_arctic" / "cmu_arctic_us_axb_a0005.wav"
    if not f.is_file():
        pytest.skip(f"shared data not found: {f}")
    if DEFAULT_ASR_MODEL not in audiozoo.list_models(with_weights=True):
        pytest.skip(f"{DEFAULT_ASR_MODEL} is not registered yet")
    r = pipeline("asr")(str(f))
    assert r["text"] and r["words"]
    res = pipeline("align").align(str(f), "Will we ever forget it.")
    assert [w["word"] for w in res["words"]] == ["will", "we", "ever", "forget", "it"]
    assert all(b["start"] >= a["end"] - 1e-6 for a, b in zip(res["words"], res["words"][1:]))
