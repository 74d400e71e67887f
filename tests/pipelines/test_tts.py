"""TTS pipeline and CLI: Piper ids as the corpus builder makes them, sentence and long-sentence splitting, speed
control, composition with a vocoder, the default voice."""

from __future__ import annotations

import json
import math

import pytest
import torch

import audiozoo
from audiozoo.errors import ConfigError, DataError
from audiozoo.hub import save_pretrained
from audiozoo.pipelines import pipeline
from audiozoo.pipelines.tts import DEFAULT_TTS, PiperTextEncoder, split_long
from audiozoo.text import espeak_available

needs_espeak = pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed")


def _id_map() -> dict:
    ps = pytest.importorskip("audiozoo.data.builders.piper_speech")
    try:
        return json.loads(ps.voice_files()["config"].read_text(encoding="utf-8"))["phoneme_id_map"]
    except Exception as e:  # the pinned voice wheel is an optional extra
        pytest.skip(f"Piper voice wheel unavailable: {e}")


def _acoustic(tmp_path, **kw):
    torch.manual_seed(0)
    tiny = dict(audiozoo.model_info("fastspeech2_small").tiny)
    tiny.update(vocab_size=256, n_mels=80, n_fft=1024, win_length=1024,
                text={"scheme": "piper", "language": "en-us", "phoneme_id_map": _id_map()}, **kw)
    m = audiozoo.create_model("fastspeech2_small", **tiny).eval()
    m.pitch_stats.copy_(torch.tensor([math.log(110.0), 0.2]))
    m.energy_stats.copy_(torch.tensor([10.0, 5.0]))
    save_pretrained(m, tmp_path / "am")
    return m, str(tmp_path / "am")


def test_split_long_keeps_everything() -> None:
    s = "ðɪs ɪz ɐ lˈɔŋ sˈɛntəns, wɪð ɐ klˈɔz; ænd mˈɔːɹ wˈɜːdz æftɚ ɪt."
    pieces = split_long(s, 20)
    assert all(len(p) <= 20 for p in pieces) and len(pieces) >= 3
    assert "".join(pieces).replace(" ", "") == s.replace(" ", "")
    assert pieces[0].endswith(",") or " " not in pieces[0][:-1] or len(pieces[0]) <= 20
    assert split_long("abc", 10) == ["abc"]
    assert split_long("abcdefghij", 4) == ["abcd", "efgh", "ij"]  # one long word: hard cuts
    with pytest.raises(ConfigError):
        split_long("abc", 0)


@needs_espeak
def test_piper_ids_equal_the_corpus_builder() -> None:
    from audiozoo.data.builders.piper_speech import phonemes_to_ids, piper_sentences
    from audiozoo.text.phonemes import EspeakPhonemizer

    id_map = _id_map()
    enc = PiperTextEncoder({"scheme": "piper", "phoneme_id_map": id_map})
    text = "The cat sat on the mat. Did it, really?"
    ids, phon = enc.encode(text)
    want = piper_sentences(EspeakPhonemizer("en-us").phonemize(text))
    assert phon == want and len(ids) == 2
    assert ids == [phonemes_to_ids(p, id_map)[0] for p in want]
    assert ids[0][:2] == id_map["^"] + id_map["_"] and ids[0][-1] == id_map["$"][0]
    with pytest.raises(DataError):
        enc.encode("   ")
    with pytest.raises(ConfigError):
        PiperTextEncoder({"scheme": "arpabet"})


@needs_espeak
def test_pipeline_speaks_every_sentence(tmp_path) -> None:
    m, folder = _acoustic(tmp_path)
    tts = pipeline("tts", model=f"{folder}+griffinlim:2", sentence_silence=0.1, batch_size=1)
    out = tts("Hello there. How are you?")
    assert out["sample_rate"] == 22050 and out["sentences"] == 2 and len(out["phonemes"]) == 2
    # each sentence as the composed system speaks it alone, plus one 0.1 s gap
    ids, _ = tts.encoder.encode("Hello there. How are you?")
    alone = [int(tts.system.synthesize(torch.tensor([x]))[1]) for x in ids]
    assert out["audio"].shape == (sum(alone) + round(0.1 * 22050),)
    frames = [int(m.synthesize(torch.tensor([x]))[1]) for x in ids]
    assert alone == [tts.system.vocoder.output_length(f) for f in frames]
    fast = tts("Hello there. How are you?", speed=2.0)
    assert fast["audio"].shape[-1] < out["audio"].shape[-1]
    with pytest.raises(ConfigError):
        tts("Hi.", speed=10.0)


