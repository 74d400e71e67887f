"""Build the 2-speaker mixtures of the Conv-TasNet speech recipe (``conv_tasnet_small_speech.yaml``).

* Training speakers: 11 synthetic voices (8 espeak-ng English variants, flite slt / rms / awb) reading WordNet
  sentences (``speech-synth``); train / valid mixtures come from its train / valid splits (held-out sentences).
* Held-out synthetic voices: espeak-ng ``en-us+m7``, ``en-gb+f5`` and flite ``kal16`` (never in training).
* Held-out real voices: the 8 SiSec 2011 speakers, the 2 CMU ARCTIC speakers and the 3 LibriSpeech speakers
  of ``../shared/data`` (real people none of the models trained on).

Every mixture (``mixtures`` builder, ``speech+speech``) is 2 s at 8 kHz, the first speaker 0-5 dB above the
second, and exactly the sum of its two stems. Deterministic and resumable (re-running skips finished work).

Usage: ``python recipes/separate/prepare_speech.py [--out cache/separate_speech] [--hours 0.25]
[--train-count 2000]``, then ``audiozoo train recipes/separate/conv_tasnet_small_speech.yaml``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import soundfile as sf

from audiozoo.data.builders import build
from audiozoo.data.manifest import write_manifest

TRAIN_VOICES = ("en-us,en-gb,en-us+m3,en-us+f2,en-gb+f3,en-gb-scotland+m4,en-gb-x-rp+f4,en-029+m2,"
                "flite:slt,flite:rms,flite:awb")
HELD_OUT_VOICES = "en-us+m7,en-gb+f5,flite:kal16"


def shared_data() -> Path:
    root = Path(os.environ.get("AUDIOZOO_SHARED_DATA", Path(__file__).resolve().parents[2] / ".." / "shared" / "data"))
    if not (root / "speech_sources").is_dir():
        raise SystemExit(f"shared data not found at {root} (set AUDIOZOO_SHARED_DATA)")
    return root.resolve()


def real_voices(root: Path, out: Path) -> Path:
    """A manifest of the held-out real speech, one speaker label per person."""
    items = []
    for p in sorted((root / "speech_sources" / "sisec2011_speech").glob("*.wav")):
        items.append({"audio_filepath": str(p), "duration": sf.info(str(p)).duration,
                      "speaker": "sisec_" + p.stem.split("_", 1)[1]})
    for p in sorted((root / "speech_sources" / "cmu_arctic").glob("cmu_arctic_us_*.wav")):
        items.append({"audio_filepath": str(p), "duration": sf.info(str(p)).duration,
                      "speaker": "arctic_" + p.stem.split("_")[3]})
    for name in ("198-209-0000", "3436-172162-0000", "5703-47212-0000"):
        p = root / "librosa" / f"{name}.ogg"
        items.append({"audio_filepath": str(p), "duration": sf.info(str(p)).duration,
                      "speaker": "libri_" + name.split("-")[0]})
    return write_manifest(out / "real_voices.jsonl", items, relative=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="cache/separate_speech")
    ap.add_argument("--hours", type=float, default=0.25, help="synthetic speech of the training voices")
    ap.add_argument("--train-count", type=int, default=2000)
    ap.add_argument("--test-count", type=int, default=100)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    synth = out / "synth_train"
    build("speech-synth", synth, voices=TRAIN_VOICES, hours=a.hours, sample_rate=16000, seed=0)
    held = out / "synth_heldout"
    build("speech-synth", held, voices=HELD_OUT_VOICES, hours=max(0.02, a.hours / 8), sample_rate=16000, seed=1)
    real = real_voices(shared_data(), out)
    common = dict(kinds=["speech+speech"], seconds=2.0, sample_rate=8000, sir=[0.0, 5.0])
    for name, speech, count, seed in (("mix_train", synth / "train.jsonl", a.train_count, 0),
                                      ("mix_valid", synth / "valid.jsonl", a.test_count, 1),
                                      ("mix_heldout_synth", held / "manifest.jsonl", a.test_count, 2),
                                      ("mix_real", real, a.test_count, 3)):
        path = build("mixtures", out / name, speech=[str(speech)], count=count, seed=seed, **common)
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
