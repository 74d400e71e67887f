"""Does an SV2TTS synthesizer use its speaker input? Teacher-forced mel L1 with the utterance's own d-vector vs
another voice's (the voices furthest apart in F0 register swapped pairwise).

A synthesizer that ignores the d-vector scores the same with either (the previous target frame, teacher-forced,
already tells it the voice); one that uses it is worse with the wrong one. Rows: the first training utterance of
each training voice (a check of the mechanism, not of generalisation), sorted by the voice's F0 register; the i-th
lowest is paired with the i-th highest (``--pairs``) and each gets the other's d-vector.

    python recipes/tts/sv2tts_speaker_use.py --model runs/sv2tts_small_voices/best
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from audiozoo.data.manifest import read_manifest
from audiozoo.dsp.io import load_audio
from audiozoo.resolve import resolve_model


def teacher_forced_l1(model: torch.nn.Module, row: dict, embedding: list[float]) -> float:
    """Mean |post-net mel - target mel| of ``row`` (ln units), teacher-forced, with ``embedding`` as the voice."""
    wav = load_audio(row["audio_filepath"], model.sample_rate)[0]
    mel = model.mel_extractor()(wav[None])[0][0][:, : sum(row["durations"])]
    tokens = torch.tensor(row["phoneme_ids"])[None]
    with torch.no_grad():
        out = model(tokens, None, mel[None], torch.tensor([mel.shape[-1]]),
                    speaker_embedding=torch.tensor(embedding)[None])
    return float((out.mel[0] - mel).abs().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", default="cache/sv2tts_voices")
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.manual_seed(0)
    model = resolve_model(args.model, "tts").eval()
    voices = json.loads((Path(args.data) / "voices.json").read_text())["train_voices"]
    first: dict[str, dict] = {}
    for r in read_manifest(Path(args.data) / "train" / "manifest.jsonl"):
        first.setdefault(r["speaker"], r)
    rows = sorted(first.values(), key=lambda r: voices[r["speaker"]][0])
    pairs = [(rows[i], rows[-1 - i]) for i in range(min(args.pairs, len(rows) // 2))]
    res = []
    for lo, hi in pairs:
        for own, other in ((lo, hi), (hi, lo)):
            a = teacher_forced_l1(model, own, own["speaker_embedding"])
            b = teacher_forced_l1(model, own, other["speaker_embedding"])
            res.append({"voice": own["speaker"], "f0_scale": voices[own["speaker"]][0],
                        "other": other["speaker"], "other_f0_scale": voices[other["speaker"]][0],
                        "l1_own": round(a, 4), "l1_swapped": round(b, 4)})
            print(f"{own['speaker']} (f0 x{voices[own['speaker']][0]:.2f}) own {a:.3f} | with "
                  f"{other['speaker']}'s (x{voices[other['speaker']][0]:.2f}) {b:.3f}")
    own = sum(r["l1_own"] for r in res) / len(res)
    swp = sum(r["l1_swapped"] for r in res) / len(res)
    print(f"mean teacher-forced L1: own d-vector {own:.4f}, swapped {swp:.4f} (+{swp - own:.4f})")
    if args.out:
        Path(args.out).write_text(json.dumps({"model": args.model, "rows": res, "mean_l1_own": round(own, 4),
                                              "mean_l1_swapped": round(swp, 4)}, indent=1) + "\n")


if __name__ == "__main__":
    main()