@needs_espeak
def test_long_sentence_is_split_not_truncated(tmp_path) -> None:
    _, folder = _acoustic(tmp_path, max_positions=40)
    tts = pipeline("tts", model=f"{folder}+griffinlim:1")
    long = "This sentence goes on and on, with many words and clauses, far beyond what the model reads at once"
    pieces = tts.phonemes(long)
    assert len(pieces) >= 3 and all(len(p) <= tts.encoder.max_chars for p in pieces)
    full = "".join(tts.encoder._ps.piper_sentences(tts.encoder._phonemizer.phonemize(long)))
    assert "".join(pieces).replace(" ", "") == full.replace(" ", "")
    assert tts(long)["sentences"] == len(pieces)


@needs_espeak
def test_cli_text_file_and_phonemes(tmp_path, capsys) -> None:
    from audiozoo.cli import main
    from audiozoo.dsp.io import load_audio

    _, folder = _acoustic(tmp_path)
    lines = tmp_path / "lines.txt"
    lines.write_text("First line.\n\nSecond line here.\n")
    out = tmp_path / "out.wav"
    assert main(["tts", str(lines), "-o", str(out), "-m", f"{folder}+griffinlim:2", "--show-phonemes"]) == 0
    printed = capsys.readouterr().out
    assert "fˈɜːst lˈaɪn." in printed and "2 sentence(s)" in printed
    wav, sr = load_audio(out)
    assert sr == 22050 and wav.shape[-1] > 0.25 * sr


def test_model_without_text_scheme_is_refused(tmp_path) -> None:
    tiny = dict(audiozoo.model_info("fastspeech2_small").tiny)
    m = audiozoo.create_model("fastspeech2_small", **{**tiny, "n_mels": 80, "n_fft": 1024, "win_length": 1024})
    save_pretrained(m, tmp_path / "am")
    with pytest.raises(ConfigError, match="config.text"):
        pipeline("tts", model=f"{tmp_path / 'am'}+griffinlim:1")


@needs_espeak
def test_default_voice() -> None:
    """``audiozoo tts`` with no -m: the shipped DelightfulTTS + the real HiFi-GAN V1 (or Griffin-Lim + a note)."""
    from audiozoo.registry import model_info

    if DEFAULT_TTS.split(".")[1] not in model_info(DEFAULT_TTS.split(".")[0]).weights:
        pytest.skip("no shipped default voice")
    tts = pipeline("tts")
    out = tts("Good morning.")
    assert out["sample_rate"] == 22050 and 0.3 < out["seconds"] < 3.0
    assert float(out["audio"].abs().max()) > 0.05  # it says something


def test_waveform_model_speaks_without_a_vocoder(tmp_path) -> None:
    """FastSpeech 2s decodes audio itself: the pipeline adds no vocoder, and a '+VOCODER' spec is refused."""
    torch.manual_seed(0)
    tiny = dict(audiozoo.model_info("fastspeech2s").tiny)
    tiny.update(vocab_size=256, text={"scheme": "piper", "language": "en-us", "phoneme_id_map": _id_map()})
    m = audiozoo.create_model("fastspeech2s", **tiny).eval()
    save_pretrained(m, tmp_path / "fs2s")
    tts = pipeline("tts", model=str(tmp_path / "fs2s"))
    assert tts.system.vocoder is None and tts.sample_rate == m.sample_rate
    ids, _ = tts.encoder.encode("Hello there.")
    wav, n = m.synthesize(torch.tensor(ids))
    out = tts("Hello there.")
    assert out["audio"].shape == (int(n[0]),) and torch.allclose(out["audio"], wav[0, : int(n[0])], atol=1e-6)
    with pytest.raises(ConfigError, match="without a vocoder"):
        pipeline("tts", model=f"{tmp_path / 'fs2s'}+griffinlim:1")


@needs_espeak
def test_hifigan_runs_fused_and_speaks_the_same(tmp_path) -> None:
    """On CPU the pipeline vocodes through HiFi-GAN's fused inference copy (as ``vocode`` does): same audio as the
    plain generator within float rounding, and the caller's system keeps its plain vocoder."""
    from audiozoo.models.tts.system import TTSSystem
    from audiozoo.nn.fast_conv import fast_conv_available

    if not fast_conv_available():
        pytest.skip("oneDNN fused convolutions are not available in this PyTorch build")
    m, _ = _acoustic(tmp_path)
    torch.manual_seed(1)
    tiny = {**audiozoo.model_info("hifigan_v1").tiny, "n_mels": 80, "n_fft": 1024, "win_length": 1024,
            "upsample_rates": (8, 8, 4), "upsample_kernel_sizes": (16, 16, 8)}  # the acoustic model's mel
    voc = audiozoo.create_model("hifigan_v1", **tiny).eval()
    system = TTSSystem(m, voc).eval()
    fused = pipeline("tts", model=system)
    plain = pipeline("tts", model=system, fast=False)
    assert fused.system.vocoder._fused is not None and plain.system.vocoder._fused is None
    assert system.vocoder is voc and voc._fused is None  # nothing the caller gave was changed
    a, b = fused("Hello there.")["audio"], plain("Hello there.")["audio"]
    assert a.shape == b.shape and float(b.abs().max()) > 0
    assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
