"""Build the 2-speaker mixtures of the Conv-TasNet speech recipe (``conv_tasnet_small_speech.yaml``).

Training voices (none of them a held-out speaker):

* 11 synthetic voices (8 espeak-ng English variants, flite slt / rms / awb) reading WordNet sentences
  (``speech-synth``);
* the natural Piper VITS voice ``en_US-joe-medium`` (``piper-speech``) at three length / noise scales;
* the five real FSDD speakers (george, jackson, lucas, nicolas, theo): takes 5-49 of their digits joined into
  ~2 s utterances with short pauses (takes 0-4 make the validation utterances);
* the real speaker of the Kaldi yes/no corpus (recordings 0-49; 50-59 for validation);
* 12 festival voices built from recordings of real people (``speech-synth`` ``festival:NAME``: US English kal /
  ked diphones and ARCTIC slt's HTS voice, Italian, Czech, Finnish diphones, the Russian unit-selection voice),
  the non-English ones reading the English sentences with an accent;
* **WORLD voices** (``--world-voices``): every Piper, festival, FSDD and yes/no utterance is also re-synthesised
  by WORLD as ``--world-voices`` other voices (:func:`audiozoo.dsp.pitch.world_voice`: F0 register x0.6-1.9,
  intonation range x0.6-1.4, formants warped x0.84-1.2, i.e. another vocal-tract length), each a new speaker label.
  Done at 8 kHz, where WORLD's D4C rates much of the voicing aperiodic: these voices come out partly breathy /
  whispered (measured on the first three: 10-28 % of frames voiced by Harvest); what the shipped
  ``voices_medium_8k`` trained on. Analysing at 16 kHz would give fully voiced voices (not tried yet);
* **voice perturbation**: every training utterance is also played ``--speeds`` times faster (resampling,
  which shifts pitch and formants together, as Kaldi's speed perturbation does), each speed a new speaker
  label, and given a random first-order spectral tilt (a different microphone / channel).

Held-out voices, never trained on:

* synthetic: espeak-ng ``en-us+m7``, ``en-gb+f5`` and flite ``kal16``;
* real: the 8 SiSec 2011 speakers, the 2 CMU ARCTIC speakers and the 3 LibriSpeech speakers of
  ``../shared/data`` (``mix_real``, the test set).

Validation (``mix_valid``, the checkpoint selection): held-out synthetic voices plus FSDD takes 0-4 and yes/no
50-59, i.e. unseen voices and unseen recordings, never the real test speakers.

Every mixture (``mixtures`` builder, ``speech+speech``) is 2 s at 8 kHz, the first speaker 0-5 dB above the
second, and exactly the sum of its two stems. Deterministic and resumable (re-running skips finished work).

Usage: ``python recipes/separate/prepare_speech.py [--out cache/separate_speech] [--hours 0.25]
[--festival-hours 0.3] [--world-voices 3] [--train-count 10000]``, then
``audiozoo train recipes/separate/conv_tasnet_medium_speech.yaml`` (what ``conv_tasnet_speech.voices_medium_8k``
trained on; ``conv_tasnet_speech.voices_8k`` trained on this script's earlier version, without the festival and
WORLD voices and with 6,000 mixtures: its WeightSet pins that commit).
"""

from __future__ import annotations

import argparse
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

from audiozoo.data.builders import build
from audiozoo.data.builders.speech_synth import FESTIVAL_VOICES
from audiozoo.data.manifest import read_manifest, write_manifest
from audiozoo.dsp.io import load_audio
from audiozoo.dsp.pitch import world_analyse, world_voice

TRAIN_VOICES = ("en-us,en-gb,en-us+m3,en-us+f2,en-gb+f3,en-gb-scotland+m4,en-gb-x-rp+f4,en-029+m2,"
                "flite:slt,flite:rms,flite:awb")
