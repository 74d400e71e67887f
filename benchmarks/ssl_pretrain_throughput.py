"""Benchmark: pretraining throughput of the SSL systems' small configs on CPU, bf16 autocast vs fp32.

For every model (default: ``ssast_small_patch``, ``ssamba_small``, ``tera_base`` (TERA's one registered size),
``beats_small``, ``mert_small``; names not registered are skipped): a batch of ``--batch`` clips of ``--seconds``
of random noise at the model's sample rate goes through its front end once (not timed: a data-loader's job;
its time is reported as ``frontend_s``), then ``--warmup`` + ``--steps`` pretraining steps on those features:
``model(features, lengths, generator=...)`` (the paper's pretext loss with the model's default masking) ->
``loss.backward()`` -> ``AdamW.step()``, in fp32 and under ``torch.autocast("cpu", dtype=torch.bfloat16)``
(weights, gradients and optimizer state stay fp32). Each precision starts from the same fresh model (seed 0) and
draws the same masks (one seeded generator per step), and the order of the two alternates from model to model.
Throughput = batch / median step time (samples per second); ``bf16_speedup`` = fp32 step / bf16 step. The
process's CPU time per step (``time.process_time``; with ``--threads 1`` the compute itself) is kept beside the
wall time: on a shared machine it is the steadier measure, and the speedup is given for both.

    OMP_NUM_THREADS=1 python benchmarks/ssl_pretrain_throughput.py \\
        --out benchmarks/results/ssl_pretrain_throughput_cpu.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

import audiozoo

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ssamba_vs_ssast import md_table  # noqa: E402

MODELS = ("ssast_small_patch", "ssamba_small", "tera_base", "beats_small", "mert_small")


def steps(name: str, feats: torch.Tensor, lengths: torch.Tensor, bf16: bool, warmup: int, n: int) -> dict:
    """Time ``warmup + n`` optimizer steps of ``name``'s pretext task on ``feats`` from a fresh model."""
    torch.manual_seed(0)
    model = audiozoo.create_model(name).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times, cpu, losses = [], [], []
    for i in range(warmup + n):
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext():
            out = model(feats, lengths, generator=torch.Generator().manual_seed(i))
        out["loss"].backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            losses.append(float(out["loss"].detach()))
    step, step_cpu = statistics.median(times), statistics.median(cpu)
    return {"step_s": round(step, 3), "samples_per_s": round(feats.shape[0] / step, 3),
            "step_cpu_s": round(step_cpu, 3), "samples_per_cpu_s": round(feats.shape[0] / step_cpu, 3),
            "step_times_s": [round(t, 3) for t in times], "losses": [round(x, 4) for x in losses],
            "finite": all(math.isfinite(x) for x in losses)}


def markdown(rows: list[dict]) -> str:
    def rate(r: dict) -> str:
        return f"{r['samples_per_s']:.2f} ({r['samples_per_cpu_s']:.2f})"

    return md_table(["model", "params", "input", "fp32 samples/s wall (CPU)", "bf16 samples/s wall (CPU)",
                     "bf16 speedup wall (CPU)"],
                    [[f"`{r['model']}`", f"{r['params'] / 1e6:.1f} M", r["input"], rate(r["fp32"]), rate(r["bf16"]),
                      f"{r['bf16_speedup']:.2f} ({r['bf16_speedup_cpu']:.2f})"] for r in rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--seconds", type=float, default=4.0, help="clip length (s)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/ssl_pretrain_throughput_cpu.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    known = set(audiozoo.list_models("ssl"))
    result: dict = {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                    "threads": args.threads, "torch": torch.__version__, "load_avg_at_start": os.getloadavg(),
                    "batch": args.batch, "seconds": args.seconds, "warmup": args.warmup, "steps": args.steps,
                    "skipped": [m for m in args.models if m not in known], "rows": []}
    t_all = time.perf_counter()
    for k, name in enumerate(m for m in args.models if m in known):
        model = audiozoo.create_model(name)
        sr = int(model.frontend.sample_rate)
        g = torch.Generator().manual_seed(0)
        wav = 0.1 * torch.randn(args.batch, int(args.seconds * sr), generator=g)
        lengths = torch.full((args.batch,), wav.shape[1])
        t0 = time.perf_counter()
        with torch.no_grad():
            feats, flen = model.frontend(wav, lengths)
        row: dict = {"model": name, "params": sum(p.numel() for p in model.parameters()),
                     "input": f"{args.batch} x {args.seconds:g} s @ {sr // 1000} kHz -> {tuple(feats.shape)}",
                     "frontend_s": round(time.perf_counter() - t0, 3)}
        del model
        for precision in (("fp32", "bf16") if k % 2 == 0 else ("bf16", "fp32")):
            row[precision] = steps(name, feats, flen, precision == "bf16", args.warmup, args.steps)
        row["bf16_speedup"] = round(row["fp32"]["step_s"] / row["bf16"]["step_s"], 3)
        row["bf16_speedup_cpu"] = round(row["fp32"]["step_cpu_s"] / row["bf16"]["step_cpu_s"], 3)
        result["rows"].append(row)
        print(json.dumps(row), flush=True)
    result["wall_s"] = round(time.perf_counter() - t_all, 1)
    result["load_avg_at_end"] = os.getloadavg()
    print(markdown(result["rows"]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
