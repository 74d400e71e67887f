"""Benchmark: parameter-efficient transfer of AST, FSDD digits -> FSDD speaker ID (PETL-AST at small scale).

Cappellazzo et al. 2024, "Parameter-Efficient Transfer Learning of Audio Spectrogram Transformers"
(PETL-AST, arXiv:2312.03694) compare full fine-tuning, linear probing, prompt/prefix tuning, LoRA and
bottleneck adapters on an AudioSet-pretrained AST. Here the backbone is the shipped
``ast_tiny.fsdd_digits`` (4 layers x 128-d, mean pooling, trained on FSDD *digits*) and the new task is
*speaker* identification on the same corpus (5 speakers: george, jackson, lucas, nicolas, theo).

Split (deliberately small so that adaptation matters): train on takes 5-9 (5 speakers x 10 digits x 5 takes
= 250 clips), test on takes 0-4 (250 clips). Caveat: takes 5-9 were the backbone's validation split and
takes 0-4 its test split, so the backbone never trained on any of these clips, but it picked its checkpoint
on the clips we now train on.

Every method: fresh backbone, ``reset_classifier(5)``, same seed, same budget (epochs, batch 32, AdamW with
cosine decay), its own learning rate (one per method family, listed in ``METHODS``). PETL methods train the
adapter parameters plus ``head`` and ``head_norm`` (``mark_only_adapters_trainable(extra=("head",
"head_norm"))``). Features are computed once with ``model.frontend`` (16 kHz via ``audiozoo.dsp.resample``,
crop / zero-pad at the end to 16400 samples = 101 frames, the backbone's input size).

    python benchmarks/petl_ast_fsdd_speaker.py --out benchmarks/results/petl_ast_fsdd_speaker.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import time
from collections.abc import Callable
from pathlib import Path

import soundfile as sf
import torch
import torch.nn.functional as F
from torch import nn

import audiozoo
from audiozoo.dsp import resample
from audiozoo.errors import DataError
from audiozoo.models.classify.ast import AST
from audiozoo.nn.adapters import (
    add_bottleneck_adapters,
    add_lora,
    add_prefix_tuning,
    add_prompt_tuning,
    count_trainable,
    mark_only_adapters_trainable,
)

SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo")
SAMPLE_RATE = 16000
NUM_SAMPLES = 16400  # 101 frames of 25 ms / 10 ms: the backbone's max_length
BACKBONE = "ast_tiny.fsdd_digits"
PETL_EXTRA = ("head", "head_norm")


def fsdd_dir() -> Path:
    root = Path(os.environ.get("AUDIOZOO_SHARED_DATA", "/work/shared/data")) / "fsdd"
    if not root.is_dir():
        raise DataError(f"FSDD not found at {root} (set AUDIOZOO_SHARED_DATA to the folder holding fsdd/)")
    return root


def load_split(root: Path, takes: range) -> tuple[torch.Tensor, torch.Tensor]:
    """Waveforms ``(N, NUM_SAMPLES)`` at 16 kHz and speaker labels ``(N,)`` for the given takes."""
    wavs, labels = [], []
    for path in sorted(root.glob("*.wav")):
        digit, speaker, take = path.stem.split("_")
        if speaker not in SPEAKERS or int(take) not in takes:
            continue
        wav, sr = sf.read(path, dtype="float32", always_2d=False)
        w = resample(torch.from_numpy(wav), sr, SAMPLE_RATE)
        w = w[:NUM_SAMPLES]
        wavs.append(F.pad(w, (0, NUM_SAMPLES - w.shape[0])))  # zero-pad at the end (the frontend masks it)
        labels.append(SPEAKERS.index(speaker))
    if not wavs:
        raise DataError(f"no FSDD clips of speakers {SPEAKERS} with takes {takes} in {root}")
    return torch.stack(wavs), torch.tensor(labels)


# --------------------------------------------------------------------------- methods
def _backbone() -> AST:
    model = audiozoo.create_model(BACKBONE)
    model.reset_classifier(len(SPEAKERS))
    return model


def _full() -> nn.Module:
    return _backbone().requires_grad_(True)


def _scratch() -> nn.Module:
    # same architecture and config as the backbone, random init (AST._init_weights), all trainable
    model = AST(_backbone().config)
    model.reset_classifier(len(SPEAKERS))
    return model


def _petl(adapt: Callable[[nn.Module], object]) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        model = _backbone()
        adapt(model)
        mark_only_adapters_trainable(model, extra=PETL_EXTRA)
        return model

    return build


# name -> (builder, lr). lr per family: full fine-tuning low (keep the pretrained features), from scratch as
# the digits recipe (1e-3), small new modules higher (PETL-AST also uses larger lrs for PETL than for full FT).
METHODS: dict[str, tuple[Callable[[], nn.Module], float]] = {
    "scratch": (_scratch, 1e-3),
    "full_finetune": (_full, 3e-4),
    "linear_probe": (_petl(lambda m: None), 5e-3),
    "prompt_shallow_p8": (_petl(lambda m: add_prompt_tuning(m, 8, deep=False)), 5e-3),
    "prompt_deep_p8": (_petl(lambda m: add_prompt_tuning(m, 8, deep=True)), 5e-3),
    "prefix_l8": (_petl(lambda m: add_prefix_tuning(m, 8)), 5e-3),
    "lora_qv_r8": (_petl(lambda m: add_lora(m, r=8, targets=("q", "v"))), 2e-3),
    "houlsby_seq_b8": (_petl(lambda m: add_bottleneck_adapters(m, "houlsby", "sequential", bottleneck=8)), 2e-3),
    "pfeiffer_seq_b8": (_petl(lambda m: add_bottleneck_adapters(m, "pfeiffer", "sequential", bottleneck=8)), 2e-3),
    "pfeiffer_par_b8": (_petl(lambda m: add_bottleneck_adapters(m, "pfeiffer", "parallel", bottleneck=8)), 2e-3),
}


@torch.no_grad()
def accuracy(model: nn.Module, feats: torch.Tensor, labels: torch.Tensor, batch: int = 125) -> float:
    model.eval()
    pred = torch.cat([model(feats[i:i + batch]).argmax(-1) for i in range(0, len(feats), batch)])
    return float((pred == labels).float().mean())


def run_method(name: str, epochs: int, batch: int, seed: int, train: tuple, test: tuple) -> dict:
    builder, lr = METHODS[name]
    torch.manual_seed(seed)
    model = builder()
    params = [p for p in model.parameters() if p.requires_grad]
    total = sum(p.numel() for p in model.parameters())
    trainable = count_trainable(model)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    steps = epochs * ((len(train[0]) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(train[0]), generator=gen)
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            loss = F.cross_entropy(model(train[0][idx]), train[1][idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    train_s = time.perf_counter() - t0
    acc = accuracy(model, *test)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    groups = sorted({re.sub(r"\.\d+\.", ".*.", n) for n in names})  # block index collapsed: what trains
    return {"lr": lr, "trainable_params": trainable, "total_params": total,
            "trainable_fraction": trainable / total, "test_accuracy": acc, "train_accuracy": accuracy(model, *train),
            "final_train_loss": loss.item(), "wall_s": train_s, "trained_groups": groups}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--methods", nargs="*", default=list(METHODS))
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    root = fsdd_dir()
    frontend = _backbone().frontend
    t0 = time.perf_counter()
    with torch.no_grad():
        splits = {}
        for split, takes in (("train", range(5, 10)), ("test", range(0, 5))):
            wav, y = load_split(root, takes)
            splits[split] = (frontend(wav)[0], y)  # features (N, 128, 101)
    feat_s = time.perf_counter() - t0
    print(f"features: train {tuple(splits['train'][0].shape)} test {tuple(splits['test'][0].shape)} ({feat_s:.1f}s)")
    results = {}
    for name in args.methods:
        r = run_method(name, args.epochs, args.batch, args.seed, splits["train"], splits["test"])
        results[name] = r
        print(f"{name:20s} trainable {r['trainable_params']:>8d} ({100 * r['trainable_fraction']:6.2f}%)  "
              f"test acc {100 * r['test_accuracy']:5.1f}%  train acc {100 * r['train_accuracy']:5.1f}%  "
              f"{r['wall_s']:6.1f}s", flush=True)
    out = {"benchmark": "PETL on AST: ast_tiny.fsdd_digits -> FSDD speaker ID (5 speakers)",
           "paper": "Cappellazzo et al. 2024, arXiv:2312.03694",
           "backbone": BACKBONE, "train": "takes 5-9 (250 clips)", "test": "takes 0-4 (250 clips)",
           "epochs": args.epochs, "batch": args.batch, "optimizer": "AdamW wd 0.01, cosine decay, no warmup",
           "seed": args.seed, "threads": args.threads, "feature_s": feat_s, "petl_extra_trainable": PETL_EXTRA,
           "torch": torch.__version__, "machine": platform.processor() or platform.machine(), "results": results}
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
