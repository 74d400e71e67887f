"""Spoken digits for an unseen speaker (issue #13): a small PANNs CNN on trimmed, floored, CMVN log-mels.

Protocol (as ``digits_loso.py``): fold k trains on the four other FSDD speakers (2,000 clips) and is scored on
all 500 clips of speaker k (whole clips, through the model's own front end, one at a time as ``audiozoo tag``
feeds them); the figure is the mean over the 5 folds. No label, score or checkpoint choice of the held-out
speaker is used in its fold (docs/models/panns_cnn14.md says which settings were compared on which fold).
``--final DIR`` trains on all five speakers (2,500 clips) and writes the weight set; ``--final-takes`` trains
on takes 5-49 of all five speakers and scores takes 0-4 (the split of ``ast_tiny.fsdd_digits``, 98.4 %);
``--baselines`` prints logistic-regression baselines per fold.

Model (``model_kwargs``): ``panns_cnn14`` with 3 ConvBlocks (``--channels`` 16 32 64; 76,906 parameters), 16 kHz,
40 Slaney mels over 50-4,000 Hz (FSDD is 8 kHz audio), n_fft 512, ``--hop`` 320 (20 ms), and the per-utterance
front-end options of ``audiozoo.dsp.DecibelMelFrontend``: ``trim_db`` 45 (leading/trailing frames more than
45 dB below the loudest dropped), ``floor_db`` 50 (values raised to at least the clip's peak - 50 dB),
``cmvn="mean_var"`` (each mel bin normalised over the clip: removes microphone response and level). PANNs'
max + mean pooling over time makes the word's position in the window irrelevant.

Training, on the dB log-mel computed once per clip: tempo perturbation (frame axis resampled x 0.8-1.25), a
vocal-tract-length warp of the mel axis (0.88-1.12), optional background noise in the power domain
(``--noise-p``, 5-30 dB SNR, ``shared/data/noise``; default off), then the front end's own ``finish`` (trim,
floor, CMVN: identical to test time), SpecAugment (2 x <= 5 bins, 2 x <= 10 % of frames, set to the normalised
mean 0), label smoothing 0.1, AdamW (lr 2e-3, weight decay 0.01), one-cycle, batch 32, ``--epochs`` 20, seed 0.
``--synth N`` adds N synthetic digits (espeak-ng / flite, ``digits_loso.build_synth``) and ``--piper-voices V
--piper-takes T`` adds V x 10 x T digits of Piper + WORLD pseudo-speakers (``digits_piper.build_piper_synth``: the
natural Piper VITS voice re-synthesised by WORLD with F0 x 0.6-1.8, intonation range x 0.5-1.5, vocal-tract warp
0.86-1.18, random VITS length / noise scales, through 8 kHz) to every fold's training set (and to ``--final``'s);
the shipped weights use ``--segments 3 --synth 1000 --piper-voices 50 --piper-takes 2 --reverb-p 0.5 --noise-p
0.3 --crop-p 0.5 --crop-max 0.25`` (``--segments``: max + mean pooling over each third of the clip, panns
``time_segments``; 4,000 training clips a fold; ``--reverb-p``: mel-power-domain reverberation, ``reverb_kernel``:
the shared RIRs or synthetic exponential tails; ``--crop-p``: words cut at onset / coda; all off by default).

Results (2 CPU cores shared with 1-2 other jobs, 1 thread), accuracy on the held-out speaker:

    george / jackson / lucas / nicolas / theo / mean
    72.8 / 81.8 / 70.8 / 69.8 / 85.6 / 76.2 %   --synth 1000 --piper-voices 50 --piper-takes 2 (shipped before;
                                                  a fold 8-9 min, 5 folds 46 min)
    71.2 / 81.2 / 81.8 / 69.6 / 91.0 / 79.0 %   same + --reverb-p 0.5 --noise-p 0.3 (a fold 10-11 min)
    77.6 / 82.4 / 81.0 / 75.2 / 89.6 / 81.2 %   same + --segments 3 (shipped in stop 24)
    81.4 / 81.8 / 81.0 / 78.0 / 88.8 / 82.2 %   same + --crop-p 0.5 --crop-max 0.25 -> panns_cnn14.fsdd_digits_loso
    75.8 / 83.2 / 78.2 / 72.6 / 87.2 / 79.4 %   the same with --seed 1 (two-seed mean 80.8 %); paired in the same
                                                  runs: --tta 79.1 %, --ema 0.998 78.6 %, both 78.3 %
    73.2 / 77.2 / 69.4 / 69.6 / 82.2 / 74.3 %   --synth 1000                   (the weights shipped before)
    67.8 / 74.8 / 62.6 / 64.2 / 80.2 / 69.9 %   this recipe's defaults (no synthetic digits)
    63.6 / 76.8 / 44.4 / 64.8 / 80.2 / 66.0 %   --trim-db 0 --floor-db 0
    38.8 / 59.4 / 56.8 / 62.2 / 68.8 / 57.2 %   ast_tiny (digits_loso.py), the best before
    39.4 / 68.4 / 48.0 / 39.2 / 64.0 / 51.8 %   log-mel mean + std logistic regression (digits_loso.py)
    57.6 / 84.0 / 63.2 / 44.8 / 67.8 / 63.5 %   --baselines: thirds mean + std of this front end's dB log-mel
    51.6 / 68.4 / 38.6 / 37.0 / 75.6 / 54.2 %   --baselines: the same after per-clip CMVN

``--final-takes`` (seen speakers, measured for ``--synth 1000`` only): 91.6 % on takes 0-4
(``ast_tiny.fsdd_digits``: 98.4 %).

Tried on the two hardest folds and dropped (nicolas / george): ``--festival-voices 30 --revoice 2 --epochs 10``
(festival + WORLD pseudo-speakers, ``digits_piper.build_festival_synth``, and WORLD re-voicings of the real training
speakers, ``digits_piper.revoice_fsdd``) 73.4 / 75.4; ``--tempo 0.67 1.5`` 73.8 / 74.8; ``--channels 32 64 128``
76.4 / -. ``--crop-p P --crop-max F`` (``crop_ends``): with probability P, cut a random 0-F of the (trimmed) word
at its start and, independently, at its end — nicolas's recordings start and stop inside the word.

``--ensemble`` (mean softmax of saved fold models, seeds 0 + 1): george 78.2, nicolas 77.6 — about the mean of its
members, not above the better one.

**0.90 is not reached** (80.8 % over two seeds). Full table, partial runs and what was not tried:
docs/models/panns_cnn14.md.

    python recipes/classify/digits_loso_cnn.py --folds all --segments 3 --synth 1000 --piper-voices 50 \
        --piper-takes 2 --reverb-p 0.5 --noise-p 0.3 --crop-p 0.5 --crop-max 0.25
    python recipes/classify/digits_loso_cnn.py --segments 3 --synth 1000 --piper-voices 50 --piper-takes 2 \
        --reverb-p 0.5 --noise-p 0.3 --crop-p 0.5 --crop-max 0.25 \
        --final src/audiozoo/checkpoints/panns_cnn14.fsdd_digits_loso \
        --loso-json runs/digits_loso_cnn/loso-all_<tag>.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from digits_loso import SPEAKERS, build_synth, load_fsdd, loso_probe, read16k, shared_data
from digits_piper import build_festival_synth, build_piper_synth, revoice_fsdd
from safetensors.torch import load_file, save_file

import audiozoo
from audiozoo.dsp.features import trim_quiet_frames, utterance_cmvn
from audiozoo.hub import save_pretrained


def model_kwargs(args: argparse.Namespace) -> dict:
    """The ``panns_cnn14`` overrides of the digits model."""
    return dict(num_classes=10, sample_rate=16000, n_fft=512, hop_length=args.hop, n_mels=args.n_mels, f_min=50.0,
                f_max=4000.0, channels=tuple(args.channels), dropout=0.1, head_dropout=0.3, cmvn="mean_var",
                floor_db=args.floor_db or None, trim_db=args.trim_db or None, time_segments=args.segments)


def db_features(model: torch.nn.Module, clips: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each clip's log-mel in dB ``(n_mels, L_i)``: the model's front end without its per-utterance steps."""
    fe = model.frontend
    saved = fe.cmvn, fe.floor_db, fe.trim_db
    fe.cmvn, fe.floor_db, fe.trim_db = "none", None, None
    try:
        with torch.no_grad():
            return [fe(w[None])[0][0] for w in clips]
    finally:
        fe.cmvn, fe.floor_db, fe.trim_db = saved