HELD_OUT_VOICES = "en-us+m7,en-gb+f5,flite:kal16"
FESTIVAL_TRAIN_VOICES = ",".join(f"festival:{v}" for v in FESTIVAL_VOICES)
# WORLD voice grid (uniform draws): F0 register, intonation range, envelope warp (vocal-tract length)
WORLD_F0, WORLD_RANGE, WORLD_WARP = (0.6, 1.9), (0.6, 1.4), (0.84, 1.2)
PIPER_STYLES = ((1.0, 0.667, 0), (0.85, 0.8, 1), (1.2, 0.5, 2))  # (length_scale, noise_scale, seed)
SR = 8000


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


def _write(path: Path, x: np.ndarray) -> dict:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_suffix(".tmp.wav")
        sf.write(str(tmp), x.astype(np.float32), SR, subtype="FLOAT")
        tmp.replace(path)
    return {"audio_filepath": str(path.resolve()), "duration": round(len(x) / SR, 6)}


def fsdd_yesno(root: Path, out: Path, rng: np.random.Generator) -> tuple[list[dict], list[dict]]:
    """Real FSDD speakers (digits joined into ~2 s utterances) and the yes/no speaker: (train, valid) items."""
    train, valid = [], []
    clips: dict[tuple[str, bool], list[Path]] = defaultdict(list)
    for p in sorted((root / "fsdd").rglob("*.wav")):
        _, spk, take = p.stem.split("_")
        clips[(spk, int(take) < 5)].append(p)
    for (spk, held), files in sorted(clips.items()):
        n_utt = 25 if held else 120
        for i in range(n_utt):
            pieces = []
            for f in rng.choice(len(files), size=int(rng.integers(4, 8)), replace=False):
                x = load_audio(files[f], sample_rate=SR)[0].numpy()
                x = x / (np.abs(x).max() + 1e-8) * 0.5  # FSDD takes differ widely in level
                pieces += [x, np.zeros(int(rng.uniform(0.03, 0.25) * SR), np.float32)]
            it = _write(out / "fsdd" / f"{spk}_{'v' if held else 't'}{i:03d}.wav", np.concatenate(pieces))
            (valid if held else train).append({**it, "speaker": f"fsdd_{spk}"})
    for j, p in enumerate(sorted((root / "yesno").glob("*.wav"))):
        x = load_audio(p, sample_rate=SR)[0].numpy()
        (valid if j >= 50 else train).append({**_write(out / "yesno" / p.name, x), "speaker": "yesno"})
    return train, valid


def perturb(items: list[dict], out: Path, speeds: list[float], rng: np.random.Generator) -> list[dict]:
    """Each item at every speed (resampled: pitch, formants and tempo move together) with a random spectral
    tilt; speaker label ``<speaker>@<speed>`` (a new voice per speed)."""
    res = []
    for k, it in enumerate(items):
        src = load_audio(it["audio_filepath"], sample_rate=SR)[0].numpy()
        for s in speeds:
            x = src if s == 1.0 else load_audio(src, sample_rate=round(SR / s), array_sample_rate=SR)[0].numpy()
            a = float(rng.uniform(-0.6, 0.6))  # y[n] = x[n] - a x[n-1]: a tilt of up to about +-8 dB
            x = np.concatenate([x[:1], x[1:] - a * x[:-1]]).astype(np.float32)
            path = out / f"{s:g}" / f"{k:06d}.wav"
            res.append({**_write(path, x), "speaker": f"{it['speaker']}@{s:g}"})
    return res


