"""Mel-RoFormer small: vocal separation, then vocal melody transcription fine-tuned from the separator (issue #15).

The two steps of Wang, Lu & Chen (ISMIR 2024, arXiv:2409.04702, Sections 2-3) at a CPU size, on the mixtures of
``prepare_melody.py`` (a WORLD-sung music21 melody over a fluidsynth accompaniment, split by piece and voice):

1. ``--stage separator``: ``mel_roformer_small`` (16 kHz mono, 1.86 M parameters) learns the vocal stem from the
   mixture with the paper's objective, L1 on the waveform + a multi-resolution STFT loss (spectral convergence
   + log magnitude, three resolutions). Mixtures are re-drawn every step: vocal-to-accompaniment ratio uniform
   in -6..+6 dB, a random overall gain, and with probability 0.3 the accompaniment of another training clip.
2. ``--stage melody``: ``mel_roformer_melody_small`` starts from the separator's encoder
   (``MelRoFormerMelody.load_separator``) and learns frame pitch (61 classes: no melody + MIDI 36-95) and note
   onsets (``audiozoo.train.losses.melody``) from the mixture.
3. ``--stage eval``: on the held-out test pieces (never trained or tuned on, sung by held-out voices), mixtures
   at the stored vocal-to-accompaniment ratio (-3..+3 dB): vocal SI-SDR / SDR of the separator against the
   mixture and the oracle ideal ratio mask; melody scores (``mir_eval.melody`` through
   ``audiozoo.eval.music.melody_metrics``) of the melody model against ``librosa.pyin`` on the mixture, on the
   separator's vocal estimate and on the clean vocal stem; note scores of ``melody_to_notes``; one MIDI file.

Each training stage stops after ``--minutes`` of wall time (one CPU thread), with a cosine learning-rate decay
over that time, validates on the valid pieces every ``--eval-every`` steps and keeps the best weights
(``save_pretrained`` folders under ``--out``).

Usage (the commands that made ``mel_roformer_melody_small.world_sung``; results in docs/models/mel_roformer.md)::

    python recipes/separate/prepare_melody.py                                                   # ~27 min
    python recipes/separate/mel_roformer_melody.py --stage separator --minutes 18 --eval-every 100
    python recipes/separate/mel_roformer_melody.py --stage melody --minutes 30 --eval-every 150
    python recipes/separate/mel_roformer_melody.py --stage eval --pyin-clips 48                 # ~8 min
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from audiozoo import create_model
from audiozoo.eval.separation import oracle_irm
from audiozoo.hub import save_pretrained
from audiozoo.registry import from_pretrained

SR, HOP = 16000, 256
RESOLUTIONS = ((256, 64, 256), (512, 128, 512), (1024, 256, 1024))


def load_split(data: Path, split: str) -> dict[str, np.ndarray]:
    z = np.load(data / f"{split}.npz")
    out = {k: z[k] for k in z.files}
    out["vocal"] = out["vocal"].astype(np.float32) / 32767.0
    out["accomp"] = out["accomp"].astype(np.float32) / 32767.0
    return out


def _rms(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(x ** 2, axis=-1, keepdims=True) + 1e-10)


def mix(vocal: np.ndarray, accomp: np.ndarray, var_db: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """``(mixture, scaled vocal)``, ``(..., T)``: vocal and accompaniment at ``var_db`` dB RMS ratio, the
    mixture's peak at 0.5 at most."""
    v = vocal / _rms(vocal) * 10 ** (np.asarray(var_db)[..., None] / 20)
    m = accomp / _rms(accomp)
    x = v + m
    g = 0.5 / np.maximum(np.abs(x).max(-1, keepdims=True), 1e-9)
    return (x * g).astype(np.float32), (v * g).astype(np.float32)