def noise_mels(model: torch.nn.Module, root: Path) -> list[torch.Tensor]:
    """Mel power spectrograms ``(n_mels, L)`` of the shared noise recordings (unit mean power)."""
    out = []
    for p in sorted((root / "noise").glob("*.wav")):
        w = read16k(p)[: 16000 * 30]
        with torch.no_grad():
            db = db_features(model, [w / w.abs().max().clamp_min(1e-4)])[0]
        pw = 10 ** (db / 10)
        out.append(pw / pw.mean())
    return out


def rir_mels(model: torch.nn.Module, root: Path) -> list[torch.Tensor]:
    """Mel power "impulse responses" ``(n_mels, K)`` of the shared room impulse responses: each RIR's mel power
    frames from its direct-path peak on, each band scaled so its first frame is 1."""
    out = []
    for p in sorted((root / "rirs").glob("*.wav")):
        w = read16k(p)
        w = w[max(0, int(w.abs().argmax()) - 80):]
        with torch.no_grad():
            pw = 10 ** (db_features(model, [w / w.abs().max()])[0] / 10)
        keep = int((pw.sum(0) > pw.sum(0).max() * 1e-4).nonzero().max()) + 1
        out.append(pw[:, :keep] / pw[:, :1].clamp_min(1e-12))
    return out


