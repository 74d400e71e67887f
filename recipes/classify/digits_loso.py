"""Spoken digits for an unseen speaker: FSDD leave-one-speaker-out (LOSO) training, baselines and a weight set.

Issue #13: ``ast_tiny.fsdd_digits`` (98.4 % on its own speakers' test takes) is weak on a speaker it never heard.
This recipe trains a small AST (``ast_tiny``: 4 layers x 128-d, mean pooling, 64 Kaldi mel bins, 16x16 patches with
stride 16 in frequency and 10 in time = 36 patches, 1.01 s inputs) with augmentation that imitates a new speaker
and a new room, optionally starting from a model trained on synthetic voices only:

- speed perturbation (resampling by 0.85-1.18: tempo, pitch and formants move together), a vocal-tract length warp
  of the mel axis (VTLP-like, 0.9-1.1), peak level uniform in -40..-1 dBFS (FSDD's speakers' median peaks lie
  between -30 dBFS, theo, and -6 dBFS), a random onset (<= 0.2 s), a room impulse response (``shared/data/rirs``,
  p = 0.2), background noise (``shared/data/noise``, 5-30 dB SNR over the window, p = 0.3), white noise at
  -70..-50 dB of full scale added before the level change,
  SpecAugment (2 x 8 bins, 2 x 8 frames), label smoothing 0.1, drop-path 0.1, AdamW + one-cycle (``--lr``);
- ``--synth N --pretrain-epochs E``: N synthetic digits (espeak-ng English accents x voice variants at random
  pitch / speed / amplitude, and flite's voices), rendered by this script into ``--cache`` (nothing committed);
  a model trained on them alone (no real speaker) initialises every fold and the final model, and is itself
  scored on each real speaker ("synthetic only").

Protocol (``--folds all``): fold k trains on the four other real speakers (2,000 clips) and is scored on all 500
clips of speaker k (first 1.025 s, zero-padded: the `tag` pipeline's single window; 99.3 % of FSDD clips are
shorter). Beside each fold: the issue's baseline, a logistic regression on the log-mel mean + std (the same
64-bin fbank). ``--curve N`` prints the held-out accuracy every N epochs (a learning curve; nothing is chosen
with it). ``--final DIR`` trains on takes 5-49 of all five speakers and scores takes 0-4 (the split on which
``ast_tiny.fsdd_digits`` has 98.4 %), then writes a weight-set folder. ``DIGITS_ARCH=tiny_transformer_mfcc``
swaps the model for a frame-token transformer on MFCCs (96-d, 3 layers).

Status (docs/models/ast_tiny.md, "Leave-one-speaker-out digits"): **0.90 is not reached**. Synthetic init + 30
epochs per fold (2 shared CPU cores, 9-14 min a fold): george / jackson / lucas / nicolas / theo = 38.8 / 59.4 /
56.8 / 62.2 / 68.8 %, mean 57.2 % (log-mel logistic regression 51.8 %); still rising at the last epoch.

    python recipes/classify/digits_loso.py --synth 3000 --pretrain-epochs 12 --folds all --epochs 30
    python recipes/classify/digits_loso.py --synth 3000 --pretrain-epochs 12 --epochs 30 --final runs/digits_loso/final
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import time
from pathlib import Path

import soundfile as sf
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

import audiozoo
from audiozoo.dsp import resample
from audiozoo.dsp.augment import SpecAugment, add_noise_snr, random_gain
from audiozoo.dsp.kaldi import kaldi_fbank
from audiozoo.errors import DataError
from audiozoo.hub import save_pretrained

SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SR = 16000
WINDOW = 16400  # 1.025 s = 101 Kaldi frames of 25 ms / 10 ms
ARCH = os.environ.get("DIGITS_ARCH", "ast_tiny")
MODEL = {"ast_tiny": dict(depth=4, embed_dim=128, num_heads=2, max_length=101, pooling="mean", n_mels=64, fstride=16,
                          drop_path_rate=0.1),
         "tiny_transformer_mfcc": dict(num_classes=10, hidden_size=96, num_layers=3, num_heads=4,
                                       intermediate_size=256, max_positions=104)}[ARCH]
ESPEAK_LANGS = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029",
                "en-us-nyc")
ESPEAK_VARIANTS = ("", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2",
                   "klatt3", "Andy", "Annie", "Alex", "Gene", "Lee", "Mr_Serious", "Steph", "Tweaky", "adam",
                   "anika", "david", "edward", "grandpa", "john", "linda", "max", "michel", "paul", "quincy",
                   "rob", "robert", "steph", "travis", "victor", "shelby", "norbert")
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")


def shared_data() -> Path:
    root = Path(os.environ.get("AUDIOZOO_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
    if not (root / "fsdd").is_dir():
        raise DataError(f"FSDD not found at {root / 'fsdd'} (set AUDIOZOO_SHARED_DATA to the folder holding fsdd/)")
    return root


def read16k(path: Path) -> torch.Tensor:
    wav, rate = sf.read(path, dtype="float32", always_2d=True)
    return resample(torch.from_numpy(wav.mean(1)), rate, SR)


def load_fsdd(root: Path) -> tuple[list[torch.Tensor], torch.Tensor, list[str]]:
    """All 2,500 FSDD clips (16 kHz, variable length), digit labels ``(N,)`` and speakers."""
    wavs, digits, speakers = [], [], []
    for path in sorted((root / "fsdd").glob("*.wav")):
        digit, speaker, _ = path.stem.split("_")
        wavs.append(read16k(path))
        digits.append(int(digit))
        speakers.append(speaker)
    return wavs, torch.tensor(digits), speakers


def _variants() -> set[str]:
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    return {line.split()[4].split("/")[-1] for line in out.splitlines()[1:] if len(line.split()) > 4}


def build_synth(out: Path, n: int, seed: int = 0) -> tuple[list[torch.Tensor], torch.Tensor]:
    """``n`` synthetic digit clips (balanced over digits; 1/6 flite, the rest espeak-ng voices with random
    pitch 20-80, speed 110-200 wpm, amplitude), rendered once into ``out`` (reused when already there)."""
    if shutil.which("espeak-ng") is None:
        raise DataError("--synth needs espeak-ng (apt-get install espeak-ng)")
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    known = _variants()
    variants = [v for v in ESPEAK_VARIANTS if not v or v in known]
    flite = shutil.which("flite") is not None
    wavs, labels = [], []
    for i in range(n):
        d = i % 10
        wav = out / f"{i:05d}_{d}.wav"
        if not wav.exists():
            if flite and rng.random() < 1 / 6:
                cmd = ["flite", "-voice", rng.choice(FLITE_VOICES), "--setf",
                       f"duration_stretch={rng.uniform(0.8, 1.3):.2f}", "-t", DIGITS[d], "-o", str(wav)]
            else:
                var = rng.choice(variants)
                voice = rng.choice(ESPEAK_LANGS) + (f"+{var}" if var else "")
                cmd = ["espeak-ng", "-v", voice, "-p", str(rng.randint(20, 80)), "-s", str(rng.randint(110, 200)),
                       "-a", str(rng.randint(80, 180)), "-w", str(wav), DIGITS[d]]
            subprocess.run(cmd, check=True, capture_output=True)
        w = read16k(wav)
        nz = (w.abs() > 1e-3).nonzero()  # trim the synthesiser's leading/trailing silence, keep 30 ms
        if len(nz):
            w = w[max(0, int(nz[0]) - 480): int(nz[-1]) + 480]
        wavs.append(w)
        labels.append(d)
    return wavs, torch.tensor(labels)


class Augment:
    """A batch of variable-length clips -> ``(B, WINDOW)`` waveforms with the perturbations of the docstring."""

    def __init__(self, root: Path, train: bool):
        self.train = train
        self.noises = [read16k(p) for p in sorted((root / "noise").glob("*.wav"))] if train else []
        self.rirs = []
        for p in sorted((root / "rirs").glob("*.wav")) if train else []:
            r = read16k(p)
            r = r[int(r.abs().argmax()):]  # direct path at t = 0 keeps the onset in place
            self.rirs.append(r / r.norm())

    def __call__(self, clips: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        out = torch.zeros(len(clips), WINDOW)
        lengths = torch.zeros(len(clips), dtype=torch.long)
        for i, w in enumerate(clips):
            if self.train:
                rate = math.exp(random.uniform(math.log(0.85), math.log(1.18)))
                w = F.interpolate(w[None, None], size=max(400, round(w.shape[0] / rate)), mode="linear",
                                  align_corners=False)[0, 0]
                if self.rirs and random.random() < 0.2:
                    r = random.choice(self.rirs)
                    n = w.shape[0] + r.shape[0] - 1
                    w = torch.fft.irfft(torch.fft.rfft(w, n) * torch.fft.rfft(r, n), n)[: w.shape[0]]
            w = w[:WINDOW]
            start = random.randint(0, min(WINDOW - w.shape[0], 3200)) if self.train else 0
            out[i, start:start + w.shape[0]] = w
            lengths[i] = start + w.shape[0]
        if self.train:
            out = out + 10 ** random.uniform(-3.5, -2.5) * torch.randn_like(out) * (out != 0).any(1, keepdim=True)
            # peak level uniform in -40..-1 dBFS: FSDD's speakers' median peaks lie between -30 (theo) and -6 dBFS
            out = random_gain(out / out.abs().amax(1, keepdim=True).clamp_min(1e-4), -40.0, -1.0)
            noisy = torch.rand(len(clips)) < 0.3
            if noisy.any() and self.noises:
                noise = random.choice(self.noises)
                snr = torch.empty(int(noisy.sum())).uniform_(5.0, 30.0)
                out[noisy] = add_noise_snr(out[noisy], noise[None], snr)
        return out, lengths


def vtlp(feats: torch.Tensor, lo: float = 0.9, hi: float = 1.1) -> torch.Tensor:
    """Warp the mel axis of ``(B, F, L)`` by a random factor per example (edge bins repeated)."""
    b, nf, _ = feats.shape
    alpha = torch.empty(b).uniform_(lo, hi)
    src = (torch.arange(nf)[None] / alpha[:, None]).clamp(max=nf - 1)  # output bin f reads bin f / alpha
    i0 = src.floor().long()
    i1 = (i0 + 1).clamp(max=nf - 1)
    frac = (src - i0)[..., None]
    g = lambda idx: feats.gather(1, idx[..., None].expand(-1, -1, feats.shape[2]))  # noqa: E731
    return g(i0) * (1 - frac) + g(i1) * frac


def fbank32(fe, wav: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's front end in float32 for training (~2x faster than its float64; features differ by ~1e-4)."""
    feats = kaldi_fbank(wav, SR, num_mel_bins=fe.n_mels, window_type=fe.window_type)
    return fe.finish(feats, torch.clamp(fe.num_frames(lengths), max=feats.shape[-1]))


