"""Write cache/codec_speech/{train,valid}.jsonl for recipes/codec/wavtokenizer_small_speech.yaml.

Train: the real SiSec 2011 speech of ``cache/vocoder_speech`` (seconds 0-8.5 of 8 speakers; listed ``--repeat``
times so that an epoch draws many crops of it) + the ASR corpus' synthetic speech (``cache/asr/train.jsonl``:
espeak-ng, flite and Piper voices) + ``cache/piper_h13/train.jsonl`` (Piper). Valid: SiSec seconds 8.5-10.
Held out (never listed here): CMU ARCTIC and the LibriSpeech clips, the test set of recipes/codec/eval_codecs.py.

Build the inputs first: ``python recipes/vocoder/prepare_speech.py`` and ``python recipes/asr/prepare.py`` (the
Piper corpus ``cache/piper_h13`` comes from the TTS recipe's builder; a missing manifest is skipped with a note).

    python recipes/codec/prepare_codec_speech.py [--out cache/codec_speech] [--repeat 6]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

HELD_OUT = ("cmu_arctic", "librosa")


def read(path: Path) -> list[dict]:
    if not path.is_file():
        print(f"skipped (absent): {path}")
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            p = d["audio_filepath"]
            d["audio_filepath"] = p if os.path.isabs(p) else str((path.parent / p).resolve())
            out.append(d)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="cache/codec_speech")
    ap.add_argument("--repeat", type=int, default=6)
    a = ap.parse_args()
    sisec = list({(d["audio_filepath"], d.get("offset", 0.0)): d for d in read(Path("cache/vocoder_speech/train.jsonl"))
                  }.values())
    train = [{**d, "corpus": "sisec2011"} for d in sisec] * a.repeat
    for path, corpus in ((Path("cache/asr/train.jsonl"), "asr_synth"), (Path("cache/piper_h13/train.jsonl"), "piper")):
        train += [{"audio_filepath": d["audio_filepath"], "duration": d["duration"], "speaker": d.get("speaker", ""),
                   "corpus": corpus} for d in read(path)]
    leaks = [d["audio_filepath"] for d in train if any(h in d["audio_filepath"] for h in HELD_OUT)]
    if leaks:
        raise SystemExit(f"held-out test clips in the training list: {leaks[:3]}")
    valid = read(Path("cache/vocoder_speech/valid.jsonl"))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, items in (("train", train), ("valid", valid)):
        (out / f"{name}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in items))
        print(f"{out / name}.jsonl: {len(items)} items, {sum(d['duration'] for d in items) / 60:.1f} min")


if __name__ == "__main__":
    main()
