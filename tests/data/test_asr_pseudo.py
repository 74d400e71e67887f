"""The asr-pseudo pipeline (GigaSpeech 2 stages) on tiny inputs with a fake teacher and a fake aligner."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import soundfile as sf

from audiozoo.data.builders import BUILDERS
from audiozoo.data.builders import asr_pseudo as ap
from audiozoo.data.manifest import read_manifest, write_manifest
from audiozoo.errors import DataError

SR = 16000


class FakeTeacher:
    """Windows of at most 5 s with a scripted text per recording (by file name)."""

    name = "fake-teacher"

    def __init__(self, texts: dict[str, list[str]]) -> None:
        self.texts, self.calls = texts, 0

    def transcribe(self, wav, sample_rate):
        self.calls += 1
        dur = wav.shape[-1] / sample_rate
        texts = self.texts[self.current]
        step = dur / len(texts)
        return [{"start": i * step, "end": (i + 1) * step, "text": t} for i, t in enumerate(texts)]


class FakeAligner:
    """Words spread evenly over the window (0.3 s each, 0.3 s pauses); its own text equals the teacher's except
    for words starting with 'x', which it hears as 'q'."""

    name = "fake-aligner"

    def normalize(self, text):
        return " ".join(re.sub(r"[^\w' ]", " ", text.lower()).split())

    def unknown_chars(self, text):
        return sorted({c for c in text if not (c.isascii() and (c.isalpha() or c in " '"))})

    def align(self, wav, sample_rate, text):
        words = text.split()
        if len(words) * 0.6 > wav.shape[-1] / sample_rate + 1e-6:
            raise DataError("does not fit")
        out = [{"word": w, "start": 0.6 * i, "end": 0.6 * i + 0.3, "score": 0.9} for i, w in enumerate(words)]
        greedy = []
        for i, w in enumerate(words):
            heard = "q" * len(w) if w.startswith("x") else w
            greedy += [(c, 0.6 * i + 0.01 * k) for k, c in enumerate(" " + heard if i else heard)]
        return {"text": text, "words": out, "greedy": greedy}

    def cer(self, ref, hyp):
        import jiwer

        return jiwer.cer(ref, hyp) if hyp else 1.0


@pytest.fixture
def backend(monkeypatch):
    saved = dict(ap._BACKEND)
    teacher, aligner = FakeTeacher({}), FakeAligner()
    real_audio = ap._ModelStage._audio

    def audio(item):  # tell the fake teacher which recording it hears
        teacher.current = item["audio_filepath"].rsplit("/", 1)[-1]
        return real_audio(item)

    monkeypatch.setattr(ap._ModelStage, "_audio", staticmethod(audio))
    ap.set_model_backend(lambda spec: teacher, lambda spec: aligner, lambda r, h: 0.0)
    yield teacher
    ap._BACKEND.clear()
    ap._BACKEND.update(saved)


def _collected(tmp_path, durations: dict[str, float]):
    d = tmp_path / "collect"
    (d / "wavs").mkdir(parents=True)
    items = []
    rng = np.random.default_rng(0)
    for name, dur in durations.items():
        sf.write(d / "wavs" / name, (0.1 * rng.standard_normal(int(dur * SR))).astype(np.float32), SR)
        items.append({"audio_filepath": f"wavs/{name}", "duration": dur, "kind": "synth", "reference_text": None})
    write_manifest(d / "manifest.jsonl", items)
    (d / ".done").write_text("{}\n")
    return d


def test_segment_words_cuts_in_pauses_within_limits():
    # 20 words of 0.3 s, a 0.5 s pause after every 5th word, 0.1 s gaps otherwise
    words, t = [], 0.0
    for i in range(20):
        words.append({"word": f"w{i}", "start": t, "end": t + 0.3})
        t += 0.3 + (0.5 if i % 5 == 4 else 0.1)
    segs = ap.segment_words(words, 0.0, t, target=1.5, max_seconds=30, min_seconds=1.0, pause=0.2, pad=0.15)
    assert [len(g) for _, _, g in segs] == [5, 5, 5, 5]  # every cut in a pause
    assert segs[0][0] == 0.0 and segs[1][0] == pytest.approx(words[5]["start"] - 0.15)
    assert all(e <= s2 for (_, e, _), (s2, _, _) in zip(segs, segs[1:]))  # no overlap
    # a cap of 3 s forces cuts before the words that would overflow, at the widest gap
    capped = ap.segment_words(words, 0.0, t, target=100, max_seconds=3.0, pause=0.2)
    assert sum(len(g) for _, _, g in capped) == 20
    assert all(words[g[-1]]["end"] - words[g[0]]["start"] <= 3.0 for _, _, g in capped)
    # a too-short tail joins the previous utterance
    tail = ap.segment_words(words[:6], 0.0, 10.0, target=1.5, min_seconds=1.0, pause=0.2)
    assert [len(g) for _, _, g in tail] == [6]


def test_filter_reasons():
    o = {"min_seconds": 1.0, "max_seconds": 30.0, "min_cps": 4.0, "max_cps": 25.0, "min_english": 0.6,
         "max_cer": 0.5}
    agree = lambda r, h: 0.0 if r == h else 1.0  # noqa: E731
    good = {"duration": 2.0, "text": "the house is very old", "ctc_text": "the house is very old"}
    assert ap.filter_reasons(dict(good), o, agree) == []
    assert ap.filter_reasons({**good, "duration": 0.5}, o, agree) == ["duration", "chars_per_second"]
    assert ap.filter_reasons({**good, "duration": 10.0}, o, agree) == ["chars_per_second"]
    assert ap.filter_reasons({**good, "text": "das haus ist sehr alt"}, o, agree) == ["language", "agreement"]
    assert ap.filter_reasons({**good, "ctc_text": "zzz"}, o, agree) == ["agreement"]
    assert ap.filter_reasons({**good, "text": "das haus ist sehr alt"}, {**o, "min_english": 0, "max_cer": None},
                             agree) == []


def test_pipeline_stages_reasons_and_resume(tmp_path, backend):
    col = _collected(tmp_path, {"a.wav": 12.0, "b.wav": 6.0})
    backend.texts = {
        "a.wav": ["The house is old. It has a big garden.", "Is it 7 now?"],  # digit: spelled out
        "b.wav": ["x" + " xo" * 19],  # 20 words in 6 s: does not fit
    }
    out = tmp_path / "run"
    opts = dict(collected=str(col), teacher="fake", aligner="fake", target_seconds=2.0, min_english=0.5,
                max_cer=0.5)
    kept = BUILDERS["asr-pseudo"].run(out, progress=False, **opts)
    for stage in ("transcribe", "align"):
        assert (out / stage / "manifest.jsonl").is_file() and (out / stage / ".done").is_file()
    items = read_manifest(kept)
    assert items and all({"audio_filepath", "offset", "duration", "text"} <= set(it) for it in items)
    text = " ".join(it["text"] for it in items)
    assert "seven" in text and "7" not in text  # numbers spelled before alignment
    dropped = read_manifest(out / "filter" / "dropped.jsonl")
    assert any(d["reasons"] == ["align_failed"] for d in dropped)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["collect"]["recordings"] == 2 and summary["transcribe"]["windows"] == 3
    assert summary["align"]["windows_by_status"] == {"aligned": 2, "align_failed": 1}
    assert summary["filter"]["segments_kept"] == len(items)
    assert summary["filter"]["dropped_segments_per_reason"].get("align_failed") == 1
    # resumability: a second run calls no model and rewrites nothing
    calls, mtime = backend.calls, (out / "align" / "manifest.jsonl").stat().st_mtime_ns
    BUILDERS["asr-pseudo"].run(out, progress=False, **opts)
    assert backend.calls == calls and (out / "align" / "manifest.jsonl").stat().st_mtime_ns == mtime
    # other filter options re-run only the filter (and the agreement filter drops 'x' words)
    BUILDERS["asr-pseudo"].run(out, progress=False, **{**opts, "min_cps": 20.0, "max_cps": 24.0})
    assert backend.calls == calls
    reasons = [r for d in read_manifest(out / "filter" / "dropped.jsonl") for r in d["reasons"]]
    assert reasons.count("chars_per_second") == len(items)
    # segmentation options belong to the align stage: changing them in the same folder is refused
    with pytest.raises(DataError, match="other settings"):
        BUILDERS["asr-pseudo"].run(out, progress=False, **{**opts, "min_seconds": 3.0})


def test_agreement_and_charset_reasons(tmp_path, backend):
    col = _collected(tmp_path, {"c.wav": 8.0})
    backend.texts = {"c.wav": ["xaaa xbbb xccc xddd xeee xfff", "caf\u00e9 \u00fcber alles"]}
    out = tmp_path / "run"
    BUILDERS["asr-pseudo"].run(out, progress=False, collected=str(col), teacher="f", aligner="f", min_english=0,
                               max_cer=0.3)
    dropped = read_manifest(out / "filter" / "dropped.jsonl")
    assert sorted(tuple(d["reasons"]) for d in dropped) == [("agreement",), ("charset",)]
    assert next(d for d in dropped if d["reasons"] == ["charset"])["chars"] == ["\u00e9", "\u00fc"]
    assert next(d for d in dropped if d["reasons"] == ["agreement"])["agreement_cer"] > 0.3
    assert read_manifest(out / "filter" / "kept.jsonl") == []


def test_collect_real_never_uses_test_recordings(tmp_path):
    root = tmp_path / "shared"
    (root / "fsdd").mkdir(parents=True)
    (root / "speech_sources" / "cmu_arctic").mkdir(parents=True)
    tone = (0.3 * np.sin(np.arange(4000) / 5)).astype(np.float32)
    for take in (0, 3, 5, 6):
        sf.write(root / "fsdd" / f"7_george_{take}.wav", tone, 8000)
    sf.write(root / "speech_sources" / "cmu_arctic" / "cmu_arctic_us_aew_a0001.wav", tone, 16000)
    sf.write(root / "speech_sources" / "cmu_arctic" / "other_8000.wav", tone, 8000)
    excl = tmp_path / "held.jsonl"
    write_manifest(excl, [{"audio_filepath": str(root / "fsdd" / "7_george_6.wav"), "duration": 0.5, "text": "x"}],
                   relative=False)
    m = ap.CollectStage().run(tmp_path / "col", progress=False, sources=["real"], source=str(root), noise_prob=0,
                              rir_prob=0, exclude=[str(excl)])
    items = read_manifest(m)
    used = [s for it in items for s in it["sources"]]
    assert sorted(used) == ["fsdd/7_george_5.wav", "speech_sources/cmu_arctic/other_8000.wav"]
    fsdd = next(it for it in items if it["kind"] == "real" and it["speaker"] == "fsdd:george")
    assert fsdd["reference_text"] == "seven" and fsdd["duration"] == pytest.approx(0.5)
    stamp = m.stat().st_mtime_ns
    ap.CollectStage().run(tmp_path / "col", progress=False, sources=["real"], source=str(root), noise_prob=0,
                          rir_prob=0, exclude=[str(excl)])
    assert m.stat().st_mtime_ns == stamp  # complete: skipped


def test_missing_backend_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(ap, "_BACKEND", {})
    col = _collected(tmp_path, {"d.wav": 2.0})
    with pytest.raises(Exception, match="model backend"):
        BUILDERS["asr-pseudo"].run(tmp_path / "run", progress=False, collected=str(col))


@pytest.mark.slow  # loads Whisper tiny.en (~3 s)
def test_whisper_teacher_on_a_real_clip(tmp_path):
    pytest.importorskip("ctranslate2")
    pytest.importorskip("tokenizers")
    from audiozoo.data.builders.base import shared_data_root

    try:
        p = shared_data_root() / "speech_sources" / "sisec2011_speech" / "dev1_male4_src_1.wav"
    except DataError:
        pytest.skip("../shared/data is absent")
    from audiozoo.dsp.io import load_audio
    from audiozoo.errors import MissingDependencyError
    from audiozoo.pipelines.asr_pseudo import make_teacher

    try:
        teacher = make_teacher("whisper:beam1")
    except MissingDependencyError as e:
        pytest.skip(str(e))
    wav = load_audio(str(p), sample_rate=SR)[0][: 3 * SR]
    windows = teacher.transcribe(wav, SR)
    assert len(windows) == 1 and windows[0]["end"] == pytest.approx(3.0) and windows[0]["text"]


def test_ctc_aligner_backend_with_the_shipped_model():
    import torch

    from audiozoo.errors import AudiozooError
    from audiozoo.pipelines.asr_pseudo import make_aligner

    try:
        al = make_aligner("conformer_aed_small.synth_en")
    except AudiozooError as e:  # weights not shipped in this install
        pytest.skip(str(e))
    assert al.unknown_chars("caf\u00e9 no 7") == ["7", "\u00e9"]
    assert al.normalize("Hello, World!") == "hello world"
    t = torch.arange(2 * SR) / SR
    wav = 0.3 * torch.sin(2 * torch.pi * 220 * t) * (torch.sin(2 * torch.pi * 2 * t) > 0)  # 4 tone bursts
    res = al.align(wav, SR, "one two three")
    words = res["words"]
    assert [w["word"] for w in words] == ["one", "two", "three"]
    assert all(0 <= a["start"] < a["end"] <= b["start"] <= 2.0 for a, b in zip(words, words[1:]))
    assert all(0 <= t <= 2.0 for _, t in res["greedy"])
    with pytest.raises(DataError):
        al.align(wav[:4000], SR, "a very long transcript that cannot fit into a quarter of a second")