def train(clips: list[torch.Tensor], labels: torch.Tensor, root: Path, epochs: int, seed: int,
          init: dict[str, torch.Tensor] | None = None, lr: float = 1e-3, batch: int = 32,
          log: str = "", monitor=None, every: int = 0) -> torch.nn.Module:
    """A fresh ``ast_tiny`` (or one starting from the state dict ``init``) trained on ``clips``, AdamW, one-cycle."""
    torch.manual_seed(seed)
    random.seed(seed)
    model = audiozoo.create_model(ARCH, **MODEL)
    if init is not None:
        model.load_state_dict(init)
    aug, spec = Augment(root, train=True), SpecAugment(2, 8, 2, 8)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps = epochs * (len(clips) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.08)
    model.train()
    t0, step = time.time(), 0
    for ep in range(epochs):
        perm = torch.randperm(len(clips))
        tot = 0.0
        for i in range(0, len(perm) - batch + 1, batch):
            idx = perm[i:i + batch].tolist()
            wav, lengths = aug([clips[j] for j in idx])
            with torch.no_grad():
                if ARCH == "ast_tiny":
                    feats, frames = fbank32(model.frontend, wav, lengths)
                    feats = vtlp(feats)
                else:
                    feats, frames = model.frontend(wav, lengths)
                feats = spec(feats, frames)
            loss = F.cross_entropy(model(feats, frames), labels[idx], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            sched.step()
            tot += float(loss.detach())
            step += 1
        print(f"{log} epoch {ep + 1}/{epochs} loss {tot / (len(perm) // batch):.3f} {time.time() - t0:.0f}s",
              flush=True)
        if monitor is not None and every and (ep + 1) % every == 0 and ep + 1 < epochs:
            # a learning curve on the held-out speaker, printed only: nothing is chosen with it
            print(f"{log} held-out accuracy after epoch {ep + 1}: {monitor(model):.3f}", flush=True)
            model.train()
    return model.eval()


@torch.no_grad()
def accuracy(model: torch.nn.Module, clips: list[torch.Tensor], labels: torch.Tensor) -> float:
    model.eval()
    aug = Augment(Path("."), train=False)
    preds = []
    for i in range(0, len(clips), 64):
        wav, lengths = aug(clips[i:i + 64])
        preds.append(model(*model.frontend(wav, lengths)).argmax(-1))
    return float((torch.cat(preds) == labels).float().mean())


def logmel_baseline(clips: list[torch.Tensor], labels: torch.Tensor, speakers: list[str]) -> dict[str, float]:
    """The issue's baseline: logistic regression (C = 1, standardised) on log-mel mean + std per fold."""
    fe = audiozoo.create_model("ast_tiny", n_mels=64, max_length=101).frontend  # AST's Kaldi fbank
    x = []
    for w in clips:
        f, _ = fe(w[None, :WINDOW], torch.tensor([min(WINDOW, w.shape[0])]))
        n = fe.num_frames(min(WINDOW, w.shape[0]))
        x.append(torch.cat([f[0, :, :n].mean(1), f[0, :, :n].std(1)]))
    return loso_probe(torch.stack(x), labels, speakers, C=1.0)


def loso_probe(x: torch.Tensor, labels: torch.Tensor, speakers: list[str], C: float) -> dict[str, float]:
    """Per held-out speaker: a logistic regression (L2, ``C``) on standardised clip features ``x (N, D)`` fitted
    on the other four speakers, its accuracy on the held-out one."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y = x.numpy(), labels.numpy()
    out = {}
    for s in SPEAKERS:
        te = torch.tensor([sp == s for sp in speakers]).numpy()
        sc = StandardScaler().fit(x[~te])
        clf = LogisticRegression(C=C, max_iter=3000).fit(sc.transform(x[~te]), y[~te])
        out[s] = float(clf.score(sc.transform(x[te]), y[te]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", default="", help="'all' or a comma list of held-out speakers")
    ap.add_argument("--final", default=None, help="train on all five speakers and save the weight set here")
    ap.add_argument("--synth", type=int, default=0, help="synthetic digit clips (pretraining set)")
    ap.add_argument("--pretrain-epochs", type=int, default=0, help="epochs on the synthetic clips alone, the "
                    "initialisation of every fold and of the final model (no real speaker involved)")
    ap.add_argument("--epochs", type=int, default=12, help="epochs on the real speakers")
    ap.add_argument("--lr", type=float, default=2e-3, help="peak learning rate on the real speakers (synthetic "
                    "pretraining: 1e-3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--curve", type=int, default=0, help="print the held-out speaker's accuracy every N epochs")
    ap.add_argument("--cache", default="cache/digits_synth")
    ap.add_argument("--work", default="runs/digits_loso", help="folder for the pretrained state and the JSON")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    t0 = time.time()
    root, work = shared_data(), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    clips, labels, speakers = load_fsdd(root)
    syn_clips, syn_labels = build_synth(Path(args.cache), args.synth, args.seed) if args.synth else ([], None)
    print(f"{len(clips)} FSDD clips, {len(syn_clips)} synthetic, {time.time() - t0:.0f}s", flush=True)
    result: dict = {"model": MODEL, "args": vars(args)}
    tag = f"synth{args.synth}_e{args.pretrain_epochs}-{args.epochs}_s{args.seed}"
    out = work / f"{'final+' if args.final else ''}loso-{args.folds.replace(',', '+') or 'none'}_{tag}.json"

    def dump() -> None:  # after every stage, so a stopped run keeps what it measured
        out.write_text(json.dumps(result, indent=1))
    init = None
    if args.synth and args.pretrain_epochs:
        pre = work / f"synth{args.synth}_e{args.pretrain_epochs}_s{args.seed}.safetensors"
        if pre.exists():
            init = load_file(str(pre))
        else:
            model = train(syn_clips, syn_labels, root, args.pretrain_epochs, args.seed, log="[synth]")
            init = {k: v.contiguous() for k, v in model.state_dict().items()}
            save_file(init, str(pre))
        model = audiozoo.create_model(ARCH, **MODEL)
        model.load_state_dict(init)
        result["synth_only"] = {s: accuracy(model, [c for c, sp in zip(clips, speakers) if sp == s],
                                            labels[[i for i, sp in enumerate(speakers) if sp == s]])
                                for s in SPEAKERS}
        print("synthetic only:", result["synth_only"], f"{time.time() - t0:.0f}s", flush=True)
    if args.final:
        takes = [int(p.stem.split("_")[2]) for p in sorted((root / "fsdd").glob("*.wav"))]
        tr = [i for i, t in enumerate(takes) if t >= 5]
        te = [i for i, t in enumerate(takes) if t < 5]
        model = train([clips[i] for i in tr], labels[tr], root, args.epochs, args.seed, init, args.lr, log="[final]")
        if hasattr(model.config, "drop_path_rate"):
            model.config.drop_path_rate = 0.0
        result["final_test_takes_accuracy"] = accuracy(model, [clips[i] for i in te], labels[te])
        print("final, FSDD test takes 0-4:", result["final_test_takes_accuracy"], flush=True)
        dump()
        save_pretrained(model, args.final, metadata={"recipe": "recipes/classify/digits_loso.py", "args": vars(args),
                                                     "labels": list(range(10)), "weights": "raw",
                                                     "metrics": {"fsdd_test_takes_accuracy":
                                                                 result["final_test_takes_accuracy"]}})
    folds = list(SPEAKERS) if args.folds == "all" else [s for s in args.folds.split(",") if s]
    if folds:
        result["logmel_logreg"] = logmel_baseline(clips, labels, speakers)
        result["loso"] = {}
        for s in folds:
            tr = [i for i, sp in enumerate(speakers) if sp != s]
            te = [i for i, sp in enumerate(speakers) if sp == s]
            model = train([clips[i] for i in tr], labels[tr], root, args.epochs, args.seed, init, args.lr, log=f"[{s}]",
                          monitor=lambda m, te=te: accuracy(m, [clips[i] for i in te], labels[te]), every=args.curve)
            result["loso"][s] = accuracy(model, [clips[i] for i in te], labels[te])
            print(s, result["loso"][s], "logreg", result["logmel_logreg"][s], f"{time.time() - t0:.0f}s", flush=True)
            dump()
        result["loso"]["mean"] = sum(result["loso"][s] for s in folds) / len(folds)  # over the folds run
        for k in ("logmel_logreg", "synth_only"):  # over all five speakers
            if k in result:
                result[k]["mean"] = sum(result[k][s] for s in SPEAKERS) / len(SPEAKERS)
    result["seconds"] = round(time.time() - t0)
    print(json.dumps(result, indent=1))
    dump()


if __name__ == "__main__":
    main()
