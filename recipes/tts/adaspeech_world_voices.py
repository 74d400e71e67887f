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

import numpy as np
import torch

import audiozoo
from audiozoo.data.manifest import read_manifest
from audiozoo.dsp.io import load_audio, save_audio
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


def analyse(wav: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WORLD analysis ``(f0 (F,), sp (F, K), ap (F, K))`` of a float64 waveform at 22.05 kHz."""
    import pyworld as pw

    f0, t = pw.dio(wav, SR, f0_floor=60.0, f0_ceil=500.0, frame_period=FRAME_MS)
    f0 = pw.stonemask(wav, f0, t, SR)
    return f0, pw.cheaptrick(wav, f0, t, SR), pw.d4c(wav, f0, t, SR)


def warp_envelope(env: np.ndarray, warp: float) -> np.ndarray:
    """``env'(f) = env(f / warp)`` along the frequency bins ``(F, K)`` (linear interpolation, edge held)."""
    if warp == 1.0:
        return env
    k = np.arange(env.shape[1], dtype=np.float64)
    src = np.clip(k / warp, 0, env.shape[1] - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, env.shape[1] - 1)
    frac = src - lo
    return np.ascontiguousarray(env[:, lo] * (1 - frac) + env[:, hi] * frac)


def transform(analysis: tuple[np.ndarray, np.ndarray, np.ndarray], n: int, f0_scale: float, warp: float,
              f0_range: float) -> np.ndarray:
    """One voice: WORLD synthesis of the modified analysis, cut / padded to ``n`` samples, peak 0.95."""
    import pyworld as pw

    f0, sp, ap = analysis
    voiced = f0 > 0
    lf0 = np.log(np.where(voiced, f0, 1.0))
    m = lf0[voiced].mean() if voiced.any() else 0.0
    new = np.where(voiced, np.exp(np.log(f0_scale) + m + f0_range * (lf0 - m)), 0.0)
    y = pw.synthesize(np.ascontiguousarray(new), warp_envelope(sp, warp), warp_envelope(ap, warp), SR, FRAME_MS)
    y = y[:n] if y.shape[0] >= n else np.pad(y, (0, n - y.shape[0]))
    return (0.95 * y / max(np.abs(y).max(), 1e-6)).astype(np.float32)


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
                    cache[key] = analyse(wav)
                y = transform(cache[key], wav.shape[0], *VOICES[voice])
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
