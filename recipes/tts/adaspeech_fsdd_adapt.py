"""How cheap AdaSpeech's adaptation is: fit one real FSDD speaker updating only the CLN linears + a speaker row.

A measurement of the adaptation mechanism (paper Section 2.4), not a voice: ``adaspeech_small`` starts from random
weights (no source model is trained here), a new speaker row is added (:meth:`AdaSpeech.add_speaker`), and
Adam fits the teacher-forced mel L1 on 20 utterances of one FSDD speaker (digits 0-9, takes 5 and 6) with

* ``cln``: the paper's adaptation (:meth:`AdaSpeech.freeze_for_adaptation`: decoder CLN linears + speaker row),
* ``spk``: the paper's "Baseline (spk emb)": the speaker row alone,

and reports the mel L1 on those 20 and on 10 held-out utterances of the same speaker (takes 0, digits 0-9) before
and after. Crude inputs, stated: the tokens are the espeak-ng ``en-us`` phonemes of the digit's word framed by a
silence token, the durations split each clip's frames uniformly over its tokens (FSDD has no alignment), pitch and
energy inputs are 0 (the corpus mean); audio is FSDD's 8 kHz resampled to 22.05 kHz (HiFi-GAN's mel).

    OMP_NUM_THREADS=1 python recipes/tts/adaspeech_fsdd_adapt.py --speaker george --steps 200
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

import audiozoo
from audiozoo.dsp.io import load_audio
from audiozoo.text.phonemes import phonemize
from audiozoo.train.losses.tts import masked_mel_loss

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def build(root: Path, speaker: str, takes: list[int], model, vocab: dict[str, int]) -> dict[str, torch.Tensor]:
    """Padded tokens, uniform durations, mels and lengths of the clips ``{digit}_{speaker}_{take}.wav``."""
    mel_fn = model.mel_extractor()
    phones = phonemize(WORDS, stress=False, punctuation=False)
    items = []
    for take in takes:
        for digit, word_ph in enumerate(phones):
            wav = load_audio(root / f"{digit}_{speaker}_{take}.wav", sample_rate=model.sample_rate)[0]
            wav = wav.reshape(-1)
            mel = mel_fn(wav[None])[0][0]
            ids = [0] + [vocab.setdefault(p, len(vocab) + 1) for p in word_ph if p.strip()] + [0]
            f = mel.shape[-1]
            base = [f // len(ids)] * len(ids)
            for i in range(f - sum(base)):
                base[i % len(ids)] += 1
            items.append((ids, base, mel))
    n, big = max(len(i[0]) for i in items), max(i[2].shape[-1] for i in items)
    b = len(items)
    tokens, durs = torch.zeros(b, n, dtype=torch.long), torch.zeros(b, n, dtype=torch.long)
    mels = torch.full((b, model.n_mels, big), math.log(1e-5))
    for k, (ids, d, mel) in enumerate(items):
        tokens[k, :len(ids)], durs[k, :len(d)], mels[k, :, :mel.shape[-1]] = torch.tensor(ids), torch.tensor(d), mel
    return {"tokens": tokens, "lengths": torch.tensor([len(i[0]) for i in items]), "durations": durs, "mel": mels,
            "mel_lengths": durs.sum(1)}


def mel_l1(model, batch, speaker: int) -> torch.Tensor:
    b, big = batch["mel"].shape[0], batch["mel"].shape[-1]
    out = model(batch["tokens"], batch["lengths"], durations=batch["durations"], pitch=torch.zeros(b, big),
                energy=torch.zeros(b, big), speaker=torch.full((b,), speaker), mel=batch["mel"],
                mel_lengths=batch["mel_lengths"], max_frames=big)
    return masked_mel_loss(out.mel, batch["mel"], batch["mel_lengths"])


def anchor(train, test) -> dict[str, float]:
    """Mel L1 of the best constant: each bin's median over the 20 utterances' frames (no text, no time)."""
    frames = torch.cat([train["mel"][i, :, :int(n)] for i, n in enumerate(train["mel_lengths"])], 1)
    med = frames.median(1).values
    out = {}
    for name, b in (("train", train), ("held_out", test)):
        const = med[None, :, None].expand_as(b["mel"]).clone()
        out[name] = masked_mel_loss(const, b["mel"], b["mel_lengths"]).item()
    return out


def run(mode: str, args, train, test) -> dict:
    torch.manual_seed(args.seed)
    model = audiozoo.create_model("adaspeech_small").eval()  # eval: dropout off, the fit is deterministic
    sid = model.add_speaker()
    names = model.freeze_for_adaptation() if mode == "cln" else ["speaker_embed.weight"]
    for n, p in model.named_parameters():
        p.requires_grad_(n in names)
    params = [p for p in model.parameters() if p.requires_grad]
    per_voice = model.adaptation_size()["fine_tuned"] if mode == "cln" else model.speaker_embed.embedding_dim
    opt = torch.optim.Adam(params, lr=args.lr)
    with torch.no_grad():
        start = {"train": mel_l1(model, train, sid).item(), "held_out": mel_l1(model, test, sid).item()}
    t0, curve = time.perf_counter(), []
    for step in range(args.steps):
        loss = mel_l1(model, train, sid)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 25 == 0:
            curve.append([step, round(loss.item(), 4)])
    wall = time.perf_counter() - t0
    with torch.no_grad():
        end = {"train": mel_l1(model, train, sid).item(), "held_out": mel_l1(model, test, sid).item()}
    return {"mode": mode, "adapted_params_per_voice": per_voice, "start": start, "end": end, "curve": curve,
            "seconds": round(wall, 1), "steps": args.steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default="../shared/data/fsdd")
    ap.add_argument("--speaker", default="george")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    probe = audiozoo.create_model("adaspeech_small")
    vocab: dict[str, int] = {}
    train = build(Path(args.root), args.speaker, [5, 6], probe, vocab)
    test = build(Path(args.root), args.speaker, [0], probe, vocab)
    results = {"speaker": args.speaker, "train_items": len(train["tokens"]), "held_out_items": len(test["tokens"]),
               "anchor_per_bin_median": anchor(train, test),
               "runs": [run(m, args, train, test) for m in ("cln", "spk")]}
    print(json.dumps(results, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
