"""Data for recipes/classify/spectttra_synth_detect.yaml: real speech vs speech this project synthesises.

A small stand-in for SONICS' real-vs-synthetic task (Rahman et al., ICLR 2025). The recipe system builds
one corpus per recipe; this task needs two, so this script builds them and writes the merged manifests:

- real: the Free Spoken Digit Dataset (people recording digits, ../shared/data/fsdd, 8 kHz), its usual
  split (takes 0-4 test, 5-9 valid, the rest train);
- synthetic: ``audiozoo data build speech-synth`` (espeak-ng + flite, 14 voices, WordNet example
  sentences, split by sentence), rendered at 16 kHz and resampled here to 8 kHz so that both classes have
  the same 4 kHz bandwidth (otherwise the empty upper half of FSDD's spectrum alone would give the answer).

Each split is balanced (the larger class subsampled with a fixed seed). Labels: ``real`` / ``synthetic``.
Deterministic and resumable (existing files are kept).

    python recipes/classify/spectttra_synth_detect.py            # writes cache/spectttra_detect/*.jsonl
    audiozoo train recipes/classify/spectttra_synth_detect.yaml
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from audiozoo.data.builders import build
from audiozoo.dsp import load_audio, save_audio


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="cache/spectttra_detect")
    ap.add_argument("--hours", type=float, default=0.45, help="synthetic speech to render (hours)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = Path(args.out)
    fsdd = build("fsdd", out / "fsdd", valid=True).parent
    synth = build("speech-synth", out / "speech_synth", hours=args.hours, voices="multi", sample_rate=16000,
                  seed=args.seed).parent
    (out / "synth8k").mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    for split in ("train", "valid", "test"):
        real = [{"audio_filepath": str(Path(r["audio_filepath"]).resolve()), "duration": r["duration"],
                 "label": "real", "source": f"fsdd:{r['speaker']}"} for r in _read(fsdd / f"{split}.jsonl")]
        fake = []
        for r in _read(synth / f"{split}.jsonl"):
            src = (synth / r["audio_filepath"]).resolve()
            dst = (out / "synth8k" / src.name).resolve()
            if not dst.exists():
                wav, sr = load_audio(src, sample_rate=8000)
                save_audio(dst, wav, 8000, subtype="FLOAT")  # resampling may overshoot 1.0 slightly
            fake.append({"audio_filepath": str(dst), "duration": r["duration"], "label": "synthetic",
                         "source": r["speaker"]})
        n = min(len(real), len(fake))
        items = rng.sample(real, n) + rng.sample(fake, n)
        rng.shuffle(items)
        (out / f"{split}.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
        print(f"{split}: {n} real + {n} synthetic")


if __name__ == "__main__":
    main()
