"""Many-voice corpus for the SV2TTS synthesizer: the Piper voice turned into dozens of WORLD voices, with each
utterance's GE2E d-vector in the manifest, and held-out voices for zero-shot tests.

SV2TTS (Jia et al. 2018) trains the synthesizer on many speakers, conditioning it on the speaker encoder's
embedding of the target utterance itself (Section 2.2), and clones a voice never heard from one reference clip.
The project has one natural voice with exact text and durations (``piper-speech``), so the speakers here are WORLD
transforms of it (:func:`audiozoo.dsp.pitch.world_voice`, as ``adaspeech_world_voices.py``): each voice has its
own F0 register (``f0_scale``), intonation range (``f0_range``) and vocal-tract length (``warp``: the envelope and
aperiodicity frequency-warped), drawn at random; timing is Piper's (so the durations stay exact and the
guided-attention target of the ``tts`` task applies; timing is not part of a voice here).

* ``--voices`` training voices (seeded draws: ``f0_scale`` log-uniform in [0.72, 2.0], ``warp`` uniform in
  [0.86, 1.24], ``f0_range`` uniform in [0.6, 1.4]); every ``piper-speech`` train sentence is read by
  ``--per-sentence`` of them (chosen at random), every valid sentence by one.
* held-out voices, never in training: AdaSpeech's three targets (``t0``-``t2`` of adaspeech_world_voices.py)
  and ``--heldout`` more drawn from the same ranges with another seed. Each reads ``--test`` test-split sentences
  (evaluation texts and GE2E centroids) and ``--refs`` train-split sentences (reference clips for cloning).
* every training voice also reads the same ``--test`` test sentences: its GE2E centroid, so a cloned voice can be
  compared against every voice of the set, not only the held-out ones. Centroids of all voices must come from the
  same texts: these voices share one speaker's timing and prosody, and GE2E then hears the text too (measured: a
  held-out voice's own clips were closer to 5-8 training voices' centroids of the same texts than to its own
  centroid of other texts).

Each manifest row is a ``piper-speech`` row (``phoneme_ids``, ``durations``, ``text``) with the new wav
(22.05 kHz PCM-16), ``speaker`` and ``speaker_embedding`` (256 floats: ``ge2e_speaker_encoder.resemblyzer`` of the
clip at 16 kHz, as the ``tts`` pipeline embeds a reference clip).

    OMP_NUM_THREADS=1 python recipes/tts/prepare_sv2tts_voices.py --piper cache/piper_speech \
        --out cache/sv2tts_voices            # ~10-15 min on one thread
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import torch

import audiozoo
from audiozoo.data.manifest import read_manifest
from audiozoo.dsp.io import load_audio, resample, save_audio
from audiozoo.dsp.pitch import world_analyse, world_voice

SR = 22050
FRAME_MS = 5.0
# AdaSpeech's adaptation targets (adaspeech_world_voices.TARGETS): (f0_scale, warp, f0_range)
ADASPEECH_TARGETS = {"t0": (1.50, 0.97, 1.0), "t1": (0.88, 1.14, 0.8), "t2": (1.20, 1.22, 1.5)}


def draw_voices(n: int, seed: int, prefix: str) -> dict[str, tuple[float, float, float]]:
    """``n`` voices ``{name: (f0_scale, warp, f0_range)}`` from the module's ranges (seeded)."""
    rng = random.Random(seed)
    out = {}
    for i in range(n):
        f0 = math.exp(rng.uniform(math.log(0.72), math.log(2.0)))
        out[f"{prefix}{i:02d}"] = (round(f0, 3), round(rng.uniform(0.86, 1.24), 3), round(rng.uniform(0.6, 1.4), 3))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--piper", default="cache/piper_speech", help="a piper-speech build (train/valid/test.jsonl)")
    ap.add_argument("--out", default="cache/sv2tts_voices")
    ap.add_argument("--voices", type=int, default=48, help="training voices")
    ap.add_argument("--per-sentence", type=int, default=2, help="training voices reading each train sentence")
    ap.add_argument("--heldout", type=int, default=3, help="held-out voices drawn besides t0-t2")
    ap.add_argument("--test", type=int, default=16, help="test sentences read by each held-out voice")
    ap.add_argument("--refs", type=int, default=3, help="reference clips (train sentences) per held-out voice")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    root, out = Path(args.piper), Path(args.out)
    splits = {s: read_manifest(root / f"{s}.jsonl") for s in ("train", "valid", "test")}
    train_voices = draw_voices(args.voices, args.seed, "v")
    held = {**ADASPEECH_TARGETS, **draw_voices(args.heldout, args.seed + 1000, "h")}
    rng = random.Random(args.seed)
    names = list(train_voices)
    jobs: dict[str, list[tuple[dict, str]]] = {
        "train": [(it, v) for it in splits["train"] for v in rng.sample(names, args.per_sentence)],
        "valid": [(it, rng.choice(names)) for it in splits["valid"]],
    }
    for v in held:
        jobs[f"heldout/{v}/test"] = [(it, v) for it in splits["test"][: args.test]]
        jobs[f"heldout/{v}/refs"] = [(it, v) for it in splits["train"][-args.refs:]]
    for v in names:
        jobs[f"train_voices/{v}/test"] = [(it, v) for it in splits["test"][: args.test]]
    params = {**train_voices, **held}
    ge2e = audiozoo.create_model("ge2e_speaker_encoder.resemblyzer").eval()
    cache: dict[str, object] = {}
    t0 = time.perf_counter()
    for name, todo in jobs.items():
        d = out / name
        (d / "wavs").mkdir(parents=True, exist_ok=True)
        rows = []
        for it, voice in todo:
            key = it["audio_filepath"]
            if key not in cache:
                p = Path(key) if Path(key).is_absolute() else root / key
                cache[key] = world_analyse(load_audio(p, mono=True)[0].reshape(-1).double().numpy(), SR, FRAME_MS)
            y = torch.from_numpy(world_voice(cache[key], *params[voice]))
            f = d / "wavs" / f"{voice}_{Path(key).stem}.wav"
            save_audio(f, y[None], SR)
            with torch.no_grad():
                emb = ge2e.embed(resample(y[None].float(), SR, 16000), sample_rate=16000).reshape(-1)
            rows.append({**it, "audio_filepath": str(f.resolve()), "speaker": voice,
                         "speaker_embedding": [round(float(x), 6) for x in emb]})
        (d / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"{name}: {len(rows)} items, {time.perf_counter() - t0:.0f} s", flush=True)
    meta = {"train_voices": train_voices, "heldout_voices": held, "seed": args.seed,
            "per_sentence": args.per_sentence, "items": {k: len(v) for k, v in jobs.items()},
            "seconds": round(time.perf_counter() - t0, 1), "source": str(root)}
    (out / "voices.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    main()
