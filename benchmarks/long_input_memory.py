"""Benchmark: peak memory and wall time of every CLI verb on a long file (does memory stay bounded?).

Synthesises a 16 kHz mono PCM-16 WAV (and, for ``separate``, a stereo 44.1 kHz one) of each length in ``--minutes``
(default 1 and 10): a speech-like signal (harmonic glides with syllable-rate amplitude modulation, noise bursts, and
one second of silence every 30 s), deterministic. Each verb runs as ``audiozoo <verb> ...`` in its own child
process; the child's peak resident set size comes from ``os.wait4`` (``ru_maxrss`` of that child alone) and its wall
time from the parent. A child that only imports audiozoo and torch gives the fixed baseline. ``growth_mb_per_min``
is the slope of peak RSS between the shortest and the longest file: a verb whose memory is bounded has a slope near
0; one that holds the whole recording (or its features) in memory grows linearly. ``vocode`` uses ``--vocoder``
(default APNet-FreeV, fast; the CLI's default HiFi-GAN V1 runs ~1.5x real time on one core); ``separate`` uses
``--separator`` (default the shipped 4-stem ``demucs_small.music4``).

    python benchmarks/long_input_memory.py --minutes 1 10 --out benchmarks/results/long_input_memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

SR = 16000
RUN = "import sys; from audiozoo.cli import main; sys.exit(main(sys.argv[1:]))"
BASELINE = "import torch, audiozoo.cli, audiozoo.pipelines"


def synth(path: Path, minutes: float, block_s: int = 30, sr: int = SR, channels: int = 1) -> None:
    """Write ``minutes`` of speech-like audio block by block (the parent never holds the whole file); with
    ``channels`` 2 the second channel is the first delayed by 5 ms (a stereo "song" for music separators)."""
    rng = np.random.default_rng(0)
    n_blocks = int(np.ceil(minutes * 60 / block_s))
    total = int(round(minutes * 60 * sr))
    with sf.SoundFile(path, "w", sr, channels, subtype="PCM_16") as f:
        written = 0
        for _ in range(n_blocks):
            n = min(block_s * sr, total - written)
            t = np.arange(n) / sr
            f0 = 120 + 60 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 6))  # a slow pitch glide
            phase = 2 * np.pi * np.cumsum(f0) / sr
            x = sum(np.sin(k * phase) / k for k in range(1, 12))
            x *= 0.5 * (1 + np.sin(2 * np.pi * 4 * t))  # ~4 syllables per second
            x += 0.3 * rng.standard_normal(n) * (np.sin(2 * np.pi * 0.7 * t) > 0.9)  # fricative-like bursts
            x = 0.25 * x / np.abs(x).max()
            x[-sr:] = 0.0  # one second of silence per block
            if channels == 2:
                d = int(0.005 * sr)
                x = np.stack([x, np.concatenate([np.zeros(d), x[:-d]])], axis=1)
            f.write(x.astype(np.float32))
            written += n


def run_child(args: list[str], code: str = RUN) -> dict:
    """Run ``python -c code args``; its exit status, wall seconds and peak RSS in MB (``os.wait4``: this child's
    own ``ru_maxrss``, not the maximum over all children as ``RUSAGE_CHILDREN`` would give)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        err.seek(0)
        tail = err.read().decode(errors="replace").strip().splitlines()[-1:]  # the error line, if any
    return {"rc": proc.returncode, "wall_s": round(wall, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            **({"error": tail[0]} if proc.returncode and tail else {})}


def verbs(wav: Path, out: Path, vocoder: str | None, song: Path | None, separator: str) -> dict[str, list[str]]:
    return {
        "features": ["features", str(wav), "-o", str(out / "features")],
        "tag": ["tag", str(wav), "-m", "ast_tiny.fsdd_digits"],
        "transcribe": ["transcribe", str(wav), "-o", str(out / "transcribe")],
        "vocode": ["vocode", str(wav), "-o", str(out / "vocode.wav"), *(["-m", vocoder] if vocoder else [])],
        "upsample": ["upsample", str(wav), "-o", str(out / "upsample.wav")],
        # a music separator gets the stereo 44.1 kHz "song" (the CLI resamples to the model's rate)
        "separate": ["separate", str(song or wav), "-o", str(out / "separate"), "-m", separator],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0])
    ap.add_argument("--verbs", nargs="+", default=None,
                    help="subset of: features tag transcribe vocode upsample separate")
    ap.add_argument("--separator", default="demucs_small.music4",
                    help="separate model; a stereo separator reads a stereo 44.1 kHz version of the file")
    ap.add_argument("--vocoder", default="apnet.freev_speech16k",
                    help="vocode model ('' for the CLI default, HiFi-GAN V1: ~1.5x real time on one core here)")
    ap.add_argument("--out", default="benchmarks/results/long_input_memory.json")
    args = ap.parse_args()

    results: dict = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                 "torch": torch.__version__, "python": platform.python_version(),
                                 "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
                     "sample_rate": SR, "vocoder": args.vocoder or "CLI default",
                     "separator": args.separator + " (stereo 44.1 kHz input)",
                     "baseline": run_child([], BASELINE), "runs": {}}
    print(f"baseline (import only): {results['baseline']['peak_rss_mb']} MB", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in sorted(args.minutes):
            wav = Path(tmp) / f"long_{minutes:g}min.wav"
            synth(wav, minutes)
            song = None
            if not args.verbs or "separate" in args.verbs:
                song = Path(tmp) / f"song_{minutes:g}min.wav"
                synth(song, minutes, sr=44100, channels=2)
            out = Path(tmp) / f"out_{minutes:g}"
            runs = results["runs"].setdefault(f"{minutes:g}", {})
            for verb, argv in verbs(wav, out, args.vocoder or None, song, args.separator).items():
                if args.verbs and verb not in args.verbs:
                    continue
                runs[verb] = r = run_child(argv)
                print(f"{minutes:g} min  {verb:<10} rc={r['rc']}  peak {r['peak_rss_mb']:8.1f} MB  "
                      f"{r['wall_s']:7.1f} s  {r.get('error', '')}", flush=True)
    keys = sorted(results["runs"], key=float)
    if len(keys) >= 2:
        lo, hi = keys[0], keys[-1]
        results["growth_mb_per_min"] = {
            v: round((results["runs"][hi][v]["peak_rss_mb"] - results["runs"][lo][v]["peak_rss_mb"])
                     / (float(hi) - float(lo)), 1)
            for v in results["runs"][hi] if v in results["runs"][lo]}
        print("growth (MB per minute of audio):", results["growth_mb_per_min"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
