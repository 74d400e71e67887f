"""Benchmark: SSAMBA-Tiny's bidirectional Mamba encoder vs SSAST-Tiny's DeiT encoder on growing numbers of patches.

The SSAMBA paper (Shams et al., SLT 2024, arXiv:2405.11831, Sec. 4 / Fig. 3) reports the tiny model ~92.7 % faster
in batch inference and ~95.4 % more memory-efficient than SSAST-Tiny at an input of 22k patch tokens, on a GPU.
This measures the same pair on CPU: ``model.encode(features)`` (patch embedding, prefix tokens, position
embedding, encoder, final norm; no masking, no pretext heads, no gradient) of ``ssamba_tiny`` (24 Vim blocks of
width 192, the project's fused selective scan, ``audiozoo.nn.mamba``) and ``ssast_tiny_patch`` (12 DeiT blocks of
width 192, 3 heads, ``torch.nn.functional.scaled_dot_product_attention``), random weights, batch 1, one thread.
Inputs are random 128-band features of ``16 * N / 8`` frames: ``N`` 16x16 patches (8 along frequency), so
``N = 22,000`` is 440 s of audio (both models resize their position grid bilinearly past 10.24 s).

Each (model, N) runs in its own child process (alternating which model goes first): a warm-up call on 80 patches,
then the best of ``--repeats`` calls (one call when a call takes more than ``--single-above`` seconds); the peak
resident set size of the child (``ru_maxrss``) minus its size just before the first timed call is the forward's
peak memory. Besides wall time, the child's CPU time (``time.process_time``; one thread) is kept: on a shared
machine it is the steadier measure, and the ratios are given for both. ``crossover``: the first measured N from
which SSAMBA stays faster, and the crossing interpolated in log-log just before it (helpers shared with
``asr_encoder_scaling.py``; its "seconds" are audio seconds here).

    OMP_NUM_THREADS=1 python benchmarks/ssamba_vs_ssast.py --out benchmarks/results/ssamba_vs_ssast_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from asr_encoder_scaling import _rss_mb, crossover, growth  # noqa: E402

MODELS = ("ssamba_tiny", "ssast_tiny_patch")  # the linear-time model first (crossover's convention)
GF = 8  # 128 mel bands / 16-bin patches
PAPER = {"tokens": 22_000, "ssamba_faster_pct": 92.7, "ssamba_less_memory_pct": 95.4, "device": "GPU"}


def frames_for(patches: int) -> int:
    """Frames giving ``patches`` 16x16 patches without overlap (``patches`` is rounded down to a multiple of 8)."""
    return 16 * (patches // GF)


def child(name: str, patches: int, repeats: int, single_above: float) -> dict:
    """In a fresh process: best-of time and peak memory of one no-grad ``encode`` on ``patches`` patches."""
    import audiozoo

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = audiozoo.create_model(name).eval()
    frames = frames_for(patches)
    with torch.no_grad():
        model.encode(torch.randn(1, 128, frames_for(80)))  # warm-up: lazy init, allocator
        x = torch.randn(1, 128, frames)
        base = _rss_mb()
        times: list[float] = []
        cpu: list[float] = []
        while len(times) < repeats:
            t0, c0 = time.perf_counter(), time.process_time()
            tokens, _, grid, _ = model.encode(x)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            del tokens
            if times[-1] > single_above:
                break
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB (Linux)
    return {"patches": grid[0] * grid[1], "frames": frames, "seconds": frames / 100, "encoder_s": min(times),
            "encoder_cpu_s": min(cpu), "calls": len(times), "peak_mb": round(max(0.0, peak - base), 1)}


def run_child(name: str, patches: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", name, str(patches), "--repeats", str(args.repeats),
           "--single-above", str(args.single_above)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"patches": patches, "seconds": frames_for(patches) / 100, "skipped": f"timeout after {args.timeout} s"}
    if p.returncode != 0:
        return {"patches": patches, "seconds": frames_for(patches) / 100,
                "skipped": f"exit {p.returncode}: {p.stderr.strip()[-300:]}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def table(rows: dict[str, list[dict]]) -> list[dict]:
    """One row per N: both times and peaks, and SSAMBA's time / memory relative to SSAST's."""
    a, b = ({r["patches"]: r for r in rows[m] if "encoder_s" in r} for m in MODELS)
    out = []
    for n in sorted(set(a) & set(b)):
        ra, rb = a[n], b[n]
        t, m = ra["encoder_s"] / rb["encoder_s"], ra["peak_mb"] / max(rb["peak_mb"], 1e-9)
        tc = ra["encoder_cpu_s"] / rb["encoder_cpu_s"]
        out.append({"patches": n, "audio_s": ra["seconds"], "ssamba_s": round(ra["encoder_s"], 3),
                    "ssast_s": round(rb["encoder_s"], 3), "time_ratio": round(t, 3),
                    "ssamba_faster_pct": round(100 * (1 - t), 1), "ssamba_cpu_s": round(ra["encoder_cpu_s"], 3),
                    "ssast_cpu_s": round(rb["encoder_cpu_s"], 3), "cpu_time_ratio": round(tc, 3),
                    "ssamba_peak_mb": ra["peak_mb"], "ssast_peak_mb": rb["peak_mb"], "memory_ratio": round(m, 3),
                    "ssamba_less_memory_pct": round(100 * (1 - m), 1)})
    return out


def md_table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table: ``header``, then ``rows`` of cells (first column left-aligned, the others right)."""
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def markdown(rows: list[dict]) -> str:
    return md_table(["patches", "audio", "SSAMBA-Tiny wall s (CPU s)", "SSAST-Tiny wall s (CPU s)",
                     "time SSAMBA/SSAST wall (CPU)", "SSAMBA peak MB", "SSAST peak MB", "memory SSAMBA/SSAST"],
                    [[f"{r['patches']:,}", f"{r['audio_s']:g} s", f"{r['ssamba_s']:.2f} ({r['ssamba_cpu_s']:.2f})",
                      f"{r['ssast_s']:.2f} ({r['ssast_cpu_s']:.2f})",
                      f"{r['time_ratio']:.2f} ({r['cpu_time_ratio']:.2f})",
                      f"{r['ssamba_peak_mb']:.0f}", f"{r['ssast_peak_mb']:.0f}", f"{r['memory_ratio']:.2f}"]
                     for r in rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patches", nargs="+", type=int, default=[1000, 2000, 5000, 10000, 22000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--single-above", type=float, default=20.0, help="one call when a call takes longer (s)")
    ap.add_argument("--timeout", type=float, default=420.0, help="per child process (seconds)")
    ap.add_argument("--out", default="benchmarks/results/ssamba_vs_ssast_cpu.json")
    ap.add_argument("--merge", action="store_true", help="add the new --patches to the runs already in --out")
    ap.add_argument("--child", nargs=2, metavar=("MODEL", "PATCHES"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.repeats, args.single_above)))
        return
    prev = json.loads(Path(args.out).read_text()) if args.merge and Path(args.out).exists() else {}
    rows: dict[str, list[dict]] = {m: list(prev.get("runs", {}).get(m, [])) for m in MODELS}
    done = {r["patches"] for r in rows[MODELS[0]]}
    session: dict = {"patches": [n for n in args.patches if n not in done], "load_avg_at_start": os.getloadavg()}
    t0 = time.perf_counter()
    for i, n in enumerate(session["patches"]):
        for m in (MODELS if i % 2 == 0 else MODELS[::-1]):
            rows[m].append(run_child(m, n, args))
            print(m, json.dumps(rows[m][-1]), flush=True)
    session.update(wall_s=round(time.perf_counter() - t0, 1), load_avg_at_end=os.getloadavg())
    result: dict = {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "threads": 1,
                    "torch": torch.__version__, "models": list(MODELS), "paper": PAPER,
                    "sessions": prev.get("sessions", []) + [session],
                    "runs": {m: sorted(r, key=lambda x: x["patches"]) for m, r in rows.items()}}
    rows = result["runs"]
    result["table"] = table(rows)
    result["growth_exponent"] = {m: {"time": growth(r, "encoder_s"), "memory": growth(r, "peak_mb")}
                                 for m, r in rows.items()}
    per_n = {r["seconds"]: r["patches"] for r in rows[MODELS[0]]}
    result["crossover"] = {}
    for clock, key in (("wall", "encoder_s"), ("cpu", "encoder_cpu_s")):
        timed = {m: [{**r, "encoder_s": r[key]} for r in rows[m] if key in r] for m in MODELS}
        cross = crossover(timed[MODELS[0]], timed[MODELS[1]])
        result["crossover"][clock] = {
            "ssamba_stays_faster_from_patches": per_n.get(cross["stays_faster_from_s"]),
            "crossover_patches": None if cross["crossover_s"] is None else round(cross["crossover_s"] * 100 / 16 * GF),
            **cross}
    print(markdown(result["table"]))
    print("crossover:", json.dumps(result["crossover"]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
