"""Does self-supervised pretraining help? Leave-one-speaker-out (LOSO) spoken digits on FSDD's five speakers.

For an ``ssl`` encoder (a registry name, optionally initialised from a pretraining run's checkpoint folder), every
fold holds one speaker out (500 clips) and uses the other four (2,000 clips):

- linear probe: the mean over time of the last hidden state, standardised, into a logistic regression (C = 1);
- fine-tuning: encoder + a linear head on the time-mean of the last hidden state, AdamW, the same number of steps
  for every initialisation (``--epochs``), cross-entropy; accuracy on the held-out speaker after the last step.

The reference is a logistic regression on the log-mel mean and standard deviation of each clip (the issue's
baseline), over the same folds. Clips are resampled 8 -> 16 kHz and cut / zero-padded to ``--seconds``.

    python recipes/ssl/fsdd_loso.py --model ssast_tiny_patch --set depth=6 max_length=101 \\
        --init runs/ssast_mini_speech/last --epochs 2 --seeds 0 1 --out runs/loso_pretrained.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

import soundfile as sf
import torch
import torch.nn.functional as F
import yaml

import audiozoo
from audiozoo.dsp import resample
from audiozoo.errors import DataError
from audiozoo.hub import load_into

SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo")


def load_fsdd(seconds: float, sr: int = 16000) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """All 2,500 FSDD clips: waveforms ``(N, T)``, lengths, digits and speakers."""
    root = Path(os.environ.get("AUDIOZOO_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
    root = root / "fsdd"
    if not root.is_dir():
        raise DataError(f"FSDD not found at {root} (set AUDIOZOO_SHARED_DATA to the folder holding fsdd/)")
    n = round(seconds * sr)
    wavs, lengths, digits, speakers = [], [], [], []
    for path in sorted(root.glob("*.wav")):
        digit, speaker, _ = path.stem.split("_")
        wav, rate = sf.read(path, dtype="float32", always_2d=False)
        w = resample(torch.from_numpy(wav), rate, sr)[:n]
        lengths.append(w.shape[0])
        wavs.append(F.pad(w, (0, n - w.shape[0])))
        digits.append(int(digit))
        speakers.append(speaker)
    return torch.stack(wavs), torch.tensor(lengths), torch.tensor(digits), speakers


def build_encoder(name: str, overrides: dict, init: str | None, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)  # the random initialisation is part of the comparison: make it reproducible
    model = audiozoo.create_model(name, **overrides)
    if init:
        from safetensors.torch import load_file

        info = audiozoo.model_info(name)
        load_into(model, info.converter(load_file(str(Path(init) / "model.safetensors")), model)
                  if info.converter else load_file(str(Path(init) / "model.safetensors")))
    return model


def pooled(model, feats: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Time-mean of the last hidden state over the valid positions: ``(B, D)``."""
    h = model.extract_features(feats, frames, layers=[-1])[0]
    n = model.output_lengths(frames).clamp(max=h.shape[1]).to(h.dtype)
    return h.sum(1) / n[:, None]  # positions past the valid part are zero


def embed_all(model, feats, frames, batch: int = 64) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return torch.cat([pooled(model, feats[i:i + batch], frames[i:i + batch]) for i in range(0, len(feats), batch)])


def probe(x: torch.Tensor, y: torch.Tensor, speakers: list[str]) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    out = {}
    for s in SPEAKERS:
        test = torch.tensor([sp == s for sp in speakers])
        sc = StandardScaler().fit(x[~test].numpy())
        clf = LogisticRegression(C=1.0, max_iter=3000).fit(sc.transform(x[~test].numpy()), y[~test].numpy())
        out[s] = float(clf.score(sc.transform(x[test].numpy()), y[test].numpy()))
    return out


def step(loss: torch.Tensor, opt: torch.optim.Optimizer, sched, params: list, clip: float = 5.0) -> None:
    """One fine-tuning update: backward, gradient-norm clipping, optimiser and scheduler steps."""
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, clip)
    opt.step()
    sched.step()


def finetune(model, feats, frames, y, speakers, held_out: str, epochs: int, lr: float, seed: int,
             batch: int = 32) -> float:
    torch.manual_seed(seed)
    enc = copy.deepcopy(model).train()
    head = torch.nn.Linear(enc.embed_dim, 10)
    params = list(enc.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    test = torch.tensor([sp == held_out for sp in speakers])
    tr = (~test).nonzero().squeeze(1)
    steps = epochs * (len(tr) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    for _ in range(epochs):
        perm = tr[torch.randperm(len(tr))]
        for i in range(0, len(perm) - batch + 1, batch):
            idx = perm[i:i + batch]
            step(F.cross_entropy(head(pooled(enc, feats[idx], frames[idx])), y[idx]), opt, sched, params)
    enc.eval()
    with torch.no_grad():
        te = test.nonzero().squeeze(1)
        logits = torch.cat([head(pooled(enc, feats[j], frames[j])) for j in te.split(64)])
    return float((logits.argmax(-1) == y[te]).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ssast_tiny_patch")
    ap.add_argument("--set", nargs="*", default=[], help="config overrides key=value (YAML values)")
    ap.add_argument("--init", default=None, help="checkpoint folder of a pretraining run (model.safetensors)")
    ap.add_argument("--seconds", type=float, default=1.025)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seeds", type=int, nargs="*", default=[0])
    ap.add_argument("--no-finetune", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    overrides = {k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    t0 = time.time()
    wav, lengths, y, speakers = load_fsdd(args.seconds)
    model = build_encoder(args.model, overrides, args.init)
    with torch.no_grad():
        feats, frames = model.frontend(wav, lengths)
        # the baseline: log-mel mean and standard deviation over the valid frames
        valid = (torch.arange(feats.shape[-1])[None] < frames[:, None]).float()[:, None]
        mu = (feats * valid).sum(-1) / valid.sum(-1)
        sd = (((feats - mu[..., None]) ** 2 * valid).sum(-1) / valid.sum(-1)).sqrt()
    result = {"model": args.model, "overrides": overrides, "init": args.init, "seconds": args.seconds,
              "logmel_stats_probe": probe(torch.cat([mu, sd], 1), y, speakers)}
    result["linear_probe"] = probe(embed_all(model, feats, frames), y, speakers)
    print(json.dumps(result, indent=1), flush=True)
    if not args.no_finetune:
        result["finetune"] = {"epochs": args.epochs, "lr": args.lr, "seeds": args.seeds, "per_speaker": {}}
        for s in SPEAKERS:
            accs = [finetune(model, feats, frames, y, speakers, s, args.epochs, args.lr, seed) for seed in args.seeds]
            result["finetune"]["per_speaker"][s] = accs
            print(s, accs, f"{time.time() - t0:.0f}s", flush=True)
    for k in ("logmel_stats_probe", "linear_probe"):
        result[k]["mean"] = sum(result[k][s] for s in SPEAKERS) / len(SPEAKERS)
    if "finetune" in result:
        per = result["finetune"]["per_speaker"]
        means = [sum(per[s][i] for s in SPEAKERS) / len(SPEAKERS) for i in range(len(args.seeds))]
        result["finetune"]["mean_per_seed"] = means
    result["seconds_taken"] = round(time.time() - t0)
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