def reverb_kernel(nf: int, hop_s: float, rirs: list[torch.Tensor]) -> torch.Tensor:
    """A mel power impulse response ``(F, K)``: half the time one of ``rirs``, else a synthetic exponential tail
    (RT60 0.15-0.9 s, shorter at high bands; direct-to-reverberant ratio 0-15 dB; Polack's statistical model
    of late reverberation, in the power domain)."""
    if rirs and random.random() < 0.5:
        return random.choice(rirs)
    rt60 = random.uniform(0.15, 0.9) * (1.2 - 0.5 * torch.arange(nf) / nf)[:, None]
    k = torch.arange(1, max(2, round(1.2 * float(rt60.max()) / hop_s)) + 1)[None]
    tail = torch.exp(-13.8 * k * hop_s / rt60)
    tail = tail / tail.sum(1, keepdim=True) * 10 ** (-random.uniform(0.0, 15.0) / 10)
    return torch.cat([torch.ones(nf, 1), tail], 1)


def crop_ends(db: torch.Tensor, max_frac: float, top_db: float = 45.0) -> torch.Tensor:
    """Cut a clip's dB log-mel ``(F, L)`` into its word: after trimming frames more than ``top_db`` below the
    loudest, drop a random fraction (uniform 0-``max_frac``) of the remaining frames at the start and,
    independently, at the end -> ``(F, L')`` (kept whole when fewer than 4 frames would remain). Simulates
    recordings whose end-pointing clipped the onset / coda of the word."""
    x, n = trim_quiet_frames(db[None], torch.tensor([db.shape[1]]), top_db)
    n = int(n[0])
    a, b = int(random.uniform(0, max_frac) * n), int(random.uniform(0, max_frac) * n)
    return db if n - a - b < 4 else x[0, :, a:n - b]


def stretch(x: torch.Tensor, rate: float) -> torch.Tensor:
    """Tempo perturbation of a log-mel ``(F, L)``: the frame axis linearly resampled to ``round(L * rate)``
    (at least 4) frames."""
    return F.interpolate(x[None], size=max(4, round(x.shape[1] * rate)), mode="linear", align_corners=False)[0]


