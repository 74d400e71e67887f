"""Baseline of the FSDD classification recipes: logistic regression on the standardised mean log-mel of each clip.

The natural "statistics" baseline of recipes/classify/{tiny_transformer,stats_embed}_fsdd.yaml (one first-order
statistic, one linear layer): the clip's mean log-mel spectrum over its valid frames, computed by the named
model's own front end, standardised on the training split, into scikit-learn's LogisticRegression with the inverse
regularisation C picked on validation from {0.01, 0.1, 1, 10, 100}. Split by take as the FSDD builder does (10-49
train, 5-9 valid, 0-4 test); clips are resampled 8 -> 16 kHz and cut to ``--seconds``.

    python recipes/classify/fsdd_linear_baseline.py --model tiny_transformer --seconds 1.025   # 40 mels
    python recipes/classify/fsdd_linear_baseline.py --model stats_embed --seconds 1.5          # 64 mels
"""

from __future__ import annotations

import argparse
import json

import torch
from fsdd_arrays import fsdd_dir, load_split  # sibling module (the script's folder is on sys.path)

import audiozoo


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny_transformer", help="registry name whose front end computes the log-mel")
    ap.add_argument("--seconds", type=float, default=1.025)
    args = ap.parse_args()
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    frontend = audiozoo.create_model(args.model).frontend
    x, y = {}, {}
    for name, takes in (("train", range(10, 50)), ("valid", range(5, 10)), ("test", range(0, 5))):
        wav, lengths, labels = load_split(fsdd_dir(), takes, round(args.seconds * 16000), 16000)
        with torch.no_grad():
            feats, frames = frontend(wav, lengths)
        valid = (torch.arange(feats.shape[-1])[None] < frames[:, None]).float()
        x[name] = ((feats * valid[:, None]).sum(-1) / valid.sum(-1, keepdim=True)).numpy()
        y[name] = labels.numpy()
    scaler = StandardScaler().fit(x["train"])
    x = {k: scaler.transform(v) for k, v in x.items()}
    fits = [(LogisticRegression(C=c, max_iter=5000).fit(x["train"], y["train"]), c)
            for c in (0.01, 0.1, 1.0, 10.0, 100.0)]
    clf, c = max(fits, key=lambda m: m[0].score(x["valid"], y["valid"]))
    print(json.dumps({"model": args.model, "n_mels": int(x["train"].shape[1]), "C": c,
                      "valid_accuracy": clf.score(x["valid"], y["valid"]),
                      "test_accuracy": clf.score(x["test"], y["test"]),
                      "params": int(clf.coef_.size + clf.intercept_.size)}, indent=2))


if __name__ == "__main__":
    main()
