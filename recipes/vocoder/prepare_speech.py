"""Write the manifests of the vocoder recipes from the real speech in ``../shared/data`` (see its README).

Train / valid: the 8 SiSec 2011 clean speech sources (8 speakers, 10 s each, 16 kHz): seconds 0-8.5 of each
for training (listed ``--repeat`` times so that an epoch holds many random crops), seconds 8.5-10 for
validation. Test (held out: speakers and recordings never seen in training): the 6 CMU ARCTIC utterances
(2 speakers, 16 kHz) and the 3 LibriSpeech utterances of librosa's examples (22.05 kHz, resampled on load).

Usage: ``python recipes/vocoder/prepare_speech.py [--out cache/vocoder_speech] [--repeat 16]``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import soundfile as sf

TRAIN_END = 8.5  # seconds of each SiSec source used for training; the rest validates


def shared_data() -> Path:
    root = Path(os.environ.get("AUDIOZOO_SHARED_DATA", Path(__file__).resolve().parents[2] / ".." / "shared" / "data"))
    if not (root / "speech_sources").is_dir():
        raise SystemExit(f"shared data not found at {root} (set AUDIOZOO_SHARED_DATA)")
    return root.resolve()


def test_items(root: Path) -> list[dict]:
    """The held-out real speech: CMU ARCTIC (16 kHz) + librosa's LibriSpeech clips."""
    items = []
    for p in sorted((root / "speech_sources" / "cmu_arctic").glob("cmu_arctic_us_*.wav")):
        items.append({"audio_filepath": str(p), "duration": sf.info(str(p)).duration, "corpus": "cmu_arctic"})
    for name in ("198-209-0000", "3436-172162-0000", "5703-47212-0000"):
        p = root / "librosa" / f"{name}.ogg"
        items.append({"audio_filepath": str(p), "duration": sf.info(str(p)).duration, "corpus": "librispeech"})
    return items


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="cache/vocoder_speech")
    ap.add_argument("--repeat", type=int, default=16)
    a = ap.parse_args()
    root = shared_data()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    train, valid = [], []
    for p in sorted((root / "speech_sources" / "sisec2011_speech").glob("*.wav")):
        dur = sf.info(str(p)).duration
        train.append({"audio_filepath": str(p), "offset": 0.0, "duration": TRAIN_END, "speaker": p.stem})
        valid.append({"audio_filepath": str(p), "offset": TRAIN_END, "duration": dur - TRAIN_END, "speaker": p.stem})
    splits = {"train": train * a.repeat, "valid": valid, "test": test_items(root)}
    for name, items in splits.items():
        (out / f"{name}.jsonl").write_text("".join(json.dumps(it) + "\n" for it in items))
        print(f"{out / name}.jsonl: {len(items)} items")


if __name__ == "__main__":
    main()
