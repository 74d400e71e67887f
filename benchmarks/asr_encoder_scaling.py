"""Benchmark: Samba-ASR's Mamba encoder vs the Conformer baseline's attention encoder on long inputs, and the
real-time factor of the ``asr`` pipeline (greedy vs beam 4, fp32 vs bf16).

Part 1 (``--seconds``, default 5 s, 30 s, 1, 2, 5 and 10 min): ``model.encode(features, lengths)`` on one
utterance of random 80-band log-mel features (100 frames per second; the front end is left out, it is the
same for both), batch 1, no gradient, one thread. Each (model, length) runs in its own child process, whose
peak resident set size (``ru_maxrss``) minus its size just before the call is the encoder's peak memory; wall
time is the best of ``--repeats`` calls (one call above 60 s of audio). Samba's selective scan is linear in
length; the Conformer's self-attention materialises ``heads x L' x L'`` scores per layer (``L'`` = frames / 4),
quadratic. A Conformer length whose memory, extrapolated quadratically from the two previous lengths, exceeds
``--max-gb`` is skipped (reported with the prediction) so the benchmark cannot exhaust the machine.
``crossover``: the shortest measured length from which Samba stays faster, and the length where the two time
curves cross just before it (linear interpolation of the log time ratio in log-length).

Part 2 (``--audio``, default a LibriSpeech clip from the shared data): the ``asr`` pipeline (segmentation,
front end, encoder, decoder, word timestamps) on a real recording; RTF = wall seconds / audio seconds (best of
``--repeats``), for CTC best path (the pipeline's greedy default), attention greedy and attention beam 4, in
float32 and under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (the selective scan itself always runs in
float32).

    python benchmarks/asr_encoder_scaling.py --models conformer_aed_small.synth_en samba_asr_small.synth_en \\
        --out benchmarks/results/asr_encoder_scaling_cpu.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

DEFAULT_AUDIO = "/work/shared/data/librosa/198-209-0000.ogg"


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def _load(spec: str):
    from audiozoo.resolve import resolve_model

    try:
        return resolve_model(spec, "asr", trained=True).eval()
    except Exception:  # an untrained architecture name: timing and memory do not depend on the weights
        from audiozoo import create_model

        return create_model(spec).eval()


def child(spec: str, seconds: float, repeats: int) -> dict:
    """Run in a fresh process: encoder time and peak memory for ``seconds`` of features."""
    torch.set_num_threads(1)
    model = _load(spec)
    with torch.no_grad():
        model.encode(torch.randn(1, 80, 200), torch.tensor([200]))  # warm-up (lazy init, allocator)
        frames = int(round(seconds * 100))
        feats, lengths = torch.randn(1, 80, frames), torch.tensor([frames])
        base = _rss_mb()
        times = []
        for _ in range(1 if seconds > 60 else repeats):
            t0 = time.perf_counter()
            memory, _ = model.encode(feats, lengths)
            times.append(time.perf_counter() - t0)
            del memory
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB (Linux)
    return {"seconds": seconds, "encoder_s": min(times), "peak_mb": max(0.0, peak - base)}


def run_child(spec: str, seconds: float, repeats: int, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--child", spec, str(seconds), "--repeats", str(repeats)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"seconds": seconds, "skipped": f"timeout after {timeout:.0f} s"}
    if p.returncode != 0:
        return {"seconds": seconds, "skipped": f"exit {p.returncode}: {p.stderr.strip()[-300:]}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def scaling(models: list[str], seconds: list[float], repeats: int, max_gb: float, timeout: float) -> dict:
    out: dict = {}
    for spec in models:
        rows: list[dict] = []
        for s in seconds:
            done = [r for r in rows if "peak_mb" in r]
            if len(done) >= 2:  # quadratic extrapolation through the last two points (upper bound for linear)
                (s1, m1), (s2, m2) = [(r["seconds"], r["peak_mb"]) for r in done[-2:]]
                pred = m2 * (s / s2) ** 2 if m2 > m1 else m2 * s / s2
                if pred > max_gb * 1024:
                    rows.append({"seconds": s, "skipped": f"predicted peak {pred / 1024:.1f} GB > --max-gb {max_gb}"})
                    print(spec, s, rows[-1]["skipped"], flush=True)
                    continue
            rows.append(run_child(spec, s, repeats, timeout))
            print(spec, json.dumps(rows[-1]), flush=True)
        out[spec] = rows
    return out


def growth(rows: list[dict], key: str) -> float | None:
    """Log-log slope of ``key`` against length over the measured rows (1 = linear, 2 = quadratic)."""
    pts = [(math.log(r["seconds"]), math.log(r[key])) for r in rows if r.get(key, 0) > 0]
    if len(pts) < 2:
        return None
    n = len(pts)
    mx, my = sum(p[0] for p in pts) / n, sum(p[1] for p in pts) / n
    return sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)


def crossover(a: list[dict], b: list[dict]) -> dict:
    """From which length model ``a`` (linear) stays faster than ``b``: the first measured length from which every
    longer one has ``a`` faster, and the crossing interpolated (log time ratio vs log length) just before it."""
    tb = {r["seconds"]: r["encoder_s"] for r in b if "encoder_s" in r}
    pts = [(r["seconds"], r["encoder_s"] / tb[r["seconds"]]) for r in a if "encoder_s" in r and r["seconds"] in tb]
    k = len(pts)
    while k > 0 and pts[k - 1][1] < 1:
        k -= 1
    first = pts[k][0] if k < len(pts) else None
    interp = first
    if first is not None and k > 0:
        (s1, r1), (s2, r2) = pts[k - 1], pts[k]
        x1, x2, y1, y2 = math.log(s1), math.log(s2), math.log(r1), math.log(r2)
        interp = math.exp(x1 - y1 * (x2 - x1) / (y2 - y1))
    return {"stays_faster_from_s": first, "crossover_s": None if interp is None else round(interp, 1),
            "time_ratio_a_over_b": {s: round(r, 3) for s, r in pts}}


def rtf(models: list[str], audio: str, repeats: int) -> list[dict]:
    from audiozoo.pipelines import pipeline

    torch.set_num_threads(1)
    rows = []
    for spec in models:
        for name, kw in [("ctc_greedy", dict(decoder="ctc", beam_size=1)),
                         ("attention_greedy", dict(decoder="attention", beam_size=1)),
                         ("attention_beam4", dict(decoder="attention", beam_size=4))]:
            pipe = pipeline("asr", model=spec, device="cpu", **kw)
            duration = None
            for precision in ("fp32", "bf16"):
                times, text = [], ""
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                        r = pipe(audio)
                    times.append(time.perf_counter() - t0)
                    text, duration = r["text"], r["duration_s"]
                rows.append({"model": spec, "decoder": name, "precision": precision, "audio_s": duration,
                             "wall_s": round(min(times), 3), "rtf": round(min(times) / duration, 4), "text": text})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["samba_asr_small", "conformer_aed_small.synth_en"],
                    help="Samba model first, then the attention baseline (weight sets, checkpoint folders or names)")
    ap.add_argument("--seconds", nargs="+", type=float, default=[5, 30, 60, 120, 300, 600])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-gb", type=float, default=6.0)
    ap.add_argument("--timeout", type=float, default=240.0, help="per child process (seconds)")
    ap.add_argument("--audio", default=DEFAULT_AUDIO)
    ap.add_argument("--skip-scaling", action="store_true")
    ap.add_argument("--skip-rtf", action="store_true")
    ap.add_argument("--out", default="benchmarks/results/asr_encoder_scaling_cpu.json")
    ap.add_argument("--child", nargs=2, metavar=("MODEL", "SECONDS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], float(args.child[1]), args.repeats)))
        return
    result: dict = {"cpu": platform.processor() or platform.machine(), "threads": 1, "torch": torch.__version__,
                    "load_avg_at_start": os.getloadavg()[0], "models": args.models}
    if not args.skip_scaling:
        sc = scaling(args.models, args.seconds, args.repeats, args.max_gb, args.timeout)
        result["encoder_scaling"] = sc
        result["growth_exponent"] = {m: {"time": growth(r, "encoder_s"), "memory": growth(r, "peak_mb")}
                                     for m, r in sc.items()}
        if len(args.models) >= 2:
            result["crossover"] = crossover(sc[args.models[0]], sc[args.models[1]])
    if not args.skip_rtf:
        result["rtf_audio"] = args.audio
        result["rtf"] = rtf(args.models, args.audio, args.repeats)
    result["load_avg_at_end"] = os.getloadavg()[0]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
