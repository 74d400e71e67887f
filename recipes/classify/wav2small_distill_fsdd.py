"""Recipe: distil a teacher's continuous outputs into Wav2Small (arXiv:2408.13920) on FSDD audio, score CCC.

Wav2Small's recipe: a large teacher labels audio with continuous outputs (arousal/dominance/valence) and
the 72K-parameter student regresses them; no human label is used, and agreement is measured with the
concordance correlation coefficient (CCC). The A/D/V teacher (wav2vec2-large, MSP-Podcast) is not
available offline, so the teacher here is an audiozoo model trained in this project: the shipped
``ast_tiny.fsdd_digits`` (AST, 4 layers x 128-d, 96-98 % digit accuracy). Its 10 logits are the
continuous targets (the analogue of the 3 A/D/V outputs); students get ``num_classes=10`` outputs.

Data: FSDD (real recordings, ../shared/data/fsdd), resampled 8 -> 16 kHz, cut / zero-padded to 16,400
samples (the teacher's 101-frame input); true lengths travel as ``lengths``. Students learn on takes
10-49 (2,000 clips; unlabeled for the student), the best epoch is picked by CCC on takes 5-9, and CCC is
reported on the held-out takes 0-4 (250 clips). The teacher itself was trained on takes 10-49 (takes 5-9
were its validation split) and never saw takes 0-4.

Batches group clips of similar length and drop the all-padding frames (2 ms frames make the full 1.025 s
input ~2x the cost of the average digit). Loss: ``1 - mean_d CCC_d`` over the batch (Wav2Small's metric
used as the objective), Adam with a one-cycle schedule; BatchNorm statistics are re-estimated on the
training clips after each epoch (see ``recalibrate_bn``). Baseline: the
same students untrained (random init) on the same held-out clips.

    nice -n 5 python recipes/classify/wav2small_distill_fsdd.py --out runs/wav2small_distill_fsdd
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from fsdd_arrays import fsdd_dir, load_split  # sibling module (the script's folder is on sys.path)
from torch import nn

import audiozoo
from audiozoo.eval.regression import ccc, ccc_torch, pearson
from audiozoo.hub import save_pretrained

SAMPLE_RATE = 16000
NUM_SAMPLES = 16400  # the teacher's 101 frames of 25 ms / 10 ms
TEACHER = "ast_tiny.fsdd_digits"


@torch.no_grad()
def run_batched(fn, *tensors, batch: int = 128) -> tuple[torch.Tensor, ...]:
    outs = [fn(*(t[i:i + batch] for t in tensors)) for i in range(0, len(tensors[0]), batch)]
    if isinstance(outs[0], tuple):
        return tuple(torch.cat(o) for o in zip(*outs))
    return (torch.cat(outs),)


def buckets(frames: torch.Tensor, size: int, g: torch.Generator | None = None) -> list[torch.Tensor]:
    """Batches of similar length (sorted by ``frames``), in random order when ``g`` is given."""
    order = torch.argsort(frames, stable=True)
    chunks = list(order.split(size))
    if g is not None:
        chunks = [chunks[i] for i in torch.randperm(len(chunks), generator=g)]
    return chunks


def trimmed(x: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    # drop the all-padding tail of a length bucket: those frames are masked anyway, and they cost ~2x compute
    return x[..., : int(n.max())]


@torch.no_grad()
def predict(student, feats: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    out = torch.empty(len(feats), student.num_classes)
    for idx in buckets(frames, 64):
        out[idx] = student(trimmed(feats[idx], frames[idx]), frames[idx])
    return out


@torch.no_grad()
def recalibrate_bn(student, feats: torch.Tensor, frames: torch.Tensor) -> None:
    """Re-estimate BatchNorm running statistics as exact averages over the training clips ("precise BN",
    Wu & Johnson 2021). MobileNetV3's BN momentum 0.01 (torchvision) leaves the running statistics near
    their initial values after this short run, and its eval-mode outputs were then constant (CCC 0.0)."""
    bns = [m for m in student.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    student.train()
    for idx in buckets(frames, 64):
        student(trimmed(feats[idx], frames[idx]), frames[idx])
    for m, mom in zip(bns, momenta):
        m.momentum = mom


def evaluate(student, feats, frames, targets, labels) -> dict:
    student.eval()
    pred = predict(student, feats, frames)
    return {"ccc": ccc(pred, targets), "ccc_per_output": [round(float(v), 4) for v in ccc(pred, targets, per_dim=True)],
            "pearson": pearson(pred, targets),
            "argmax_agrees_with_teacher": float((pred.argmax(-1) == targets.argmax(-1)).float().mean()),
            "digit_accuracy": float((pred.argmax(-1) == labels).float().mean())}


def distil(name: str, data: dict, epochs: int, lr: float, seed: int, out: Path) -> dict:
    torch.manual_seed(seed)
    student = audiozoo.create_model(name, num_classes=10)
    feats = {k: run_batched(student.frontend, v["wav"], v["len"]) for k, v in data.items()}
    res: dict = {"params": sum(p.numel() for p in student.parameters())}
    res["untrained_test"] = evaluate(student, *feats["test"], data["test"]["teacher"], data["test"]["label"])
    print(name, "untrained:", res["untrained_test"], flush=True)
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * -(-len(feats["train"][0]) // 32))
    g = torch.Generator().manual_seed(seed)
    x, n, y = feats["train"][0], feats["train"][1], data["train"]["teacher"]
    best, history = None, []
    t0 = time.time()
    for epoch in range(epochs):
        student.train()
        total = 0.0
        for idx in buckets(n, 32, g):
            loss = 1 - ccc_torch(student(trimmed(x[idx], n[idx]), n[idx]), y[idx]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
        recalibrate_bn(student, x, n)
        val = evaluate(student, *feats["valid"], data["valid"]["teacher"], data["valid"]["label"])
        history.append({"epoch": epoch + 1, "train_loss": round(total / len(x), 4), "valid_ccc": round(val["ccc"], 4),
                        "seconds": round(time.time() - t0, 1)})
        print(name, history[-1], flush=True)
        if best is None or val["ccc"] > best[0]:
            best = (val["ccc"], epoch + 1, {k: v.clone() for k, v in student.state_dict().items()})
    student.load_state_dict(best[2])
    res.update(best_epoch=best[1], valid_ccc=best[0], history=history)
    res["test"] = evaluate(student, *feats["test"], data["test"]["teacher"], data["test"]["label"])
    print(name, "distilled:", res["test"], flush=True)
    save_pretrained(student, out / name, metadata={"recipe": "recipes/classify/wav2small_distill_fsdd.py",
                                                     "teacher": TEACHER, "test_ccc": res["test"]["ccc"]})
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/wav2small_distill_fsdd")
    ap.add_argument("--students", default="wav2small,wav2small_mobilenetv3")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    # 1 intra-op thread by default: on a shared 2-core machine, OpenMP threads of several processes
    # oversubscribe the cores and a tiny model ran ~25x slower with 2 threads than with 1 in our runs.
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    root = fsdd_dir()
    teacher = audiozoo.create_model(TEACHER, pretrained=True).eval()
    data = {}
    for name, takes in (("train", range(10, 50)), ("valid", range(5, 10)), ("test", range(0, 5))):
        wav, lengths, labels = load_split(root, takes, NUM_SAMPLES, SAMPLE_RATE)
        (logits,) = run_batched(lambda w, n: teacher(*teacher.frontend(w, n)), wav, lengths)
        data[name] = {"wav": wav, "len": lengths, "label": labels, "teacher": logits}
    result: dict = {"teacher": TEACHER, "seed": args.seed, "epochs": args.epochs, "lr": args.lr,
                    "teacher_test_accuracy": float((data["test"]["teacher"].argmax(-1) == data["test"]["label"])
                                                   .float().mean()),
                    "target_std_test": [round(float(v), 3) for v in data["test"]["teacher"].std(0)]}
    print("teacher test accuracy:", result["teacher_test_accuracy"], flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.students.split(","):
        result[name] = distil(name, data, args.epochs, args.lr, args.seed, out)
        (out / "results.json").write_text(json.dumps(result, indent=2))
    result["seconds"] = round(time.time() - t0, 1)
    (out / "results.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({k: (v if not isinstance(v, dict) else {kk: vv for kk, vv in v.items() if kk != "history"})
                      for k, v in result.items()}, indent=2, default=np.asarray))


if __name__ == "__main__":
    main()
