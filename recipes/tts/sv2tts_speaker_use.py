"""Does an SV2TTS synthesizer use its speaker input? Teacher-forced mel L1 with the utterance's own d-vector vs
another voice's (the voices furthest apart in F0 register swapped pairwise).

A synthesizer that ignores the d-vector scores the same with either; one that uses it is worse with the wrong one.
Rows: the first training utterance of each training voice (a check of the mechanism, not of generalisation), sorted
by the voice's F0 register; the i-th lowest is paired with the i-th highest (``--pairs``) and each gets the other's
d-vector.

``--f0 N`` also vocodes (``hifigan_v1.universal``) the teacher-forced prediction of N voices spread over the F0
range and prints the median F0 (WORLD DIO) of the recording, of its copy-synthesis and of the prediction: whether
the predicted mel carries the voice's pitch at all (the previous target frame is given, so this is the easiest
case).

``--probe`` (no model needed) fits a ridge regression from the training manifest's d-vectors to each voice's
(log F0 scale, warp, F0 range) on 40 voices and reports R² on the other 8: how much of each voice setting the
d-vector carries linearly.

    python recipes/tts/sv2tts_speaker_use.py --model runs/sv2tts_small_voices/best
    python recipes/tts/sv2tts_speaker_use.py --probe
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from audiozoo.data.manifest import read_manifest
from audiozoo.dsp.io import load_audio
from audiozoo.resolve import resolve_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_sv2tts_zero_shot import median_f0  # noqa: E402  (the zero-shot test's F0 measure: WORLD DIO, 65-600 Hz)


def target(model: torch.nn.Module, row: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """``(waveform (T,), log-mel (n_mels, L))`` of ``row``'s recording, ``L`` = the sum of its durations."""
    wav = load_audio(row["audio_filepath"], model.sample_rate)[0]
    return wav, model.mel_extractor()(wav[None])[0][0][:, : sum(row["durations"])]


def teacher_forced(model: torch.nn.Module, row: dict, mel: torch.Tensor, embedding: list[float]) -> torch.Tensor:
    """The post-net log-mel ``(n_mels, L)`` predicted for ``row`` fed its target ``mel``, with ``embedding`` as the
    voice."""
    tokens = torch.tensor(row["phoneme_ids"])[None]
    with torch.no_grad():
        out = model(tokens, None, mel[None], torch.tensor([mel.shape[-1]]),
                    speaker_embedding=torch.tensor(embedding)[None])
    return out.mel[0]


def pitch_check(model: torch.nn.Module, rows: list[dict], voices: dict, n: int) -> list[dict]:
    """Median F0 (Hz) of the recording, its copy-synthesis and the vocoded teacher-forced prediction, for ``n``
    of ``rows`` (sorted by F0 register) spread evenly from the lowest to the highest."""
    vocoder = resolve_model("hifigan_v1.universal", "vocoder", trained=True).eval()
    out = []
    for i in range(n):
        row = rows[round(i * (len(rows) - 1) / max(n - 1, 1))]
        wav, mel = target(model, row)
        pred = teacher_forced(model, row, mel, row["speaker_embedding"])
        with torch.no_grad():
            copy, synth = vocoder(mel[None])[0], vocoder(pred[None])[0]
        r = {"voice": row["speaker"], "f0_scale": voices[row["speaker"]][0], "recorded_hz": median_f0([wav]),
             "copy_synthesis_hz": median_f0([copy]), "teacher_forced_prediction_hz": median_f0([synth])}
        print(r)
        out.append(r)
    return out


def probe(data: Path, held_out: int = 8, ridge: float = 1.0) -> dict[str, float]:
    """Held-out-voice R² of a ridge regression d-vector -> (ln f0_scale, warp, f0_range) (seeded voice split)."""
    voices = json.loads((data / "voices.json").read_text())["train_voices"]
    rows = read_manifest(data / "train" / "manifest.jsonl")
    x = torch.tensor([r["speaker_embedding"] for r in rows], dtype=torch.float64)
    x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    y = torch.tensor([[math.log(voices[r["speaker"]][0]), *voices[r["speaker"]][1:]] for r in rows],
                     dtype=torch.float64)
    names = sorted(voices)
    test = {names[i] for i in torch.randperm(len(names), generator=torch.Generator().manual_seed(0))[:held_out]}
    te = torch.tensor([r["speaker"] in test for r in rows])
    w = torch.linalg.solve(x[~te].T @ x[~te] + ridge * torch.eye(x.shape[1], dtype=x.dtype), x[~te].T @ y[~te])
    err = ((x[te] @ w - y[te]) ** 2).sum(0)
    r2 = 1 - err / ((y[te] - y[te].mean(0)) ** 2).sum(0)
    return dict(zip(("log_f0_scale", "warp", "f0_range"), (round(float(v), 3) for v in r2)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--probe", action="store_true", help="only the d-vector -> voice-setting ridge probe")
    ap.add_argument("--data", default="cache/sv2tts_voices")
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--f0", type=int, default=0, metavar="N", help="also the pitch check on N voices")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.probe:
        print(f"held-out-voice R² of d-vector -> voice setting: {probe(Path(args.data))}")
        return
    if args.model is None:
        ap.error("--model is required (or --probe)")
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
            mel = target(model, own)[1]
            a = float((teacher_forced(model, own, mel, own["speaker_embedding"]) - mel).abs().mean())
            b = float((teacher_forced(model, own, mel, other["speaker_embedding"]) - mel).abs().mean())
            res.append({"voice": own["speaker"], "f0_scale": voices[own["speaker"]][0],
                        "other": other["speaker"], "other_f0_scale": voices[other["speaker"]][0],
                        "l1_own": round(a, 4), "l1_swapped": round(b, 4)})
            print(f"{own['speaker']} (f0 x{voices[own['speaker']][0]:.2f}) own {a:.3f} | with "
                  f"{other['speaker']}'s (x{voices[other['speaker']][0]:.2f}) {b:.3f}")
    own = sum(r["l1_own"] for r in res) / len(res)
    swp = sum(r["l1_swapped"] for r in res) / len(res)
    print(f"mean teacher-forced L1: own d-vector {own:.4f}, swapped {swp:.4f} (+{swp - own:.4f})")
    pitch = pitch_check(model, rows, voices, args.f0) if args.f0 else None
    if args.out:
        Path(args.out).write_text(json.dumps({"model": args.model, "rows": res, "mean_l1_own": round(own, 4),
                                              "mean_l1_swapped": round(swp, 4), "pitch": pitch}, indent=1) + "\n")


if __name__ == "__main__":
    main()