def batch(d: dict[str, np.ndarray], rng: np.random.Generator, size: int, crop_frames: int,
          swap: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A training batch: ``mixture (B, T)``, ``vocal (B, T)``, ``f0 (B, L)``, ``onset (B, L)``; crops start on a
    frame (hop) boundary so the labels line up: ``T = (L - 1) * HOP``."""
    n, total = d["vocal"].shape
    idx = rng.integers(n, size=size)
    frames = d["f0"].shape[1]
    start = rng.integers(0, frames - crop_frames + 1, size=size)
    t = (crop_frames - 1) * HOP
    v = np.stack([d["vocal"][i, s * HOP: s * HOP + t] for i, s in zip(idx, start)])
    other = np.where(rng.random(size) < swap, rng.integers(n, size=size), idx)
    a = np.stack([d["accomp"][i, s * HOP: s * HOP + t] for i, s in zip(other, start)])
    f0 = np.stack([d["f0"][i, s: s + crop_frames] for i, s in zip(idx, start)])
    on = np.stack([d["onset"][i, s: s + crop_frames] for i, s in zip(idx, start)])
    x, v = mix(v, a, rng.uniform(-6, 6, size))
    g = rng.uniform(0.3, 1.0, (size, 1)).astype(np.float32)
    return (torch.from_numpy(x * g), torch.from_numpy(v * g), torch.from_numpy(f0.astype(np.float32)),
            torch.from_numpy(on.astype(np.float32)))


def eval_mixtures(d: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The fixed evaluation mixtures of a split (its stored ratios): ``(mixture (N, T), vocal (N, T))``."""
    return mix(d["vocal"], d["accomp"], d["var_db"])


@torch.no_grad()
def separate(model, x: np.ndarray, bs: int = 8) -> np.ndarray:
    model.eval()
    out = [model(torch.from_numpy(x[i:i + bs]))[:, 0, 0].numpy() for i in range(0, len(x), bs)]
    return np.concatenate(out)


@torch.no_grad()
def melody_logits(model, x: np.ndarray, bs: int = 8) -> list[dict[str, torch.Tensor]]:
    model.eval()
    out = []
    for i in range(0, len(x), bs):
        o = model(torch.from_numpy(x[i:i + bs]))
        out += [{k: v[j:j + 1] for k, v in o.items()} for j in range(o["pitch"].shape[0])]
    return out


def si_sdr_db(est: np.ndarray, ref: np.ndarray) -> np.ndarray:
    from audiozoo.eval.separation import si_sdr

    return si_sdr(torch.from_numpy(est), torch.from_numpy(ref)).numpy()


def sdr_db(est: np.ndarray, ref: np.ndarray) -> np.ndarray:
    from audiozoo.eval.separation import nsdr

    return nsdr(torch.from_numpy(est), torch.from_numpy(ref)).numpy()


def melody_scores(ref_f0: np.ndarray, est_f0: list[np.ndarray]) -> dict[str, float]:
    """Mean over clips of ``melody_metrics`` (reference and estimate on the model's frame grid)."""
    from audiozoo.eval.music import melody_metrics

    t = np.arange(ref_f0.shape[1]) * HOP / SR
    rows = [melody_metrics(t, r.astype(np.float64), t, e.astype(np.float64)) for r, e in zip(ref_f0, est_f0)]
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def decode_all(model, logits: list[dict[str, torch.Tensor]], threshold: float = 0.5):
    from audiozoo.models.separate.mel_roformer import decode_melody

    return [decode_melody(o, model.pitch_midi, HOP / SR, voicing_threshold=threshold) for o in logits]


def _lr(step_frac: float, base: float, warm: float = 0.03) -> float:
    if step_frac < warm:
        return base * step_frac / warm
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, (step_frac - warm) / (1 - warm)))))


