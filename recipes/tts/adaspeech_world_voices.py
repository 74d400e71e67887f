"""Multi-speaker corpus with exact durations for AdaSpeech: the Piper voice turned into several voices by WORLD.

Issue #16 needs a multi-speaker source corpus with phoneme durations and held-out *voices* to adapt to. The
project has one natural voice with exact durations (``piper-speech``: Piper ``en_US-joe-medium`` with the voice's
own per-phoneme frame counts) and no aligner for other speakers, so every voice here is a deterministic transform of
that voice which keeps the timing sample-exact:

* WORLD analysis of each Piper sentence (pyworld: DIO + StoneMask F0, CheapTrick spectral envelope, D4C
  aperiodicity, 5 ms frames), then, per voice, WORLD synthesis with
  - F0 multiplied by ``f0_scale`` and its excursions around the utterance's mean log-F0 scaled by ``f0_range``
    (``ln f0' = ln f0_scale + m + f0_range * (ln f0 - m)``: register and liveliness of intonation);
  - the spectral envelope and aperiodicity frequency-warped by ``warp`` (``sp'(f) = sp(f / warp)``, linear in
    frequency: ``warp > 1`` moves every formant up = a shorter vocal tract, ``< 1`` a longer one);
  - the length cut / padded to the original sample count, peak-normalised to 0.95 as Piper does.

So every voice has Piper's durations (the same prosodic timing: timing is *not* part of a voice here) and differs
in pitch register, intonation range and formant positions (vocal-tract length). ``SOURCE`` voices train the source
model; ``TARGETS`` are never in it (their settings are combinations not in the source set) and are the adaptation
targets. Sentences: ``piper-speech``'s hash split (train / test never share a sentence); each source voice reads its
own window of ``--per-voice`` sentences of a pool of ``--pool`` train sentences; the target voices' adaptation
sentences (``--adapt``) are train sentences that no source voice reads; every voice (source and target) reads the
same ``--test`` test-split sentences, used only for evaluation (GE2E centroids of each voice and the held-out
synthesis).

Per item it stores the wav (22.05 kHz PCM-16) and the ``tts`` task's targets (HiFi-GAN log-mel, DIO ln F0, energy,
:meth:`audiozoo.train.tasks.tts.TTSTask.item_targets`) in one ``features.pt`` per voice and split.

    OMP_NUM_THREADS=1 python recipes/tts/adaspeech_world_voices.py --piper cache/piper_speech \
        --out cache/adaspeech_world
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import audiozoo
from audiozoo.data.manifest import read_manifest
from audiozoo.dsp.io import load_audio, save_audio
from audiozoo.dsp.pitch import world_analyse, world_voice
from audiozoo.train.tasks.tts import TTSTask

SR = 22050
FRAME_MS = 5.0
# name: (f0_scale, warp, f0_range)
SOURCE: dict[str, tuple[float, float, float]] = {
    "s0": (1.00, 1.00, 1.0),   # the Piper voice itself (through WORLD)
    "s1": (0.78, 0.90, 1.0),   # lower, longer vocal tract
    "s2": (1.30, 1.10, 1.0),
    "s3": (1.75, 1.18, 1.2),   # female-like register, livelier intonation
    "s4": (1.05, 0.92, 0.6),   # flatter intonation, longer tract
    "s5": (2.10, 1.25, 1.0),   # child-like
}
TARGETS: dict[str, tuple[float, float, float]] = {
    "t0": (1.50, 0.97, 1.0),   # high register on a long-ish tract (no source voice pairs these)
    "t1": (0.88, 1.14, 0.8),   # low register on a short tract
    "t2": (1.20, 1.22, 1.5),   # short tract, very lively intonation
}
VOICES = {**SOURCE, **TARGETS}


def plan(train: list[dict], test: list[dict], per_voice: int, n_adapt: int, n_test: int, pool: int
         ) -> dict[str, dict]:
    """``{voice: {"train": [items], "test": [items]}}`` (targets' "train" = their adaptation sentences); source
    voice ``k`` reads a window of ``per_voice`` sentences starting at ``k * step`` in a pool of ``pool``."""
    adapt, rest = train[:n_adapt], train[n_adapt:n_adapt + pool]
    out: dict[str, dict] = {}
    step = max(1, (len(rest) - per_voice) // max(1, len(SOURCE) - 1))
    for k, v in enumerate(SOURCE):
        out[v] = {"train": [rest[(k * step + i) % len(rest)] for i in range(per_voice)], "test": test[:n_test]}
    for v in TARGETS:
        out[v] = {"train": adapt, "test": test[:n_test]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--piper", default="cache/piper_speech", help="a piper-speech build (train/test.jsonl)")
    ap.add_argument("--out", default="cache/adaspeech_world")
    ap.add_argument("--per-voice", type=int, default=150, help="train sentences per source voice")
    ap.add_argument("--pool", type=int, default=300, help="train sentences shared out among the source voices")
    ap.add_argument("--adapt", type=int, default=20, help="adaptation sentences of each target voice")
    ap.add_argument("--test", type=int, default=16, help="held-out test sentences per voice")
    args = ap.parse_args()
    torch.set_num_threads(1)
    root, out = Path(args.piper), Path(args.out)
    train, test = read_manifest(root / "train.jsonl"), read_manifest(root / "test.jsonl")
    todo = plan(train, test, args.per_voice, args.adapt, args.test, args.pool)
    task = TTSTask(pitch_method="dio", f0_min=65.0, f0_max=500.0)
    task.models = {"model": audiozoo.create_model("fastspeech2_small")}
    cache: dict[str, tuple] = {}
    t0 = time.perf_counter()
    summary = {"voices": {v: dict(zip(("f0_scale", "warp", "f0_range"), VOICES[v])) for v in VOICES},
               "source": list(SOURCE), "targets": list(TARGETS)}
    for voice, splits in todo.items():
        for split, items in splits.items():
            feats, rows = [], []
            d = out / voice / split
            d.mkdir(parents=True, exist_ok=True)
            for it in items:
                key = it["audio_filepath"]
                p = Path(key) if Path(key).is_absolute() else root / key
                wav = load_audio(p, mono=True)[0].reshape(-1).double().numpy()
                if key not in cache:
                    cache[key] = world_analyse(wav, SR, FRAME_MS)
                f0_scale, warp, f0_range = VOICES[voice]
                y = world_voice(cache[key], f0_scale, warp, f0_range)
                f = d / Path(key).name
                save_audio(f, torch.from_numpy(y)[None], SR)
                frames = int(sum(it["durations"]))
                mel, lf0, en = task.item_targets(torch.from_numpy(y), frames)
                feats.append({"tokens": torch.tensor(it["phoneme_ids"]), "durations": torch.tensor(it["durations"]),
                              "mel": mel.half(), "lf0": lf0, "energy": en})
                rows.append({**it, "audio_filepath": str(f.resolve()), "speaker": voice})
            torch.save(feats, d / "features.pt")
            (d / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            print(f"{voice}/{split}: {len(items)} items, {time.perf_counter() - t0:.0f} s", flush=True)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    summary["items"] = {v: {s: len(i) for s, i in sp.items()} for v, sp in todo.items()}
    (out / "voices.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
