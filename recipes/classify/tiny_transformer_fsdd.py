"""Recipe: the ~6K-parameter Tiny Transformer (arXiv:2103.12157) on FSDD spoken digits vs a linear classifier.

Data: the Free Spoken Digit Dataset (real recordings, ../shared/data/fsdd), 10 digits x 5 speakers; the
usual split: takes 0-4 test (250 clips), 5-9 validation (250, picks the best epoch), 10-49 training
(2,000). Clips are resampled 8 -> 16 kHz, cut / zero-padded to 1.025 s (101 frames of 10 ms); true
lengths travel as ``lengths`` (padded frames are masked out of attention).

Model: the canonical ``tiny_transformer`` (one token per 40-bin log-mel frame, hidden 16, 1 layer, 2 heads,
FFN 64) with a 10-class head and a 101-position table: 6,058 parameters. Training: AdamW (lr 3e-3,
weight decay 0.01, one-cycle schedule), batch 32, cross-entropy, no augmentation.

Baseline: standardised mean log-mel (40 bins, valid frames) -> scikit-learn LogisticRegression, C picked on
validation from {0.01, 0.1, 1, 10, 100} (410 parameters).

    nice -n 5 python recipes/classify/tiny_transformer_fsdd.py --out runs/tiny_transformer_fsdd
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from fsdd_arrays import fsdd_dir, load_split  # sibling module (the script's folder is on sys.path)

import audiozoo
from audiozoo.hub import save_pretrained

SAMPLE_RATE = 16000
NUM_SAMPLES = 16400  # 101 frames


def linear_baseline(feats: dict) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    def mean_logmel(f, n):
        valid = (torch.arange(f.shape[-1])[None] < n[:, None]).float()
        return ((f * valid[:, None]).sum(-1) / valid.sum(-1, keepdim=True)).numpy()

    x = {k: mean_logmel(v[0], v[1]) for k, v in feats.items()}
    y = {k: v[2].numpy() for k, v in feats.items()}
    scaler = StandardScaler().fit(x["train"])
    x = {k: scaler.transform(v) for k, v in x.items()}
    best = max(((LogisticRegression(C=c, max_iter=5000).fit(x["train"], y["train"]), c)
                for c in (0.01, 0.1, 1.0, 10.0, 100.0)), key=lambda m: m[0].score(x["valid"], y["valid"]))
    clf, c = best
    return {"C": c, "valid_accuracy": clf.score(x["valid"], y["valid"]),
            "test_accuracy": clf.score(x["test"], y["test"]), "params": int(clf.coef_.size + clf.intercept_.size)}


def accuracy(model, f, n, y) -> float:
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(f[i:i + 256], n[i:i + 256]).argmax(-1) for i in range(0, len(f), 256)])
    return float((pred == y).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/tiny_transformer_fsdd")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)  # see stats_embed_fsdd.py: avoids oversubscription
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t0 = time.time()
    model = audiozoo.create_model("tiny_transformer", num_classes=10, max_positions=101)
    feats = {}
    for name, takes in (("train", range(10, 50)), ("valid", range(5, 10)), ("test", range(0, 5))):
        wav, lengths, labels = load_split(fsdd_dir(), takes, NUM_SAMPLES, SAMPLE_RATE)
        with torch.no_grad():
            f, n = model.frontend(wav, lengths)
        feats[name] = (f, n, labels)
    result: dict = {"seed": args.seed, "epochs": args.epochs, "lr": args.lr,
                    "params": sum(p.numel() for p in model.parameters())}
    result["linear_mean_logmel"] = linear_baseline(feats)
    print("linear baseline:", result["linear_mean_logmel"], flush=True)
    x, n, y = feats["train"]
    steps = args.epochs * -(-len(x) // 32)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=steps)
    g = torch.Generator().manual_seed(args.seed)
    best, history = None, []
    for epoch in range(args.epochs):
        model.train()
        perm, total = torch.randperm(len(x), generator=g), 0.0
        for i in range(0, len(x), 32):
            idx = perm[i:i + 32]
            loss = F.cross_entropy(model(x[idx], n[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        va = accuracy(model, *feats["valid"])
        history.append({"epoch": epoch + 1, "train_loss": round(total / len(x), 4), "valid_accuracy": va})
        print(history[-1], flush=True)
        if best is None or va > best[0]:
            best = (va, epoch + 1, {k: v.clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[2])
    result.update(best_epoch=best[1], valid_accuracy=best[0], test_accuracy=accuracy(model, *feats["test"]),
                  history=history, seconds=round(time.time() - t0, 1))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_pretrained(model, out / "best", metadata={"recipe": "recipes/classify/tiny_transformer_fsdd.py",
                                                    "test_accuracy": result["test_accuracy"]})
    (out / "results.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "history"}, indent=2, default=np.asarray))


if __name__ == "__main__":
    main()
