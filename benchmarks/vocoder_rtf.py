"""Benchmark: CPU real-time factor of every registered canonical vocoder config, fp32 and bf16.

Each vocoder vocodes the mel of the same 10 s of real speech (a SiSec 2011 source from ../shared/data,
resampled to the model's rate; white noise when the data is absent), computed by the model's own front-end
(so the frame count is ``10 s * sample_rate / hop``). Weights are random (speed does not depend on them) with
weight norm folded in, as for inference. ``RTF = wall seconds / 10 s`` (below 1: faster than real time);
``ratio_to_hifigan_v1`` = RTF / RTF(hifigan_v1) in the same precision. bf16 is ``torch.autocast("cpu",
bfloat16)`` around fp32 weights. Every round runs each (model, precision) once in a rotated order, so machine
noise (the machine may be shared) hits all alike; the median over ``--repeats`` rounds is reported, after
one short warm-up call each (64 frames). Griffin-Lim (32 and 100 iterations, on APNet's 16 kHz mel) is timed alongside.

    python benchmarks/vocoder_rtf.py --repeats 3 --threads 2 --out benchmarks/results/vocoder_rtf_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from contextlib import nullcontext
from pathlib import Path

import torch

import audiozoo
from audiozoo.dsp.io import load_audio, resample
from audiozoo.nn.griffinlim import GriffinLimVocoder

ROOT = Path(__file__).resolve().parents[1]
SECONDS = 10.0


def speech_10s(sample_rate: int) -> tuple[torch.Tensor, str]:
    root = Path(os.environ.get("AUDIOZOO_SHARED_DATA", ROOT.parent / "shared" / "data"))
    path = root / "speech_sources" / "sisec2011_speech" / "dev1_male4_src_1.wav"
    n = int(SECONDS * sample_rate)
    if path.is_file():
        wav, sr = load_audio(path, mono=True)
        wav = resample(wav, sr, sample_rate) if sr != sample_rate else wav
        wav = torch.nn.functional.pad(wav[:n], (0, max(0, n - wav.shape[-1])))
        return wav, str(path)
    return 0.1 * torch.randn(n, generator=torch.Generator().manual_seed(0)), "white noise (shared data absent)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default=None, help="comma-separated subset (default: every vocoder)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "vocoder_rtf_cpu.json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    names = a.models.split(",") if a.models else audiozoo.list_models("vocoder")
    systems, meta = {}, {}
    for name in names:
        torch.manual_seed(0)
        m = audiozoo.create_model(name).eval()
        if hasattr(m, "remove_weight_norm"):
            m.remove_weight_norm()
        wav, src = speech_10s(int(m.sample_rate))
        with torch.no_grad():
            mel = m.frontend(wav.unsqueeze(0))[0]
        systems[name] = (m, mel)
        meta[name] = {"sample_rate": int(m.sample_rate), "hop_length": int(m.hop_length), "frames": mel.shape[-1],
                      "params": sum(p.numel() for p in m.parameters()), "input": src}
        if hasattr(m, "fuse_for_inference"):  # the fast CPU path the vocode pipeline uses (fp32 only)
            systems[f"{name}_fused"] = (m.fuse_for_inference(), mel)
            meta[f"{name}_fused"] = dict(meta[name])
    if "apnet" in systems:
        for it in (32, 100):
            gl = GriffinLimVocoder.like(systems["apnet"][0], n_iter=it)
            systems[f"griffinlim_{it}"] = (gl, systems["apnet"][1])
            meta[f"griffinlim_{it}"] = {**meta["apnet"], "params": 0}
    runs = [(n, p) for n in systems for p in (("fp32",) if n.endswith("_fused") else ("fp32", "bf16"))]
    times: dict[tuple[str, str], list[float]] = {r: [] for r in runs}

    def call(name: str, prec: str, warmup: bool = False) -> float:
        m, mel = systems[name]
        mel = mel[..., :64] if warmup else mel  # a short warm-up call (oneDNN kernel selection, allocations)
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if prec == "bf16" else nullcontext()
        t0 = time.perf_counter()
        with torch.no_grad(), ctx:
            m(mel)
        return time.perf_counter() - t0

    for r in runs:  # warm-up
        call(*r, warmup=True)
    for k in range(a.repeats):
        order = runs[k % len(runs):] + runs[:k % len(runs)]
        for r in order:
            times[r].append(call(*r))
        print(f"round {k + 1}/{a.repeats} done", flush=True)
    results: dict[str, dict] = {}
    for (name, prec), ts in times.items():
        results.setdefault(name, dict(meta[name]))[prec] = {"rtf_median": statistics.median(ts) / SECONDS,
                                                            "rtf_min": min(ts) / SECONDS,
                                                            "rtf_max": max(ts) / SECONDS}
    if "hifigan_v1" in results:
        for r in results.values():
            for prec in ("fp32", "bf16"):
                if prec in r:
                    v1 = results["hifigan_v1"][prec]["rtf_median"]
                    r[prec]["ratio_to_hifigan_v1"] = r[prec]["rtf_median"] / v1
    doc = {"benchmark": "vocoder CPU real-time factor, 10 s of speech", "seconds": SECONDS, "threads": a.threads,
           "repeats": a.repeats, "torch": torch.__version__, "platform": platform.platform(),
           "processor": platform.processor(), "cpu_count": os.cpu_count(),
           "load_average_at_end": os.getloadavg(), "results": results}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"{'model':<20} {'params':>10} {'RTF fp32':>9} {'RTF bf16':>9} {'/V1 fp32':>9} {'/V1 bf16':>9}")
    for name, r in results.items():
        bf = r.get("bf16", {})
        print(f"{name:<24} {r['params'] / 1e6:>9.2f}M {r['fp32']['rtf_median']:>9.3f} "
              f"{bf.get('rtf_median', float('nan')):>9.3f} {r['fp32'].get('ratio_to_hifigan_v1', float('nan')):>9.2f} "
              f"{bf.get('ratio_to_hifigan_v1', float('nan')):>9.2f}")


if __name__ == "__main__":
    main()
