"""Every CLI verb on inputs that break things (issue #11, deliverable 11).

Each verb (``features``, ``tag``, ``transcribe``, ``vocode`` with its default vocoder and with APNet,
``upsample`` with sinc and with HiFi-SR) gets an empty file, a truncated WAV, a text file named .wav, a WAV
holding a NaN, a 3-sample WAV, a silent WAV and a 48 kHz stereo WAV, through ``audiozoo.cli.main``
in-process. Each either works correctly (exit 0, and the output is checked) or exits with status 2 and an
``audiozoo: error:`` line naming the problem; any other exception escapes ``main`` and fails the test.
Models: the shipped weight sets and basic-pitch's real weights, the cheapest the CLI allows.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiozoo.cli import main

SR = 16000
KINDS = ("empty", "truncated", "text", "nan", "short", "silent", "stereo48k")
VERBS = ("features", "tag", "transcribe", "vocode", "vocode-apnet", "upsample", "upsample-hifisr")

# Files that cannot be audio: every verb refuses them with the same load_audio message.
BROKEN = {
    "empty": r"empty audio file \(0 bytes\).*empty\.wav",
    "truncated": r"truncated WAV: data chunk declares \d+ bytes but only \d+ are present.*truncated\.wav",
    "text": r"cannot read '.*text\.wav' as audio",
    "nan": r"nan\.wav.*non-finite samples \(1 NaN, 0 Inf\)",
}
# Inputs that are audio but too short for the verb's model: the error names the minimum.
TOO_SHORT = {
    "tag": r"short\.wav: 3 samples \(0\.2 ms\) is too short to classify; need at least 400 samples \(25\.0 ms",
    "transcribe": r"short\.wav: too short to transcribe: .* need at least one model frame \(257 samples = 11\.7 ms\)",
    "vocode": r"input of \d+ samples is too short",  # the default vocoder may resample 16 -> 22.05 kHz first
    "vocode-apnet": r"3 samples is too short",
    "upsample-hifisr": r"3 samples \(0\.4 ms\) at 8000 Hz is too short for super-resolution .* need at least 512",
}


@functools.lru_cache(maxsize=1)
def _default_vocoder_rate() -> int:
    from audiozoo.pipelines.vocode import default_vocoder
    from audiozoo.resolve import resolve_model

    return int(resolve_model(default_vocoder()[0], "vocoder").sample_rate)


def _tone(n: int, sr: int, freq: float, amp: float = 0.3) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / sr)).astype(np.float32)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """The seven kinds at 16 kHz, and at 8 kHz (the HiFi-SR weight set's input rate) under ``8k/``."""
    root = tmp_path_factory.mktemp("cli_inputs")
    for sub, sr in (("", SR), ("8k", 8000)):
        d = root / sub
        d.mkdir(exist_ok=True)
        (d / "empty.wav").write_bytes(b"")
        sf.write(d / "whole.wav", _tone(sr, sr, 440.0), sr, subtype="PCM_16")
        data = (d / "whole.wav").read_bytes()
        (d / "truncated.wav").write_bytes(data[: len(data) // 2])  # a download cut in half
        (d / "text.wav").write_text("this is not audio\n" * 20)
        nan = _tone(sr, sr, 440.0)
        nan[100] = np.nan
        sf.write(d / "nan.wav", nan, sr, subtype="FLOAT")
        sf.write(d / "short.wav", np.array([0.1, -0.1, 0.2], dtype=np.float32), sr, subtype="PCM_16")
        sf.write(d / "silent.wav", np.zeros(sr, dtype=np.float32), sr, subtype="PCM_16")
    # 48 kHz stereo: A4 (MIDI 69) on the left, E5 (MIDI 76) on the right, 1 s
    stereo = np.stack([_tone(48000, 48000, 440.0), _tone(48000, 48000, 659.255, 0.2)], axis=1)
    sf.write(root / "stereo48k.wav", stereo, 48000, subtype="PCM_16")
    (root / "8k" / "stereo48k.wav").write_bytes((root / "stereo48k.wav").read_bytes())
    return root


def _argv(verb: str, src: Path, out: Path) -> list[str]:
    return {
        "features": ["features", str(src), "-o", str(out)],
        "tag": ["tag", str(src), "-m", "ast_tiny.fsdd_digits", "-o", str(out)],
        "transcribe": ["transcribe", str(src), "-o", str(out)],
        "vocode": ["vocode", str(src), "-o", str(out / "out.wav")],
        "vocode-apnet": ["vocode", str(src), "-m", "apnet.freev_speech16k", "-o", str(out / "out.wav")],
        "upsample": ["upsample", str(src), "-o", str(out / "out.wav")],
        "upsample-hifisr": ["upsample", str(src), "-m", "hifisr_small_16k.sisec_8k", "-o", str(out / "out.wav")],
    }[verb]


def _run(capsys, verb: str, src: Path, out: Path) -> tuple[int, str, str]:
    rc = main(_argv(verb, src, out))  # anything but an AudiozooError escapes here and fails the test
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err
    return rc, cap.out, cap.err


def _error(rc: int, err: str, pattern: str) -> None:
    assert rc == 2, f"expected exit status 2, got {rc}"
    lines = [ln for ln in err.splitlines() if ln.startswith("audiozoo: error: ")]
    assert len(lines) == 1, err
    assert re.search(pattern, lines[0]), f"{lines[0]!r} does not match {pattern!r}"


def _wav(out: Path) -> tuple[np.ndarray, int]:
    x, sr = sf.read(out / "out.wav", dtype="float32")
    assert x.ndim == 1 and np.isfinite(x).all()
    return x, sr


@pytest.mark.parametrize("verb", VERBS)
@pytest.mark.parametrize("kind", KINDS)
def test_every_verb_on_every_bad_input(inputs, tmp_path, capsys, verb, kind):
    src = (inputs / "8k" if verb == "upsample-hifisr" else inputs) / f"{kind}.wav"
    out = tmp_path / "out"
    rc, stdout, err = _run(capsys, verb, src, out)

    if kind in BROKEN:
        _error(rc, err, BROKEN[kind])
        assert not (out / "out.wav").exists()
        return
    if kind == "short" and verb in TOO_SHORT:
        _error(rc, err, TOO_SHORT[verb])
        return
    if kind == "stereo48k" and verb == "upsample-hifisr":  # the weight set was trained on 6-12 kHz inputs
        _error(rc, err, r"input sample rate 48000 Hz is outside this model's supported range 6000-12000 Hz")
        return
    assert rc == 0, err

    if verb == "features":
        (res,) = json.loads(stdout)
        assert res["sample_rate"] == SR
        expected_s = {"short": 3 / SR, "silent": 1.0, "stereo48k": 1.0}[kind]
        assert res["duration_s"] == pytest.approx(expected_s, abs=1e-4)
        assert res["peak"] == (0.0 if kind == "silent" else pytest.approx(0.2 if kind == "short" else 0.25, abs=0.06))
        assert res["log_mel"]["shape"][0] == 80 and res["log_mel"]["shape"][1] >= 1
        # Kaldi fbank needs one 25 ms frame: absent for 3 samples rather than made up
        assert ("kaldi_fbank" in res) == (kind != "short")
    elif verb == "tag":
        (res,) = json.loads((out / "tags.json").read_text())
        if kind == "silent":  # no confident digit for silence: an explicit result without labels
            assert res["silence"] is True and res["labels"] == [] and "silence" in stdout
            assert all(s.get("silence") for s in res["segments"])
        else:
            assert res["silence"] is False and len(res["labels"]) == 3
            assert abs(sum(t["score"] for t in res["labels"])) <= 1.0 + 1e-6
    elif verb == "transcribe":
        notes = list(csv_rows(out / f"{kind}.csv"))
        if kind == "silent":
            assert notes == [] and "0 notes" in stdout
        else:  # both channels are heard: the mix-down keeps A4 and E5
            assert {69, 76} <= {int(r["pitch_midi"]) for r in notes}
    elif verb in ("vocode", "vocode-apnet"):
        x, sr = _wav(out)
        # no -m: the default vocoder (HiFi-GAN V1 universal at 22.05 kHz, or Griffin-Lim at 16 kHz without its package)
        assert sr == (_default_vocoder_rate() if verb == "vocode" else SR)
        if kind == "silent":
            assert np.abs(x).max() < 1e-3  # the mel's floor, not invented sound
        else:
            assert abs(len(x) - sr) <= 512 and np.sqrt(np.mean(x**2)) > 0.02
    elif verb == "upsample":
        x, sr = _wav(out)
        assert sr == 48000
        if kind == "short":  # sinc interpolation of 3 samples: 9 samples, through the input's values
            assert len(x) == 9 and np.allclose(x[::3], [0.1, -0.1, 0.2], atol=0.03)
        elif kind == "silent":
            assert len(x) == 48000 and not x.any()
        else:  # 48 kHz in, 48 kHz out: the mono mix-down, unchanged
            ref = (_tone(48000, 48000, 440.0) + _tone(48000, 48000, 659.255, 0.2)) / 2
            assert len(x) == 48000 and np.abs(x - ref).max() < 2e-3
    elif verb == "upsample-hifisr":
        x, sr = _wav(out)
        assert sr == SR and len(x) == SR
        assert kind == "silent" and not x.any()  # silence in, silence out (no generated noise)


def csv_rows(path: Path):
    import csv

    with open(path, newline="") as fh:
        yield from csv.DictReader(fh)


# ------------------------------------------------------------------------------------------------------------
# the classifier's answer to silence and to too-short clips (docs/decisions.md), and long inputs in chunks
# ------------------------------------------------------------------------------------------------------------


def test_tag_silence_and_minimum_duration_rules():
    import audiozoo
    from audiozoo.errors import AudioError

    tagger = audiozoo.pipeline("audio-classification", model="ast_tiny.fsdd_digits", top_k=2)
    x = np.zeros(4 * SR, dtype=np.float32)
    x[: SR // 2] = _tone(SR // 2, SR, 300.0)
    res = tagger({"array": x, "sampling_rate": SR})
    segs = res["segments"]
    assert res["silence"] is False and len(res["labels"]) == 2
    # windows holding only the silent tail get no label, and no weight in the overall scores
    assert [bool(s.get("silence")) for s in segs] == [s["start_s"] >= 0.5 for s in segs]
    assert res["labels"][0] == segs[0]["top"][0]  # the one window with sound decides alone
    # -60 dBFS peak is the threshold (a -59 dBFS tone is sound, a -61 dBFS one is silence)
    for dbfs, silent in ((-59.0, False), (-61.0, True)):
        y = _tone(SR, SR, 300.0, amp=10 ** (dbfs / 20))
        assert tagger({"array": y, "sampling_rate": SR})["silence"] is silent
    tagger.silence_dbfs = None  # turned off: a label again, however meaningless
    assert len(tagger({"array": np.zeros(SR, np.float32), "sampling_rate": SR})["labels"]) == 2
    # 25 ms (one analysis window) is the shortest clip tagged
    assert tagger({"array": _tone(400, SR, 300.0), "sampling_rate": SR})["labels"]
    with pytest.raises(AudioError, match=r"399 samples \(24\.9 ms\) is too short to classify; need at least 400"):
        tagger({"array": _tone(399, SR, 300.0), "sampling_rate": SR})


def test_long_inputs_are_analysed_in_chunks_equal_to_one_pass():
    import torch

    import audiozoo
    from audiozoo.pipelines.features import FeaturesPipeline

    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(int(2.3 * SR)) + _tone(int(2.3 * SR), SR, 300.0)).astype(np.float32)
    item = {"array": x, "sampling_rate": SR}
    chunked, whole = FeaturesPipeline(), FeaturesPipeline()
    chunked.max_offline_seconds, chunked.long_chunk_seconds = 0.5, 0.37  # 37 frames per window
    whole.max_offline_seconds = 1e9
    assert chunked(item) == whole(item)  # every statistic and shape, to the last digit

    voc = audiozoo.pipeline("vocode", model="apnet.freev_speech16k")
    off = voc(item)
    voc.max_offline_seconds, voc.long_chunk_seconds = 0.5, 0.37
    streamed = voc(item)
    assert off["chunk_frames"] is None and streamed["chunk_frames"] == int(0.37 * SR / voc.hop_length)
    wav = torch.from_numpy(x)
    with torch.no_grad():
        one_pass = voc.model.frontend(wav[None])[0][0]
    # the same frames as one pass; float32 GEMM blocking of the mel projection may differ with the chunk's size
    # (measured 2.4e-7 on this machine under load; bit-equal on a quiet one)
    torch.testing.assert_close(voc.mel_of(wav), one_pass, rtol=0, atol=1e-5)
    assert off["audio"].shape == streamed["audio"].shape
    torch.testing.assert_close(streamed["audio"], off["audio"], rtol=0, atol=1e-5)
