"""Train the forced aligner built here (RAD-TTS-style forward-sum + MAS) and measure its boundary error against the
Piper voice's own phoneme durations.

Ground truth: the ``piper-speech`` corpus stores, for every utterance, the frames (256 samples at 22.05 kHz,
11.61 ms) the Piper VITS voice spent on every phoneme id it read: VITS's ``w_ceil``, read out of the ONNX graph by
:mod:`audiozoo.data.builders.piper_speech`. They are exact boundaries of the audio, because the voice's decoder
turns exactly those frames into exactly ``256 x frames`` samples.

The aligner (:class:`audiozoo.nn.aligner.ConvAligner`, Badlani et al. 2022) sees only the audio (HiFi-GAN's log-mel,
same hop) and the id sequence; it is trained with :func:`audiozoo.train.losses.alignment.forward_sum_loss` on the
``train`` split only, and evaluated on the held-out ``test`` (and ``valid``) sentences, which no build puts in
``train`` (split by a hash of the sentence). Scored boundaries: the onset of every id except the ``_`` pads
and the ``^`` start (phonemes, stress marks, word spaces, punctuation and the ``$`` end), in ms; plus word
starts / ends (as ``recipes/asr/eval_align.py`` scores the CTC aligner). Baseline: the ids spread evenly over
the speech span (frames within 40 dB of the utterance's loudest frame).

The aligner's boundaries come out a constant ~3 frames late; the median lag on ``valid`` is also applied to
``test`` (``shift_calibrated_on_valid``). ``--load`` re-evaluates the aligner saved in ``--run`` without training.

    OMP_NUM_THREADS=1 python recipes/tts/eval_aligner_boundaries.py --data cache/piper_speech \
        --steps 1000 --out recipes/tts/results_aligner_boundaries.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from audiozoo.data.manifest import read_manifest
from audiozoo.dsp.mel import VocoderMel
from audiozoo.eval.alignment import boundary_errors, summarize_boundary_errors, uniform_span_durations
from audiozoo.nn.aligner import ConvAligner, batch_prior
from audiozoo.train.losses.alignment import forward_sum_loss

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "recipes" / "asr"))
from eval_align import piper_words  # noqa: E402  (word (start, end) from Piper ids + durations)

HOP, SR = 256, 22050
FRAME_MS = 1000 * HOP / SR
PAD, BOS = 0, 1


def load_split(data: Path, split: str, mel: VocoderMel) -> list[dict]:
    """Items of one split with their log-mel ``(80, L)`` (``L`` = the durations' sum, checked)."""
    out = []
    for it in read_manifest(data / f"{split}.jsonl"):
        wav, sr = sf.read(str(data / it["audio_filepath"]), dtype="float32")
        assert sr == SR, sr
        with torch.no_grad():
            m = mel(torch.from_numpy(wav)[None])[0][0]  # (80, L)
        n = int(sum(it["durations"]))
        if m.shape[-1] != n:
            raise SystemExit(f"{it['audio_filepath']}: {m.shape[-1]} mel frames but durations sum to {n}")
        out.append({"ids": torch.tensor(it["phoneme_ids"]), "mel": m, "dur": np.asarray(it["durations"]),
                    "text": it["text"]})
    return out


def collate(items: list[dict]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    n = max(len(i["ids"]) for i in items)
    t = max(i["mel"].shape[-1] for i in items)
    tok = torch.zeros(len(items), n, dtype=torch.long)
    mel = torch.full((len(items), items[0]["mel"].shape[0], t), float(np.log(1e-5)))
    for b, i in enumerate(items):
        tok[b, :len(i["ids"])] = i["ids"]
        mel[b, :, :i["mel"].shape[-1]] = i["mel"]
    return (tok, torch.tensor([len(i["ids"]) for i in items]), mel,
            torch.tensor([i["mel"].shape[-1] for i in items]))


def batch_loss(model: ConvAligner, items: list[dict]) -> torch.Tensor:
    """Forward-sum loss of a batch, with the beta-binomial prior (Badlani et al. §2.2)."""
    tok, tl, m, fl = collate(items)
    return forward_sum_loss(model(tok, tl, m, fl, batch_prior(tl, fl, tok.shape[1], m.shape[2])), tl, fl)


def speech_span(mel: torch.Tensor, floor_db: float = 40.0) -> tuple[int, int]:
    """First and one-past-last frame whose mel energy is within ``floor_db`` of the loudest frame."""
    e = 10 * torch.log10(torch.exp(2 * mel).sum(0) + 1e-12)  # (L,) power in dB (mel is ln magnitude)
    on = torch.nonzero(e >= e.max() - floor_db).flatten()
    return int(on[0]), int(on[-1]) + 1


def token_class(i: int) -> str:
    """Kind of a Piper id (the voice's phoneme_id_map): word space, punctuation, end, stress mark or phoneme."""
    return {3: "space", 2: "end", 120: "stress", 121: "stress"}.get(i, "punct" if 4 <= i <= 13 else "phoneme")


def evaluate(model: ConvAligner, items: list[dict], prior_scaling: float | None, shift_ms: float = 0.0) -> dict:
    """Boundary errors of the aligner (its onsets moved by ``-shift_ms``) and of the uniform baseline."""
    model.eval()
    errs: dict[str, list] = {k: [] for k in ("aligner", "uniform")}
    cls: list[np.ndarray] = []
    words: dict[str, list] = {k: [] for k in ("aligner", "uniform")}
    for i in items:
        tok, tl, mel, fl = collate([i])
        pred = model.align(tok, tl, mel, fl, prior_scaling=prior_scaling)[0].numpy()
        base = uniform_span_durations(len(i["ids"]), int(fl[0]), speech_span(i["mel"]))
        ids = i["ids"].numpy()
        keep = (ids != PAD) & (ids != BOS)
        cls.append(np.array([token_class(int(x)) for x in ids[keep]]))
        true_w = np.array(piper_words(ids.tolist(), i["dur"].tolist()))
        for name, d in (("aligner", pred), ("uniform", base)):
            assert d.sum() == i["dur"].sum()
            shift = shift_ms if name == "aligner" else 0.0
            errs[name].append(boundary_errors(d, i["dur"], keep, FRAME_MS) - shift)
            words[name].append(1000 * (np.array(piper_words(ids.tolist(), d.tolist())) - true_w) - shift)
    out = {}
    c = np.concatenate(cls)
    for name in errs:
        e, w = np.concatenate(errs[name]), np.concatenate(words[name])
        out[name] = {"token_onsets": summarize_boundary_errors(e),
                     "word_starts": summarize_boundary_errors(w[:, 0]),
                     "word_ends": summarize_boundary_errors(w[:, 1]),
                     "token_onsets_by_kind": {k: summarize_boundary_errors(e[c == k]) for k in sorted(set(c))}}
    return out


def train_aligner(model: ConvAligner, train: list[dict], held: dict, a: argparse.Namespace) -> tuple[list, float]:
    """Adam on the forward-sum loss over length-bucketed batches of the train split; returns (log, seconds)."""
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    order = sorted(range(len(train)), key=lambda k: train[k]["mel"].shape[-1])  # length buckets
    batches = [order[k:k + a.batch] for k in range(0, len(order), a.batch)]
    log, t0, step = [], time.time(), 0
    while step < a.steps:
        random.shuffle(batches)
        for bi in batches:
            if step >= a.steps:
                break
            model.train()
            loss = batch_loss(model, [train[k] for k in bi])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            if step % 100 == 0 or step == 1:
                model.eval()
                with torch.no_grad():
                    v = held.get("valid", [])
                    vl = float(np.mean([float(batch_loss(model, [i])) for i in v])) if v else float("nan")
                log.append({"step": step, "train_loss": round(float(loss.detach()), 4), "valid_loss": round(vl, 4),
                            "seconds": round(time.time() - t0, 1)})
                print(log[-1], flush=True)
    return log, time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="cache/piper_speech", help="a piper-speech build (train/valid/test.jsonl)")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--run", default="runs/aligner_piper", help="where the trained aligner is saved (safetensors)")
    ap.add_argument("--load", action="store_true", help="evaluate the aligner saved in --run instead of training")
    ap.add_argument("--out", default=str(ROOT / "recipes" / "tts" / "results_aligner_boundaries.json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    random.seed(a.seed)
    data = Path(a.data)
    mel = VocoderMel()
    t0 = time.time()
    train = load_split(data, "train", mel)
    held = {s: load_split(data, s, mel) for s in ("valid", "test") if (data / f"{s}.jsonl").exists()}
    overlap = {i["text"] for i in train} & {i["text"] for s in held.values() for i in s}
    assert not overlap, f"held-out sentences in train: {sorted(overlap)[:3]}"
    print(f"train {len(train)} utts, " + ", ".join(f"{k} {len(v)}" for k, v in held.items())
          + f" (loaded in {time.time() - t0:.0f} s)", flush=True)

    vocab = 1 + max(int(i["ids"].max()) for s in [train, *held.values()] for i in s)
    vocab = max(vocab, 256)
    model = ConvAligner(vocab)
    allmel = torch.cat([i["mel"] for i in train], dim=1)
    model.set_mel_stats(allmel.mean(1), allmel.std(1))
    run = Path(a.run)
    if a.load:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(run / "model.safetensors")))
        prev = json.loads(Path(a.out).read_text()) if Path(a.out).exists() else {}
        log, train_s = prev.get("log", []), prev.get("train_seconds", float("nan"))
        a.steps = prev.get("steps", a.steps)  # the run being evaluated
    else:
        log, train_s = train_aligner(model, train, held, a)
        run.mkdir(parents=True, exist_ok=True)
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(run / "model.safetensors"))
        (run / "config.json").write_text(json.dumps({"vocab_size": vocab}) + "\n")

    results = {}
    # a constant lag of the aligner's boundaries (about 3 frames late; docs/models/fastspeech2.md) can be
    # calibrated on the valid split and then checked on test: the median signed onset error on valid, in frames
    shift_ms = 0.0
    for split in [s for s in ("valid", "test") if s in held]:
        items = held[split]
        results[split] = {"utterances": len(items), "with_prior": evaluate(model, items, 1.0),
                          "without_prior": evaluate(model, items, None)}
        if split == "valid":
            med = float(np.median(np.concatenate([boundary_errors(
                model.align(*collate([i]), prior_scaling=1.0)[0].numpy(), i["dur"],
                (i["ids"].numpy() != PAD) & (i["ids"].numpy() != BOS), FRAME_MS) for i in items])))
            shift_ms = round(med / FRAME_MS) * FRAME_MS
        else:
            results[split]["shift_calibrated_on_valid"] = {"shift_ms": round(shift_ms, 2),
                                                           **evaluate(model, items, 1.0, shift_ms)}
        print(split, json.dumps(results[split]["with_prior"]["aligner"]["token_onsets"]), flush=True)

    doc = {"what": "forced-aligner boundary error vs the Piper voice's own durations", "data": str(data),
           "train_utterances": len(train), "steps": a.steps, "batch": a.batch, "lr": a.lr, "seed": a.seed,
           "threads": a.threads, "train_seconds": round(train_s, 1),
           "params": sum(p.numel() for p in model.parameters()), "frame_ms": round(FRAME_MS, 3),
           "scored": "onset of every Piper id except '_' pads and '^'; word starts/ends as recipes/asr/eval_align.py",
           "baseline": "ids spread evenly over the speech span (frames within 40 dB of the loudest)",
           "log": log, "results": results}
    Path(a.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