def world_voices(items: list[dict], out: Path, n: int, rng: np.random.Generator) -> list[dict]:
    """``n`` WORLD re-syntheses of every item, each with a random (F0 register, intonation range, formant
    warp) drawn from the grid; speaker label ``<speaker>~w<k>`` (the k-th draw is a new voice). The level of the
    source is kept (peak matched)."""
    res = []
    for k, it in enumerate(items):
        x = load_audio(it["audio_filepath"], sample_rate=SR)[0].numpy()
        ana = None  # analysed only when a variant is missing (a resumed build skips finished items)
        for j in range(n):
            f0, rg, wp = rng.uniform(*WORLD_F0), rng.uniform(*WORLD_RANGE), rng.uniform(*WORLD_WARP)
            path = out / f"{k:06d}_{j}.wav"
            if not path.exists():
                if ana is None:
                    ana = world_analyse(x, SR)
                _write(path, world_voice(ana, f0, wp, rg, peak=float(np.abs(x).max()) or None))
            res.append({"audio_filepath": str(path.resolve()), "duration": round(len(x) / SR, 6),
                        "speaker": f"{it['speaker']}~w{j}"})
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="cache/separate_speech")
    ap.add_argument("--hours", type=float, default=0.25, help="synthetic espeak-ng/flite speech of the training voices")
    ap.add_argument("--piper-hours", type=float, default=0.06, help="Piper joe speech per style (3 styles)")
    ap.add_argument("--festival-hours", type=float, default=0.3, help="festival speech of 12 voices (0: none)")
    ap.add_argument("--world-voices", type=int, default=3,
                    help="WORLD re-syntheses of every Piper / festival / FSDD / yes-no utterance (0: none)")
    ap.add_argument("--speeds", type=float, nargs="+", default=[0.85, 0.93, 1.0, 1.08, 1.18])
    ap.add_argument("--train-count", type=int, default=10000)
    ap.add_argument("--test-count", type=int, default=100)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    root = shared_data()
    rng = np.random.default_rng(0)
    synth = out / "synth_train"
    build("speech-synth", synth, voices=TRAIN_VOICES, hours=a.hours, sample_rate=16000, seed=0)
    held = out / "synth_heldout"
    build("speech-synth", held, voices=HELD_OUT_VOICES, hours=max(0.02, a.hours / 8), sample_rate=16000, seed=1)
    train = read_manifest(synth / "train.jsonl")
    valid = read_manifest(held / "manifest.jsonl")
    natural = []  # recorded or natural-sounding speech: also re-voiced by WORLD
    for ls, ns, seed in PIPER_STYLES:
        d = build("piper-speech", out / f"piper_{ls:g}", hours=a.piper_hours, splits=["train"], seed=seed,
                  length_scale=ls, noise_scale=ns)
        natural += [{**it, "speaker": "piper_joe"} for it in read_manifest(d)]
    if a.festival_hours > 0:
        fest = out / "festival_train"
        build("speech-synth", fest, voices=FESTIVAL_TRAIN_VOICES, hours=a.festival_hours, sample_rate=16000, seed=3)
        natural += read_manifest(fest / "train.jsonl")
    fy_train, fy_valid = fsdd_yesno(root, out / "real_train", rng)
    natural += fy_train
    valid += fy_valid
    train += natural
    sources = perturb(train, out / "perturbed", a.speeds, rng)
    if a.world_voices > 0:
        sources += world_voices(natural, out / "world", a.world_voices, np.random.default_rng(7))
    train_sources = write_manifest(out / "train_sources.jsonl", sources, relative=False)
    valid_sources = write_manifest(out / "valid_sources.jsonl", valid, relative=False)
    n_spk = len({it["speaker"] for it in read_manifest(train_sources)})
    print(f"training sources: {train_sources} ({n_spk} speaker labels)")
    real = real_voices(root, out)
    common = dict(kinds=["speech+speech"], seconds=2.0, sample_rate=SR, sir=[0.0, 5.0])
    for name, speech, count, seed in (("mix_train", train_sources, a.train_count, 0),
                                      ("mix_valid", valid_sources, a.test_count, 1),
                                      ("mix_heldout_synth", held / "manifest.jsonl", a.test_count, 2),
                                      ("mix_real", real, a.test_count, 3)):
        path = build("mixtures", out / name, speech=[str(speech)], count=count, seed=seed, **common)
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