def warp_mel(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """VTLP-like warp of a log-mel ``(F, L)`` (Jaitly & Hinton 2013): output bin f reads bin f / alpha
    (linear interpolation, clamped at the top bin)."""
    nf = x.shape[0]
    src = (torch.arange(nf) / alpha).clamp(max=nf - 1)
    i0 = src.floor().long()
    i1 = (i0 + 1).clamp(max=nf - 1)
    frac = (src - i0)[:, None]
    return x[i0] * (1 - frac) + x[i1] * frac


def augment(fe: torch.nn.Module, db: torch.Tensor, noises: list[torch.Tensor], noise_p: float,
            rirs: list[torch.Tensor] | None = None, reverb_p: float = 0.0,
            tempo: tuple[float, float] = (0.8, 1.25), crop_p: float = 0.0, crop_max: float = 0.25) -> torch.Tensor:
    """One clip's dB log-mel ``(F, L)`` -> perturbed, then through the front end's per-utterance steps
    (``fe.finish``: floor, trim, CMVN, exactly as at test time) -> ``(F, L')`` (module docstring). ``tempo``:
    the range of the frame-count factor (log-uniform; < 1 = faster speech); with probability ``crop_p`` the
    word's ends are cut first (:func:`crop_ends`, up to ``crop_max`` of it at each end)."""
    if crop_p and random.random() < crop_p:
        db = crop_ends(db, crop_max, fe.trim_db or 45.0)
    nf = db.shape[0]
    x = warp_mel(stretch(db, math.exp(random.uniform(math.log(tempo[0]), math.log(tempo[1])))),
                 random.uniform(0.88, 1.12))
    n2 = x.shape[1]
    if reverb_p and random.random() < reverb_p:
        # reverberation as a per-band convolution of mel power frames (cross-frame phase terms neglected)
        h = reverb_kernel(nf, fe.hop_length / fe.sample_rate, rirs or [])
        pw = F.conv1d(F.pad(10 ** (x / 10), (h.shape[1] - 1, h.shape[1] - 1))[None], h.flip(1)[:, None],
                      groups=nf)[0]
        x = 10 * torch.log10(pw.clamp_min(1e-10))
        n2 = x.shape[1]
    if noises and random.random() < noise_p:
        noise = random.choice(noises)
        start = random.randint(0, max(0, noise.shape[1] - n2))
        seg = noise[:, start:start + n2]
        seg = F.pad(seg, (0, n2 - seg.shape[1]))
        sig = 10 ** (x / 10)
        snr = random.uniform(5.0, 30.0)
        x = 10 * torch.log10(sig + seg * sig.mean() / seg.mean().clamp_min(1e-12) * 10 ** (-snr / 10))
    x, n = fe.finish(x[None], torch.tensor([n2]))
    n2 = max(1, int(n[0]))
    x = x[0, :, :n2].clone()
    for _ in range(2):  # SpecAugment (Park et al. 2019), masks at the normalised mean 0
        w = random.randint(0, 5)
        s = random.randint(0, nf - w)
        x[s:s + w] = 0
        w = random.randint(0, max(1, n2 // 10))
        s = random.randint(0, n2 - w)
        x[:, s:s + w] = 0
    return x


def thirds_baseline(db: list[torch.Tensor], labels: torch.Tensor, speakers: list[str], cmvn: bool) -> dict:
    """A linear baseline per fold: logistic regression (C = 0.1, standardised, set before any fold) on each
    mel bin's mean over the first / middle / last third of the clip plus its standard deviation (4 x 40
    numbers), of the dB log-mel (``cmvn=False``) or of its per-clip CMVN (``cmvn=True``)."""
    x = []
    for f in db:
        f = utterance_cmvn(f[None], torch.tensor([f.shape[1]]))[0] if cmvn else f
        n = f.shape[1]
        cuts = [round(i * n / 3) for i in range(4)]
        parts = [f[:, cuts[i]:max(cuts[i + 1], cuts[i] + 1)].mean(1) for i in range(3)]
        x.append(torch.cat(parts + [f.std(1, unbiased=False)]))
    out = loso_probe(torch.stack(x), labels, speakers, C=0.1)
    out["mean"] = sum(out.values()) / len(SPEAKERS)
    return out


def fold_training_set(keep: list[int], db: list[torch.Tensor], labels: torch.Tensor, syn_db: list[torch.Tensor],
                      syn_labels: torch.Tensor, rv_db: list[torch.Tensor], rv_src: list[int]
                      ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The real clips ``keep`` (indices into ``db`` / ``labels``), every synthetic clip, and the re-voicings
    ``rv_db`` whose source clip ``rv_src[j]`` is in ``keep`` — so a fold never trains on a re-voicing of its
    held-out speaker, nor ``--final-takes`` on one of a test take. Returns features and labels ``(N,)``."""
    keep_set = set(keep)
    rv = [j for j, i in enumerate(rv_src) if i in keep_set]
    return ([db[i] for i in keep] + syn_db + [rv_db[j] for j in rv],
            torch.cat([labels[keep], syn_labels, labels[[rv_src[j] for j in rv]].reshape(-1)]))


def batch_of(feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad ``(F, L_i)`` items into ``(B, F, max L)`` and their lengths ``(B,)``."""
    out = torch.zeros(len(feats), feats[0].shape[0], max(f.shape[1] for f in feats))
    for i, f in enumerate(feats):
        out[i, :, : f.shape[1]] = f
    return out, torch.tensor([f.shape[1] for f in feats])


@torch.no_grad()
def predict(model: torch.nn.Module, clips: list[torch.Tensor]) -> torch.Tensor:
    """Top-1 digit ``(N,)`` through the model's own front end (CMVN included), one clip at a time as ``tag``."""
    model.eval()
    return torch.tensor([int(model(*model.frontend(w[None])).argmax(-1)) for w in clips])


def accuracy(model: torch.nn.Module, clips: list[torch.Tensor], labels: torch.Tensor) -> float:
    return float((predict(model, clips) == labels).float().mean())


# test-time augmentation grid: tempo (frame-count factor) x vocal-tract warp, fixed before any fold ran
TTA_TEMPO = (0.9, 1.0, 1.1)
TTA_WARP = (0.94, 1.0, 1.06)


@torch.no_grad()
def predict_tta(model: torch.nn.Module, db: list[torch.Tensor]) -> torch.Tensor:
    """Top-1 digit ``(N,)`` from the mean softmax over the :data:`TTA_TEMPO` x :data:`TTA_WARP` versions of each
    clip's dB log-mel ``db[i] (F, L)`` (the training augmentation's deterministic counterpart), each through the
    front end's ``finish`` (trim, floor, CMVN) as at test time."""
    model.eval()
    fe, out = model.frontend, []
    for x0 in db:
        prob = 0.0
        for rate in TTA_TEMPO:
            x1 = stretch(x0, rate)
            for alpha in TTA_WARP:
                x, m = fe.finish(warp_mel(x1, alpha)[None], torch.tensor([x1.shape[1]]))
                prob = prob + model(x[:, :, : int(m[0])], m).softmax(-1)
        out.append(int(prob.argmax(-1)))
    return torch.tensor(out)


def train(args: argparse.Namespace, db: list[torch.Tensor], labels: torch.Tensor, noises: list[torch.Tensor],
          log: str, monitor=None, rirs: list[torch.Tensor] | None = None) -> dict[str, torch.nn.Module]:
    """A fresh digits CNN trained on the dB log-mels ``db`` with the module docstring's recipe: ``{"raw": the
    last weights}``, plus ``"ema"`` (an exponential moving average of the weights and BatchNorm statistics,
    decay ``args.ema`` per step) when ``args.ema`` is set."""
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    model = audiozoo.create_model("panns_cnn14", **model_kwargs(args))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    per_epoch = len(db) // args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * per_epoch,
                                                pct_start=0.1)
    ema = (torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(args.ema), use_buffers=True)
        if args.ema else None)
    t0 = time.time()
    for ep in range(args.epochs):
        model.train()
        perm = torch.randperm(len(db)).tolist()
        tot = 0.0
        for b in range(per_epoch):
            idx = perm[b * args.batch:(b + 1) * args.batch]
            x, n = batch_of([augment(model.frontend, db[i], noises, args.noise_p, rirs, args.reverb_p,
                                     tuple(args.tempo), args.crop_p, args.crop_max) for i in idx])
            loss = F.cross_entropy(model(x, n), labels[idx], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            tot += float(loss.detach())
        msg = f"{log} epoch {ep + 1}/{args.epochs} loss {tot / per_epoch:.3f} {time.time() - t0:.0f}s"
        if monitor is not None and args.curve and (ep + 1) % args.curve == 0 and ep + 1 < args.epochs:
            msg += f" held-out {monitor(model):.3f}"  # a learning curve, printed only: nothing is chosen with it
        print(msg, flush=True)
    out = {"raw": model.eval()}
    if ema is not None:
        out["ema"] = ema.module.eval()
    return out


class MeanSoftmax(torch.nn.Module):
    """An ensemble of digit models scored as one: ``forward`` returns the log of their mean softmax ``(B, 10)``;
    ``frontend`` is the first model's (the members share the front-end settings)."""

    def __init__(self, members: list[torch.nn.Module]):
        super().__init__()
        self.members = torch.nn.ModuleList(members)
        self.frontend = members[0].frontend

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x, lengths).softmax(-1) for m in self.members]).mean(0).log()


