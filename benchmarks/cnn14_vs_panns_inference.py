"""Benchmark: audiozoo panns_cnn14 vs panns_inference.models.Cnn14, same weights, one process.

End to end on one 10 s clip at 32 kHz on CPU (waveform -> log-mel -> CNN14 -> clip-wise probabilities), both
sides including their front-end (torchlibrosa for the reference, ``model.frontend`` for audiozoo):

- ``ref_fp32``, ``ref_bf16_autocast`` (``torch.autocast("cpu", bfloat16)`` around the whole forward);
- ``az_fp32``, ``az_fp32_channels_last`` (model in ``torch.channels_last``), ``az_bf16_autocast`` (front-end
  in fp32, the network under autocast) and ``az_bf16_channels_last`` (bf16 weights, channels_last).

Rounds run every variant once in a rotated order (the machine may be shared); medians, min/max and paired
per-round ratios are reported, with a large ``torch.matmul`` in fp32/bf16 timed in the same rounds for the
achieved-FLOP/s column. Checks in the same run: fp32 probabilities vs the reference (max abs), and top-1
agreement of the bf16 paths with the fp32 reference on real recordings (random weights: a rounding check).

``panns_inference`` downloads a label CSV at import; a local 527-row stand-in is written to a temporary
HOME first (as tests/models/test_panns.py does), so the run needs no network.

    python benchmarks/cnn14_vs_panns_inference.py --repeats 5 --out benchmarks/results/cnn14_cpu.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from ast_vs_transformers import _cpu_name, _gemm, _shared_data, _stats  # noqa: E402

from audiozoo.testing import import_panns_inference_offline  # noqa: E402

SR = 32000
REAL_CLIPS = [
    "esc50_samples/1-100032-A-0.wav", "esc50_samples/2-100648-A-43.wav", "esc50_samples/3-103051-C-19.wav",
    "speech_sources/cmu_arctic/cmu_arctic_us_aew_a0001.wav", "librosa/sorohanro_-_solo-trumpet-06.ogg",
    "librosa/admiralbob77_-_Choice_-_Drum-bass.ogg",
]


def _randomise_(model: torch.nn.Module, seed: int = 1) -> None:
    """Random weights and BatchNorm statistics far from identity (so every layer matters)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "extractor" in name:  # torchlibrosa's frozen DFT / mel matrices
                continue
            fan = p[0].numel() if p.ndim > 1 else 1
            p.copy_(torch.randn(p.shape, generator=g) / fan**0.5)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
        model.bn0.running_mean.copy_(-40 + 10 * torch.randn(model.bn0.running_mean.shape, generator=g))
        model.bn0.running_var.copy_(200 + 100 * torch.rand(model.bn0.running_var.shape, generator=g))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import audiozoo
    from audiozoo.models.classify.panns import checkpoint_filter_fn

    load0 = os.getloadavg()
    ref = import_panns_inference_offline().Cnn14(SR, 1024, 320, 64, 50, 14000, 527).eval()
    _randomise_(ref)
    az = audiozoo.create_model("panns_cnn14").eval()
    az.load_state_dict(checkpoint_filter_fn(ref.state_dict(), az))
    az_cl = copy.deepcopy(az).to(memory_format=torch.channels_last)
    az_bf16_cl = copy.deepcopy(az).to(torch.bfloat16).to(memory_format=torch.channels_last)
    g = torch.Generator().manual_seed(0)
    wav = 0.1 * torch.randn(1, int(SR * args.seconds), generator=g)

    def ref_fwd(w, ctx=nullcontext):
        with torch.inference_mode(), ctx():
            return ref(w)["clipwise_output"].float()

    def az_fwd(model, w, ctx=nullcontext, dtype=torch.float32):
        with torch.inference_mode():
            feats, _ = model.frontend(w)  # fp32 front-end: bf16 dB values round by up to 0.25 dB
            with ctx():
                return torch.sigmoid(model(feats.to(dtype)).float())

    ac = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
    variants = {
        "ref_fp32": lambda w=wav: ref_fwd(w), "ref_bf16_autocast": lambda w=wav: ref_fwd(w, ac),
        "az_fp32": lambda w=wav: az_fwd(az, w), "az_fp32_channels_last": lambda w=wav: az_fwd(az_cl, w),
        "az_bf16_autocast": lambda w=wav: az_fwd(az, w, ac),
        "az_bf16_channels_last": lambda w=wav: az_fwd(az_bf16_cl, w, dtype=torch.bfloat16),
    }
    gemm32, gflop = _gemm(torch.float32)
    gemm16, _ = _gemm(torch.bfloat16)
    timed = {**variants, "gemm_fp32": gemm32, "gemm_bf16": gemm16}
    for f in timed.values():
        f()
    times: dict[str, list[float]] = {k: [] for k in timed}
    names = list(timed)
    for i in range(args.repeats):
        for k in names[i % len(names):] + names[: i % len(names)]:
            t = time.perf_counter()
            timed[k]()
            times[k].append(time.perf_counter() - t)

    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        variants["az_fp32"]()
    flops = fc.get_total_flops()
    gemm_rate = {dt: gflop / statistics.median(times[f"gemm_{dt}"]) for dt in ("fp32", "bf16")}
    res = {}
    for k in variants:
        rate = flops / statistics.median(times[k])
        dt = "fp32" if "fp32" in k else "bf16"
        res[k] = {**_stats(times[k]), "gflop_per_s": round(rate / 1e9, 1),
                  "fraction_of_gemm_rate": round(rate / gemm_rate[dt], 3), "vs_gemm": dt}

    def ratio(a: str, b: str) -> dict:
        paired = [ta / tb for ta, tb in zip(times[a], times[b])]
        return {"ratio_of_medians": round(statistics.median(times[a]) / statistics.median(times[b]), 3),
                "paired_median": round(statistics.median(paired), 3),
                "paired_min": round(min(paired), 3), "paired_max": round(max(paired), 3)}

    ratios = {f"{a} / {b}": ratio(a, b) for a, b in (
        ("az_fp32", "ref_fp32"), ("az_fp32_channels_last", "ref_fp32"), ("az_bf16_autocast", "ref_bf16_autocast"),
        ("az_bf16_channels_last", "ref_bf16_autocast"), ("az_bf16_channels_last", "ref_fp32"))}
    p_ref = variants["ref_fp32"]()
    checks = {"random_input_max_abs_prob_err": {k: float((variants[k]() - p_ref).abs().max()) for k in variants
                                                if k != "ref_fp32"}}
    data = _shared_data()
    if data is not None:
        from audiozoo.dsp.io import load_audio

        rows = []
        for rel in REAL_CLIPS:
            w, _ = load_audio(data / rel, sample_rate=SR)
            w = w.reshape(1, -1)[:, : int(SR * args.seconds)]
            p = {k: variants[k](w)[0] for k in variants}
            top2 = p["ref_fp32"].topk(2).values
            rows.append({"clip": rel, "ref_top1": int(p["ref_fp32"].argmax()),
                         "margin_top1_top2": round(float(top2[0] - top2[1]), 5),
                         **{f"{k}_top1": int(v.argmax()) for k, v in p.items() if k != "ref_fp32"},
                         "az_fp32_max_abs_err": float((p["az_fp32"] - p["ref_fp32"]).abs().max())})
        checks["real_clips_top1"] = {
            "n": len(rows), "clips": rows, "min_margin": min(r["margin_top1_top2"] for r in rows),
            **{f"{k}_agree": sum(r[f"{k}_top1"] == r["ref_top1"] for r in rows) for k in variants if k != "ref_fp32"},
        }
    report = {
        "model": "panns_cnn14 (80.75M), random weights shared with panns_inference Cnn14 via the converter",
        "input": f"1 x {args.seconds:g} s at 32 kHz, end to end incl. front-end", "device": "cpu",
        "threads": args.threads, "torch": torch.__version__, "machine": platform.machine(), "cpu": _cpu_name(),
        "repeats": args.repeats,
        "shared_machine_loadavg_before_after": [round(load0[0], 2), round(os.getloadavg()[0], 2)],
        "flops_per_forward": flops, "gemm_gflop_per_s": {k: round(v / 1e9, 1) for k, v in gemm_rate.items()},
        "results": res, "ratios": ratios, "checks": checks,
    }
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