def train(args: argparse.Namespace) -> None:
    from audiozoo.train.losses.melody import melody_loss, melody_targets
    from audiozoo.train.losses.separation import l1_loss
    from audiozoo.train.losses.stft import multi_resolution_stft_loss

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    data = Path(args.data)
    tr, va = load_split(data, "train"), load_split(data, "valid")
    vx, vv = eval_mixtures(va)
    out = Path(args.out)
    sep_dir = out / "separator"
    if args.stage == "separator":
        model = create_model("mel_roformer_small")
        dest = sep_dir
    else:
        model = create_model("mel_roformer_melody_small")
        if not args.from_scratch:
            model.load_separator(from_pretrained(sep_dir).state_dict())
        dest = out / ("melody_scratch" if args.from_scratch else "melody")
    cfg = model.config
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    crop_frames = int(args.crop * SR / HOP) + 1
    budget = args.minutes * 60.0
    t0, step, best, log = time.time(), 0, -1e9, []

    def validate() -> float:
        if args.stage == "separator":
            est = separate(model, vx)
            return float(np.mean(si_sdr_db(est, vv)))
        dec = decode_all(model, melody_logits(model, vx))
        return melody_scores(va["f0"], [f for _, f, _ in dec])["overall_accuracy"]

    while True:
        frac = (time.time() - t0) / budget
        if frac >= 1.0:
            break
        for gr in opt.param_groups:
            gr["lr"] = _lr(frac, args.lr)
        model.train()
        x, v, f0, on = batch(tr, rng, args.batch, crop_frames, swap=0.3 if args.stage == "separator" else 0.0)
        if args.stage == "separator":
            est = model(x)[:, 0, 0]
            sc, lm = multi_resolution_stft_loss(est, v, RESOLUTIONS)
            loss = l1_loss(est, v).mean() * 10 + sc + lm
            parts = {"sc": float(sc), "lm": float(lm)}
        else:
            o = model(x)
            loss, parts = melody_loss(o, melody_targets(f0, cfg.pitch_min, cfg.pitch_bins, cfg.bins_per_semitone),
                                      on, onset_weight=1.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        step += 1
        if step % 25 == 0:
            print(f"step {step} {time.time() - t0:.0f}s loss {float(loss):.4f} {parts}", flush=True)
        if step % args.eval_every == 0:
            score = validate()
            log.append({"step": step, "seconds": round(time.time() - t0, 1), "valid": score})
            print(f"  valid {'si_sdr' if args.stage == 'separator' else 'overall_acc'} {score:.4f}", flush=True)
            if score > best:
                best = score
                save_pretrained(model, dest, {"step": step, "valid": score, "recipe": vars(args)})
    score = validate()
    log.append({"step": step, "seconds": round(time.time() - t0, 1), "valid": score})
    print(f"final step {step} valid {score:.4f} (best {max(best, score):.4f})", flush=True)
    if score > best:
        save_pretrained(model, dest, {"step": step, "valid": score, "recipe": vars(args)})
    (out / f"{dest.name}_log.json").write_text(json.dumps(log, indent=1) + "\n")


def pyin_f0(x: np.ndarray) -> np.ndarray:
    """``librosa.pyin`` (65-1000 Hz) on the model's frame grid (frame 1024, hop 256, centred): f0 with 0 where
    unvoiced."""
    import librosa

    f, voiced, _ = librosa.pyin(x.astype(np.float64), fmin=65.0, fmax=1000.0, sr=SR, frame_length=1024,
                                hop_length=HOP, center=True)
    return np.where(voiced, np.nan_to_num(f), 0.0)


def evaluate(args: argparse.Namespace) -> None:
    from audiozoo.data.midi import notes_to_midi_bytes
    from audiozoo.eval.music import note_metrics
    from audiozoo.models.separate.mel_roformer import melody_to_notes

    out, data = Path(args.out), Path(args.data)
    te = load_split(data, "test")
    meta = json.loads((data / "test.json").read_text())
    if args.max_clips and args.max_clips < len(meta):  # an evenly spaced subset (every source composer)
        keep = np.unique(np.linspace(0, len(meta) - 1, args.max_clips).round().astype(int))
        te, meta = {k: v[keep] for k, v in te.items()}, [meta[i] for i in keep]
    n = len(meta)
    x, v = eval_mixtures(te)
    res: dict[str, object] = {"clips": n, "pieces": len({m["piece"] for m in meta}),
                              "voices": sorted({m["voice"] for m in meta})}
    t0 = time.time()
    sep = from_pretrained(out / "separator")
    est = separate(sep, x)
    # ideal ratio mask |V| / (|V| + |A|) on a 1024 / 256 STFT, the accompaniment A = x - v
    irm = np.stack([oracle_irm(xi, np.stack([vi, xi - vi]), 1024, 256)[0].numpy() for xi, vi in zip(x, v)])
    res["separation"] = {
        name: {"si_sdr": float(np.mean(si_sdr_db(e, v))), "sdr": float(np.mean(sdr_db(e, v)))}
        for name, e in (("mixture", x), ("mel_roformer_small", est), ("oracle_irm", irm))}
    res["separation_seconds"] = round(time.time() - t0, 1)
    print(json.dumps(res["separation"]), flush=True)
    ref = te["f0"]
    melody: dict[str, dict[str, float]] = {}
    est_f0: dict[str, list[np.ndarray]] = {}
    t0 = time.time()
    va = load_split(data, "valid")
    vx, _ = eval_mixtures(va)
    for name in ("melody", "melody_scratch"):
        if (out / name).is_dir():
            mdl = from_pretrained(out / name)
            # the voicing threshold is tuned on the valid pieces (never on test)
            vlog = melody_logits(mdl, vx)
            tune = {th: melody_scores(va["f0"], [f for _, f, _ in decode_all(mdl, vlog, th)])["overall_accuracy"]
                    for th in (0.3, 0.4, 0.5, 0.6, 0.7)}
            th = max(tune, key=tune.get)
            res[f"{name}_voicing_threshold"] = {"chosen": th, "valid_overall_accuracy": tune}
            logits = melody_logits(mdl, x)
            dec = decode_all(mdl, logits, th)
            est_f0[f"mel_roformer_{name}_small"] = [f for _, f, _ in dec]
            melody[f"mel_roformer_{name}_small"] = melody_scores(ref, est_f0[f"mel_roformer_{name}_small"])
            if name == "melody":
                scores = []
                for (times, f0, onset), m in zip(dec, meta):
                    notes = melody_to_notes(times, f0, onset)
                    ri = np.array([[a, b] for a, b, _ in m["notes"]], float).reshape(-1, 2)
                    rp = np.array([p for _, _, p in m["notes"]], float)
                    ei = np.array([[a, b] for a, b, _, _, _ in notes], float).reshape(-1, 2)
                    ep = np.array([p for _, _, p, _, _ in notes], float)
                    scores.append(note_metrics(ei, ep, ri, rp, pitch_unit="midi"))
                res["notes"] = {k: float(np.mean([s[k] for s in scores])) for k in ("precision", "recall", "f1")}
                times, f0, onset = dec[0]
                (out / "example_test0.mid").write_bytes(notes_to_midi_bytes(melody_to_notes(times, f0, onset)))
    res["model_seconds"] = round(time.time() - t0, 1)
    # pyin is slow (seconds a clip): the baselines run on an evenly spaced subset, the model is scored on it too
    sub = np.arange(n)
    if args.pyin_clips and args.pyin_clips < n:
        sub = np.unique(np.linspace(0, n - 1, args.pyin_clips).round().astype(int))
    res["pyin_subset_clips"] = len(sub)
    t0 = time.time()
    for name in list(melody):
        melody[f"{name}@subset"] = melody_scores(ref[sub], [est_f0[name][i] for i in sub])
    melody["pyin_mixture@subset"] = melody_scores(ref[sub], [pyin_f0(x[i]) for i in sub])
    melody["pyin_separated@subset"] = melody_scores(ref[sub], [pyin_f0(est[i]) for i in sub])
    melody["pyin_clean_vocal@subset"] = melody_scores(ref[sub], [pyin_f0(v[i]) for i in sub])
    res["pyin_seconds"] = round(time.time() - t0, 1)
    res["melody"] = melody
    print(json.dumps(res, indent=1), flush=True)
    (out / "eval_test.json").write_text(json.dumps(res, indent=1) + "\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stage", choices=("separator", "melody", "eval"), required=True)
    ap.add_argument("--data", default="cache/melody_vocals")
    ap.add_argument("--out", default="runs/mel_roformer_melody_small")
    ap.add_argument("--minutes", type=float, default=25.0)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--crop", type=float, default=2.0, help="training crop in seconds")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--eval-every", type=int, default=150)
    ap.add_argument("--from-scratch", action="store_true", help="melody stage without the separator's encoder")
    ap.add_argument("--max-clips", type=int, default=0, help="eval: N evenly spaced test clips (0: all)")
    ap.add_argument("--pyin-clips", type=int, default=48, help="eval: pyin baselines on N evenly spaced clips")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.stage == "eval":
        evaluate(args)
    else:
        train(args)


if __name__ == "__main__":
    main()
