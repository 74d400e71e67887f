"""Data for recipes/classify/melception_small.yaml: 8 broad sound classes built from the project's own corpora.

Melception (SpecVQGAN, Iashin & Rahtu 2021) is the classifier whose embeddings and class distributions give
FID and MKL. The paper trains it on VGGSound (309 classes); offline we have no such corpus, so this script
joins the project's builders (and a few generators) into 8 coarse classes, every clip at 22.05 kHz mono:

==================  ======================================================================================
``speech_real``     Free Spoken Digit Dataset (people, 8 kHz, ``fsdd`` builder; its usual split by take)
``speech_synth``    espeak-ng + flite sentences, 14 voices (``speech-synth``; 1 in 5 sentences held out)
``music_ensemble``  Bach chorales rendered by fluidsynth with reassigned GM instruments (``music-render``
                    mixes; split by piece), cut into 2 s segments
``music_solo``      single parts (stems) of the same renders, 2 s segments (same piece split)
``drums``           Sonic Pi drum/percussion samples and loops (``sonic-pi``: bd, sn, drum, perc, tabla,
                    loop families; the builder's stratified split), first 2 s
``instrument``      the other Sonic Pi samples (ambient, bass, guitar, electronic, glitch, mehackit, misc,
                    vinyl), first 2 s
``noise``           coloured noise (white / pink / brown / band-passed, random levels), generated here, plus
                    2 s segments of ../shared/data/noise recordings when present (split by file)
``tones``           synthetic tones (harmonic notes with envelopes, vibrato, chirps, FM), generated here
==================  ======================================================================================

Every class is capped at ``--per-class`` training clips and ``--per-class-test`` test clips (seeded
subsets); there is no validation split (the recipe trains a fixed number of epochs). The per-mel-bin
statistics of the training clips (SpecVQGAN's input standardisation) go to ``mel_stats.json``; the recipe
carries them as ``norm_means`` / ``norm_stds``. Deterministic and resumable: existing segment files are kept.

    python recipes/classify/melception_small_data.py        # -> cache/melception_small/{train,test}.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import zlib
from pathlib import Path

import numpy as np
import torch

from audiozoo.data.builders import build
from audiozoo.data.builders.base import shared_data_root
from audiozoo.dsp import SpecVQGANMel, load_audio, save_audio, specvqgan_mel_stats
from audiozoo.errors import DataError

SR = 22050
SEG = 2.0  # seconds per segment
MIN_SEC = 0.25  # shorter clips are zero-padded to this
DRUM_FAMILIES = {"bass drum", "snare", "drum", "percussion", "tabla", "loop"}
LABELS = ["drums", "instrument", "music_ensemble", "music_solo", "noise", "speech_real", "speech_synth", "tones"]


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _abs(folder: Path, p: str) -> Path:
    q = Path(p)
    return (q if q.is_absolute() else folder / q).resolve()


class Writer:
    """Writes 22.05 kHz segments under ``out/clips/<label>/`` and collects manifest rows per split."""

    def __init__(self, out: Path):
        self.out = out
        self.rows: dict[str, list[dict]] = {"train": [], "test": []}

    def add(self, split: str, label: str, name: str, wav: torch.Tensor | None = None, src: Path | None = None,
            offset: float = 0.0, source: str = "") -> None:
        dst = self.out / "clips" / label / f"{name}.wav"
        if not dst.exists():
            if wav is None:
                wav, _ = load_audio(src, sample_rate=SR, offset=offset, duration=SEG)
            wav = wav[: int(SEG * SR)]
            if wav.shape[-1] < int(MIN_SEC * SR):  # very short hits: pad with silence (front-end minimum)
                wav = torch.nn.functional.pad(wav, (0, int(MIN_SEC * SR) - wav.shape[-1]))
            peak = float(wav.abs().max()) if wav.numel() else 0.0
            if peak > 0.999:  # resampling overshoot: scale instead of clipping
                wav = wav * (0.999 / peak)
            dst.parent.mkdir(parents=True, exist_ok=True)
            save_audio(dst, wav, SR)
        n = load_audio(dst, sample_rate=None)[0].shape[-1] if wav is None else min(wav.shape[-1], int(SEG * SR))
        self.rows[split].append({"audio_filepath": str(dst.resolve()), "duration": round(n / SR, 6),
                                 "label": label, "source": source})


def _segments(duration: float, max_segments: int) -> list[float]:
    """Offsets of up to ``max_segments`` 2 s segments spread over a ``duration``-second file."""
    n = int(duration // SEG)
    if n <= 0:
        return [0.0]
    step = max(1, n // max_segments)
    return [k * SEG for k in range(0, n, step)][:max_segments]


def _noise(rng: np.random.Generator) -> np.ndarray:
    n = int(SEG * SR)
    kind = rng.choice(["white", "pink", "brown", "band"])
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    f[0] = f[1]
    if kind == "pink":
        spec = spec / np.sqrt(f)
    elif kind == "brown":
        spec = spec / f
    elif kind == "band":
        lo = float(rng.uniform(100, 4000))
        hi = lo * float(rng.uniform(1.5, 4.0))
        spec = spec * ((f >= lo) & (f <= hi))
    x = np.fft.irfft(spec, n)
    return x / (np.abs(x).max() + 1e-9) * float(rng.uniform(0.05, 0.9))


def _tone(rng: np.random.Generator) -> np.ndarray:
    n = int(SEG * SR)
    t = np.arange(n) / SR
    kind = rng.choice(["harmonic", "sine", "chirp", "fm"])
    f0 = float(2 ** rng.uniform(np.log2(80), np.log2(1500)))
    if kind == "chirp":
        f1 = float(2 ** rng.uniform(np.log2(80), np.log2(4000)))
        phase = 2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * SEG))
        x = np.sin(phase)
    elif kind == "fm":
        ratio, index = float(rng.uniform(0.5, 4)), float(rng.uniform(0.5, 6))
        x = np.sin(2 * np.pi * f0 * t + index * np.sin(2 * np.pi * f0 * ratio * t))
    else:
        vib = 1 + float(rng.uniform(0, 0.01)) * np.sin(2 * np.pi * float(rng.uniform(4, 7)) * t)
        phase = 2 * np.pi * f0 * np.cumsum(vib) / SR
        if kind == "sine":
            x = np.sin(phase)
        else:
            k = np.arange(1, int(rng.integers(3, 12)) + 1)
            amps = k ** -float(rng.uniform(0.5, 2.0))
            x = (amps[:, None] * np.sin(k[:, None] * phase[None, :])).sum(0)
    # attack / decay envelope: notes of random length inside the segment
    dur = float(rng.uniform(0.3, SEG))
    env = np.clip(t / max(float(rng.uniform(0.005, 0.2)), 1e-3), 0, 1) * np.exp(-t * float(rng.uniform(0, 4)))
    env = env * (t < dur)
    x = x * env
    return x / (np.abs(x).max() + 1e-9) * float(rng.uniform(0.1, 0.9))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="cache/melception_small")
    ap.add_argument("--per-class", type=int, default=160, help="training clips per class (at most)")
    ap.add_argument("--per-class-test", type=int, default=40, help="test clips per class (at most)")
    ap.add_argument("--speech-hours", type=float, default=0.25)
    ap.add_argument("--pieces", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = Path(args.out)
    w = Writer(out)
    cap = {"train": args.per_class, "test": args.per_class_test}
    rng = random.Random(args.seed)

    def take(split: str, items: list) -> list:
        items = list(items)
        rng.shuffle(items)
        return items[: cap[split]]

    # speech_real: FSDD (test: takes 0-4; train: the rest)
    fsdd = build("fsdd", out / "src" / "fsdd").parent
    for split in ("train", "test"):
        for r in take(split, _read(fsdd / f"{split}.jsonl")):
            src = _abs(fsdd, r["audio_filepath"])
            w.add(split, "speech_real", src.stem, src=src, source=f"fsdd:{src.stem}")
    # speech_synth: espeak-ng + flite, 14 voices (valid sentences join train)
    synth = build("speech-synth", out / "src" / "speech_synth", hours=args.speech_hours, voices="multi",
                  sample_rate=SR, seed=args.seed).parent
    everything = _read(synth / "manifest.jsonl")
    for split in ("train", "test"):
        # split by sentence (the builder's own test split is tiny at this size): 1 in 5 sentences is test
        rows = [r for r in everything if (zlib.crc32(r["text"].encode()) % 5 == 0) == (split == "test")]
        for r in take(split, rows):
            src = _abs(synth, r["audio_filepath"])
            w.add(split, "speech_synth", src.stem, src=src, source=f"speech-synth:{r.get('speaker', '')}")
    # music: rendered chorales (valid pieces join test), mixes and single stems, 2 s segments
    music = build("music-render", out / "src" / "music_render", pieces=args.pieces, reassign_instruments=True,
                  sample_rate=SR, seed=args.seed).parent
    for split, parts in (("train", ("train",)), ("test", ("valid", "test"))):
        rows = [r for p in parts if (music / f"{p}.jsonl").exists() for r in _read(music / f"{p}.jsonl")]
        mix, solo = [], []
        for r in rows:
            piece = Path(r["audio_filepath"]).parent.name
            for off in _segments(r["duration"], 12):
                mix.append((f"{piece}_{off:05.1f}", _abs(music, r["audio_filepath"]), off))
            for part, stem in r["stems"].items():
                for off in _segments(r["duration"], 3):
                    solo.append((f"{piece}_{part}_{off:05.1f}", _abs(music, stem), off))
        for name, src, off in take(split, mix):
            w.add(split, "music_ensemble", name, src=src, offset=off, source="music-render:mix")
        for name, src, off in take(split, solo):
            w.add(split, "music_solo", name, src=src, offset=off, source="music-render:stem")
    # drums / instrument: Sonic Pi samples by family (first 2 s)
    sonic = build("sonic-pi", out / "src" / "sonic_pi", sample_rate=SR, seed=args.seed).parent
    for split in ("train", "test"):
        rows = _read(sonic / f"{split}.jsonl")
        for label, keep in (("drums", lambda f: f in DRUM_FAMILIES), ("instrument", lambda f: f not in DRUM_FAMILIES)):
            for r in take(split, [r for r in rows if keep(r["label"])]):
                src = _abs(sonic, r["audio_filepath"])
                w.add(split, label, src.stem, src=src, source=f"sonic-pi:{r['label']}")
    # noise: generated coloured noise + real recordings (split by file) when ../shared/data is present
    for split, seed in (("train", 1), ("test", 2)):
        g = np.random.default_rng([args.seed, seed])
        clips = [(f"gen{seed}_{k:04d}", torch.from_numpy(_noise(g)).float()) for k in range(cap[split])]
        try:
            shared = shared_data_root() / "noise"
        except DataError:  # no real recordings: generated noise only
            shared = Path("/nonexistent")
        files = sorted(shared.glob("*.wav")) if shared.is_dir() else []
        files = [f for k, f in enumerate(files) if (k % 5 == 4) == (split == "test")]
        for f in files:
            wav, sr = load_audio(f, sample_rate=None)
            for off in _segments(wav.shape[-1] / sr, 20):
                clips.append((f"{f.stem}_{off:05.1f}", (f, off)))
        for name, item in take(split, clips):
            if isinstance(item, tuple):
                w.add(split, "noise", name, src=item[0], offset=item[1], source=f"shared:{item[0].name}")
            else:
                w.add(split, "noise", name, wav=item, source="generated")
    # tones: generated
    for split, seed in (("train", 3), ("test", 4)):
        g = np.random.default_rng([args.seed, seed])
        for k in range(cap[split]):
            w.add(split, "tones", f"gen{seed}_{k:04d}", wav=torch.from_numpy(_tone(g)).float(), source="generated")

    for split, rows in w.rows.items():
        rows.sort(key=lambda r: (r["label"], r["audio_filepath"]))
        random.Random(args.seed).shuffle(rows)
        (out / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        counts = {lab: sum(r["label"] == lab for r in rows) for lab in LABELS}
        print(split, len(rows), counts, f"{sum(r['duration'] for r in rows) / 60:.1f} min")
    # SpecVQGAN's per-bin input standardisation, from the training clips (StandardNormalizeAudio): the
    # recipe's norm_means / norm_stds are these values
    mel = SpecVQGANMel()
    mels = [mel(load_audio(r["audio_filepath"], sample_rate=SR)[0])[0][0] for r in w.rows["train"]]
    means, stds = specvqgan_mel_stats(mels)
    stats = {"norm_means": [round(v, 6) for v in means], "norm_stds": [round(v, 6) for v in stds]}
    (out / "mel_stats.json").write_text(json.dumps(stats) + "\n")
    print("mel_stats.json:", json.dumps(stats))


if __name__ == "__main__":
    main()
