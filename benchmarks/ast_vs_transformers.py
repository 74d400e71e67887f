"""Benchmark: audiozoo AST vs transformers' ASTForAudioClassification, same weights, one process.

Measures forward latency (inference) and forward+backward (training step) for the canonical
ast_base_p16 on CPU (or --device cuda), interleaving the two implementations so machine noise hits both,
and reports the median of each and the ratio (transformers / audiozoo; > 1 means audiozoo is faster).

    python benchmarks/ast_vs_transformers.py --batch 2 --repeats 5 --out benchmarks/results/ast_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _time(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from models.test_ast import _hf_pair  # same random weights through the converter

    hf, ours = _hf_pair()
    hf, ours = hf.to(args.device), ours.to(args.device)
    x = torch.randn(args.batch, 1024, 128, device=args.device)  # HF layout (B, L, F)
    xt = x.transpose(1, 2).contiguous()

    def inf_hf():
        with torch.no_grad():
            hf(x)

    def inf_ours():
        with torch.no_grad():
            ours(xt)

    def train_hf():
        hf.zero_grad()
        hf(x).logits.sum().backward()

    def train_ours():
        ours.zero_grad()
        ours(xt).sum().backward()

    results = {}
    for name, (a, b) in {"inference": (inf_hf, inf_ours), "train_step": (train_hf, train_ours)}.items():
        a(), b()  # warm-up
        ta, tb = [], []
        for i in range(args.repeats):  # interleave, alternating which runs first (ABBA)
            if i % 2:
                tb += _time(b, 1)
                ta += _time(a, 1)
            else:
                ta += _time(a, 1)
                tb += _time(b, 1)
        mh, mo = statistics.median(ta), statistics.median(tb)
        results[name] = {"transformers_s": round(mh, 4), "audiozoo_s": round(mo, 4),
                         "ratio_hf_over_ours": round(mh / mo, 3)}
    report = {"model": "ast_base_p16 (86.59M)", "batch": args.batch, "frames": 1024, "device": args.device,
              "threads": args.threads, "torch": torch.__version__, "machine": platform.machine(),
              "repeats": args.repeats, "results": results}
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