def load_fold_models(args: argparse.Namespace, speaker: str) -> MeanSoftmax:
    """The ``--ensemble`` weight files for the fold of ``speaker`` (each trained without that speaker, as the
    ``--save-folds`` files of its fold are)."""
    out = []
    for pattern in [p for p in args.ensemble.split(",") if p]:
        m = audiozoo.create_model("panns_cnn14", **model_kwargs(args))
        m.load_state_dict(load_file(pattern.replace("{speaker}", speaker)))
        out.append(m.eval())
    return MeanSoftmax(out).eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", default="", help="'all' or a comma list of held-out speakers")
    ap.add_argument("--final", default=None, help="train on all five speakers and save the weight set here")
    ap.add_argument("--final-takes", action="store_true", help="train on takes 5-49 of all speakers, score 0-4")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--hop", type=int, default=320, help="front-end hop in samples at 16 kHz (320 = 20 ms)")
    ap.add_argument("--n-mels", type=int, default=40)
    ap.add_argument("--segments", type=int, default=1, help="pool max + mean over this many equal parts of the "
                    "clip and concatenate them (panns time_segments; 1 = PANNs' clip pooling)")
    ap.add_argument("--channels", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--noise-p", type=float, default=0.0)
    ap.add_argument("--reverb-p", type=float, default=0.0, help="probability of mel-domain reverberation "
                    "(shared/data/rirs or a synthetic exponential tail, reverb_kernel)")
    ap.add_argument("--floor-db", type=float, default=50.0, help="front end: noise floor below the clip's peak "
                    "(0: none)")
    ap.add_argument("--trim-db", type=float, default=45.0, help="front end: trim leading/trailing frames this far "
                    "below the loudest (0: none)")
    ap.add_argument("--synth", type=int, default=0, help="synthetic digit clips (espeak-ng / flite voices, "
                    "rendered by digits_loso.build_synth into --cache) added to every fold's training set")
    ap.add_argument("--cache", default="cache/digits_synth")
    ap.add_argument("--piper-voices", type=int, default=0, help="Piper + WORLD pseudo-speakers "
                    "(digits_piper.build_piper_synth; each says every digit --piper-takes times) added to every "
                    "fold's training set")
    ap.add_argument("--piper-takes", type=int, default=2)
    ap.add_argument("--piper-cache", default="cache/digits_piper")
    ap.add_argument("--festival-voices", type=int, default=0, help="festival + WORLD pseudo-speakers "
                    "(digits_piper.build_festival_synth), 10 digits x --festival-takes each")
    ap.add_argument("--festival-takes", type=int, default=2)
    ap.add_argument("--festival-cache", default="cache/digits_festival")
    ap.add_argument("--revoice", type=int, default=0, help="WORLD pseudo-speakers made from each real training "
                    "speaker (digits_piper.revoice_fsdd); a fold drops the held-out speaker's")
    ap.add_argument("--revoice-cache", default="cache/digits_revoice")
    ap.add_argument("--tempo", type=float, nargs=2, default=[0.8, 1.25], metavar=("LO", "HI"),
                    help="tempo perturbation: range of the frame-count factor (< 1 = faster speech)")
    ap.add_argument("--crop-p", type=float, default=0.0, help="probability of cutting into the word's onset "
                    "and coda (crop_ends; off by default)")
    ap.add_argument("--crop-max", type=float, default=0.25, help="at most this fraction of the word cut at each end")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ema", type=float, default=0.0, help="also keep an exponential moving average of the weights "
                    "(this decay per step); folds score both, --final saves it (metadata 'weights': 'ema')")
    ap.add_argument("--tta", action="store_true", help="folds also score test-time augmentation (mean softmax "
                    "over 3 tempi x 3 warps, predict_tta)")
    ap.add_argument("--save-folds", action="store_true", help="write each fold's weights to WORK/folds/")
    ap.add_argument("--ensemble", default="", help="instead of training, score the mean softmax of these "
                    "--save-folds weight files on each fold (comma list; '{speaker}' stands for the held-out "
                    "speaker; the model flags must match theirs)")
    ap.add_argument("--baselines", action="store_true", help="the linear baselines of thirds_baseline, per fold")
    ap.add_argument("--curve", type=int, default=0, help="print the held-out accuracy every N epochs")
    ap.add_argument("--work", default="runs/digits_loso_cnn")
    ap.add_argument("--loso-json", default=None, help="the --folds all JSON whose per-speaker table the final "
                    "weight set's metadata records")
    args = ap.parse_args()
    if args.ensemble and (args.final or args.final_takes or not args.folds):
        ap.error("--ensemble scores saved fold models: give --folds, not --final / --final-takes")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    t0 = time.time()
    root, work = shared_data(), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    clips, labels, speakers = load_fsdd(root)
    proto = audiozoo.create_model("panns_cnn14", **model_kwargs(args))
    db = db_features(proto, clips)
    train_here = not args.ensemble  # --ensemble only scores saved models: no training data to build
    noises = noise_mels(proto, root) if args.noise_p > 0 and train_here else []
    rirs = rir_mels(proto, root) if args.reverb_p > 0 and train_here else []
    syn_db, syn_labels = [], torch.zeros(0, dtype=torch.long)
    if args.synth and train_here:
        syn_clips, syn_labels = build_synth(Path(args.cache), args.synth, 0)
        syn_db = db_features(proto, syn_clips)
    if args.piper_voices and train_here:
        pip_clips, pip_labels = build_piper_synth(Path(args.piper_cache), args.piper_voices, args.piper_takes)
        syn_db = syn_db + db_features(proto, pip_clips)
        syn_labels = torch.cat([syn_labels, pip_labels])
    if args.festival_voices and train_here:
        fes_clips, fes_labels = build_festival_synth(Path(args.festival_cache), args.festival_voices,
                                                     args.festival_takes)
        syn_db = syn_db + db_features(proto, fes_clips)
        syn_labels = torch.cat([syn_labels, fes_labels])
    rv_db, rv_src, rv_spk = [], [], []
    if args.revoice and train_here:
        rv_clips, rv_src, rv_spk = revoice_fsdd(clips, speakers, Path(args.revoice_cache), args.revoice)
        rv_db = db_features(proto, rv_clips)

    def training_set(keep: list[int]) -> tuple[list[torch.Tensor], torch.Tensor]:
        return fold_training_set(keep, db, labels, syn_db, syn_labels, rv_db, rv_src)

    print(f"{len(clips)} clips, features in {time.time() - t0:.0f}s", flush=True)
    tag = (f"h{args.hop}_m{args.n_mels}_c{'-'.join(map(str, args.channels))}_e{args.epochs}"
           f"_n{args.noise_p}_r{args.reverb_p}"
           f"_y{args.synth}_p{args.piper_voices}x{args.piper_takes}_f{args.floor_db}_t{args.trim_db}_s{args.seed}"
           + (f"_g{args.segments}" if args.segments != 1 else "")
           + (f"_fv{args.festival_voices}x{args.festival_takes}" if args.festival_voices else "")
           + (f"_rv{args.revoice}" if args.revoice else "")
           + (f"_tp{args.tempo[0]}-{args.tempo[1]}" if args.tempo != [0.8, 1.25] else "")
           + (f"_cp{args.crop_p}x{args.crop_max}" if args.crop_p else "")
           + (f"_ema{args.ema}" if args.ema else "")
           + (f"_ens{len(args.ensemble.split(','))}" if args.ensemble else ""))
    result: dict = {"model": model_kwargs(args), "args": vars(args)}
    if args.baselines:
        for cmvn in (False, True):
            key = f"logreg_thirds_{'cmvn' if cmvn else 'db'}"
            result[key] = thirds_baseline(db, labels, speakers, cmvn)
            print(key, json.dumps(result[key]), flush=True)
        (work / "baselines.json").write_text(json.dumps(result, indent=1))
    if args.final or args.final_takes:
        takes = [int(p.stem.split("_")[2]) for p in sorted((root / "fsdd").glob("*.wav"))]
        tr = list(range(len(clips))) if args.final else [i for i, t in enumerate(takes) if t >= 5]
        model = train(args, *training_set(tr), noises, "[final]", rirs=rirs)["ema" if args.ema else "raw"]
        if args.final_takes:
            te = [i for i, t in enumerate(takes) if t < 5]
            result["test_takes_accuracy"] = accuracy(model, [clips[i] for i in te], labels[te])
            print("takes 5-49 -> takes 0-4:", result["test_takes_accuracy"], flush=True)
        if args.final:
            metrics = {}
            if args.loso_json:
                metrics["fsdd_loso"] = json.loads(Path(args.loso_json).read_text())["loso"]
            save_pretrained(model, args.final, metadata={
                "recipe": "recipes/classify/digits_loso_cnn.py", "args": vars(args), "labels": list(range(10)),
                "weights": "ema" if args.ema else "raw", "metrics": metrics})
            print("saved", args.final, flush=True)
        out = work / f"final{'_takes' if args.final_takes else ''}_{tag}.json"
        result["seconds"] = round(time.time() - t0)
        out.write_text(json.dumps(result, indent=1))
    folds = list(SPEAKERS) if args.folds == "all" else [s for s in args.folds.split(",") if s]
    if folds:
        out = work / f"loso-{args.folds.replace(',', '+')}_{tag}.json"
        result["loso"] = {}
        for s in folds:
            tr = [i for i, sp in enumerate(speakers) if sp != s]
            te = [i for i, sp in enumerate(speakers) if sp == s]
            models = ({"raw": load_fold_models(args, s)} if args.ensemble else
                      train(args, *training_set(tr), noises, f"[{s}]", rirs=rirs,
                            monitor=lambda m, te=te: accuracy(m, [clips[i] for i in te], labels[te])))
            # "loso": the last weights as `audiozoo tag` runs them; "loso_ema" / "loso_tta" / "loso_ema_tta":
            # the moving average and / or test-time augmentation, scored on the same clips (paired)
            for name, model in models.items():
                key = "loso" if name == "raw" else f"loso_{name}"
                pred = predict(model, [clips[i] for i in te])
                result.setdefault(key, {})[s] = float((pred == labels[te]).float().mean())
                if name == "raw":  # rows: the digit said, columns: the digit recognised
                    result.setdefault("confusion", {})[s] = torch.bincount(
                        labels[te] * 10 + pred, minlength=100).view(10, 10).tolist()
                if args.tta:
                    pred = predict_tta(model, [db[i] for i in te])
                    result.setdefault(key + "_tta", {})[s] = float((pred == labels[te]).float().mean())
                if args.save_folds and not args.ensemble:
                    (work / "folds").mkdir(exist_ok=True)
                    save_file(model.state_dict(), str(work / "folds" / f"{tag}_{s}_{name}.safetensors"))
            print(s, {k: v[s] for k, v in result.items() if k.startswith("loso")}, f"{time.time() - t0:.0f}s",
                  flush=True)
            result["seconds"] = round(time.time() - t0)
            out.write_text(json.dumps(result, indent=1))
        for key in [k for k in result if k.startswith("loso")]:
            result[key]["mean"] = sum(result[key][s] for s in folds) / len(folds)
        out.write_text(json.dumps(result, indent=1))
        print(json.dumps({k: v for k, v in result.items() if k.startswith("loso")}), flush=True)


if __name__ == "__main__":
    main()
