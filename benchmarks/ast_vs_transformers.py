"""Benchmark: audiozoo AST vs transformers' ASTForAudioClassification, same weights, one process.

Inference on one 10 s clip (1024 frames) of the canonical ast_base_p16 on CPU, fp32 and bf16 side by side:

- ``hf_fp32``, ``hf_bf16_autocast`` (fp32 weights under ``torch.autocast("cpu", bfloat16)``, the usual HF
  mixed-precision path) and ``hf_bf16_weights`` (``model.to(bfloat16)``);
- ``az_fp32``, ``az_bf16_weights`` (the same module in bf16) and the fast path
  ``az_*_fused`` = :func:`audiozoo.nn.transformer.fuse_for_inference` (oneDNN prepacked GEMMs with the
  bias, GELU and residual add fused in; SDPA flash attention).

Every round runs each variant once, in a rotated order, so machine noise hits all of them alike (the machine
may be shared); medians, min/max and per-round paired ratios are reported. A large ``torch.matmul`` in fp32
and in bf16 is timed in the same rounds: the achieved FLOP/s of each variant (FLOPs counted by
``torch.utils.flop_counter``) is reported against that measured GEMM rate.

Correctness, in the same run: fp32 logits vs HF (max abs / relative); top-1 agreement of every bf16 path
with HF fp32 on real recordings from ../shared/data (random weights: shows rounding does not move the
argmax, with the top-1/top-2 margin stated), and on the trained ``ast_tiny.fsdd_digits`` weight set over the
250 FSDD test clips (takes 0-4): fp32 eager vs bf16 fused, agreement and accuracy.

    python benchmarks/ast_vs_transformers.py --repeats 5 --out benchmarks/results/ast_cpu.json
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
sys.path.insert(0, str(ROOT / "tests"))

REAL_CLIPS = [  # real recordings (../shared/data), cut/padded to 10.24 s by the AST front-end
    "esc50_samples/1-100032-A-0.wav", "esc50_samples/2-100648-A-43.wav", "esc50_samples/3-103051-C-19.wav",
    "speech_sources/cmu_arctic/cmu_arctic_us_aew_a0001.wav", "librosa/sorohanro_-_solo-trumpet-06.ogg",
    "librosa/admiralbob77_-_Choice_-_Drum-bass.ogg",
]


def _shared_data() -> Path | None:
    p = Path(os.environ.get("AUDIOZOO_SHARED_DATA", ROOT.parent / "shared" / "data"))
    return p if p.is_dir() else None


def _stats(ts: list[float]) -> dict:
    return {"median_s": round(statistics.median(ts), 4), "min_s": round(min(ts), 4), "max_s": round(max(ts), 4),
            "all_s": [round(t, 4) for t in ts]}


def _flops(model, x) -> int:
    """FLOPs of one forward: GEMMs/conv from ``FlopCounterMode``, plus attention's two matmuls (4 B N^2 D per
    layer), which the counter does not see inside the CPU flash-attention kernel."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc, torch.inference_mode():
        model(x)
    c = model.config
    n = model.patch_embed.num_patches + model.num_prefix_tokens
    return fc.get_total_flops() + c.depth * 4 * x.shape[0] * n * n * c.embed_dim


def _gemm(dtype: torch.dtype, n: int = 2048):
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    return (lambda: torch.matmul(a, b)), 2 * n**3


def _top1_checks(hf, az, fused_fp32, fused_bf16, data: Path) -> dict:
    """Top-1 of each bf16 path vs HF fp32 on real clips (same random weights on both sides)."""
    from audiozoo.dsp.io import load_audio

    rows = []
    for rel in REAL_CLIPS:
        wav, _ = load_audio(data / rel, sample_rate=16000)
        feats, _ = az.frontend(wav[..., : 16000 * 10])  # (1, 128, 1024)
        with torch.inference_mode():
            ref = hf(feats.transpose(1, 2)).logits[0]
            ours32 = fused_fp32(feats)[0]
            with torch.autocast("cpu", dtype=torch.bfloat16):
                hf_ac = hf(feats.transpose(1, 2)).logits[0].float()
            fz = fused_bf16(feats.bfloat16())[0].float()
        top2 = ref.topk(2).values
        rows.append({"clip": rel, "ref_top1": int(ref.argmax()), "margin_top1_top2": round(float(top2[0] - top2[1]), 4),
                     "az_fp32_fused_rel_err": float((ours32 - ref).abs().max() / ref.abs().max()),
                     "az_bf16_fused_top1": int(fz.argmax()), "hf_bf16_autocast_top1": int(hf_ac.argmax()),
                     "az_bf16_fused_max_abs_err": round(float((fz - ref).abs().max()), 4)})
    return {"clips": rows, "n": len(rows),
            "az_bf16_fused_agree": sum(r["az_bf16_fused_top1"] == r["ref_top1"] for r in rows),
            "hf_bf16_autocast_agree": sum(r["hf_bf16_autocast_top1"] == r["ref_top1"] for r in rows),
            "az_fp32_fused_max_rel_err": max(r["az_fp32_fused_rel_err"] for r in rows),
            "min_margin": min(r["margin_top1_top2"] for r in rows)}


def _fsdd_check(data: Path) -> dict:
    """Trained ast_tiny.fsdd_digits: fp32 eager vs bf16 fused on the FSDD test split (takes 0-4)."""
    import audiozoo
    from audiozoo.dsp.io import load_audio
    from audiozoo.nn.transformer import fuse_for_inference

    m = audiozoo.create_model("ast_tiny.fsdd_digits").eval()
    fused = fuse_for_inference(m, torch.bfloat16)
    files = sorted(p for p in (data / "fsdd").glob("*.wav") if int(p.stem.split("_")[2]) < 5)
    y, p32, p16 = [], [], []
    for f in files:
        wav, _ = load_audio(f, sample_rate=16000)
        feats, lengths = m.frontend(wav)
        with torch.inference_mode():
            p32.append(int(m(feats, lengths).argmax()))
            p16.append(int(fused(feats.bfloat16(), lengths).argmax()))
        y.append(int(f.stem.split("_")[0]))
    n = len(y)
    return {"n_clips": n, "top1_agree": sum(a == b for a, b in zip(p32, p16)),
            "acc_fp32": round(sum(a == t for a, t in zip(p32, y)) / n, 4),
            "acc_bf16_fused": round(sum(a == t for a, t in zip(p16, y)) / n, 4)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--skip-checks", action="store_true", help="timing only (no real-clip / FSDD checks)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from audiozoo.nn.transformer import fuse_for_inference
    from models.test_ast import _hf_pair  # same random weights through the converter

    load0 = os.getloadavg()
    hf, az = _hf_pair()
    hf_bf16 = copy.deepcopy(hf).to(torch.bfloat16)
    az_bf16 = fuse_for_inference(az, torch.bfloat16)  # built before the unfused bf16 copy below
    az_fp32_fused = fuse_for_inference(az)
    az_bf16_plain = copy.deepcopy(az).to(torch.bfloat16)
    x = torch.randn(args.batch, 1024, 128)  # HF layout (B, L, F)
    xt = x.transpose(1, 2).contiguous()  # audiozoo layout (B, F, L)
    xb, xtb = x.bfloat16(), xt.bfloat16()
    ac = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731

    def run(model, inp, ctx=nullcontext):
        def f():
            with torch.inference_mode(), ctx():
                model(inp)
        return f

    variants = {
        "hf_fp32": run(hf, x), "hf_bf16_autocast": run(hf, x, ac), "hf_bf16_weights": run(hf_bf16, xb),
        "az_fp32": run(az, xt), "az_fp32_fused": run(az_fp32_fused, xt),
        "az_bf16_weights": run(az_bf16_plain, xtb), "az_bf16_fused": run(az_bf16, xtb),
    }
    gemm32, gflop = _gemm(torch.float32)
    gemm16, _ = _gemm(torch.bfloat16)
    timed = {**variants, "gemm_fp32": gemm32, "gemm_bf16": gemm16}
    for f in timed.values():  # warm-up (oneDNN primitive caches, allocator)
        f()
    times: dict[str, list[float]] = {k: [] for k in timed}
    names = list(timed)
    for i in range(args.repeats):  # rotate the order each round so no variant always runs first/last
        for k in names[i % len(names):] + names[: i % len(names)]:
            t = time.perf_counter()
            timed[k]()
            times[k].append(time.perf_counter() - t)
    flops = _flops(az, xt)
    gemm_rate = {dt: gflop / statistics.median(times[f"gemm_{dt}"]) for dt in ("fp32", "bf16")}
    res = {}
    for k in variants:
        med = statistics.median(times[k])
        rate = flops / med
        dt = "fp32" if k.endswith(("fp32", "fp32_fused")) else "bf16"
        res[k] = {**_stats(times[k]), "gflop_per_s": round(rate / 1e9, 1),
                  "fraction_of_gemm_rate": round(rate / gemm_rate[dt], 3), "vs_gemm": dt}

    def ratio(a: str, b: str) -> dict:  # time(a) / time(b): < 1 means a is faster
        paired = [ta / tb for ta, tb in zip(times[a], times[b])]
        return {"ratio_of_medians": round(statistics.median(times[a]) / statistics.median(times[b]), 3),
                "paired_median": round(statistics.median(paired), 3),
                "paired_min": round(min(paired), 3), "paired_max": round(max(paired), 3)}

    ratios = {
        "az_bf16_fused / hf_bf16_autocast": ratio("az_bf16_fused", "hf_bf16_autocast"),
        "az_bf16_fused / hf_bf16_weights": ratio("az_bf16_fused", "hf_bf16_weights"),
        "az_bf16_weights / hf_bf16_weights": ratio("az_bf16_weights", "hf_bf16_weights"),
        "az_fp32 / hf_fp32": ratio("az_fp32", "hf_fp32"),
        "az_fp32_fused / hf_fp32": ratio("az_fp32_fused", "hf_fp32"),
        "az_bf16_fused / hf_fp32": ratio("az_bf16_fused", "hf_fp32"),
    }
    with torch.inference_mode():
        ref = hf(x).logits
        logit_err = {k: float((m(xt).float() - ref).abs().max()) for k, m in
                     (("az_fp32", az), ("az_fp32_fused", az_fp32_fused))}
        logit_err["az_bf16_fused"] = float((az_bf16(xtb).float() - ref).abs().max())
    logit_err["ref_max_abs"] = float(ref.abs().max())
    checks = {"random_input_max_abs_logit_err": logit_err}
    data = _shared_data()
    if data is not None and not args.skip_checks:
        checks["real_clips_top1"] = _top1_checks(hf, az, az_fp32_fused, az_bf16, data)
        checks["fsdd_ast_tiny"] = _fsdd_check(data)
    report = {
        "model": "ast_base_p16 (86.59M), random weights shared with HF via the converter",
        "batch": args.batch, "frames": 1024, "device": "cpu", "threads": args.threads, "torch": torch.__version__,
        "transformers": __import__("transformers").__version__, "machine": platform.machine(),
        "cpu": platform.processor() or _cpu_name(), "repeats": args.repeats,
        "shared_machine_loadavg_before_after": [round(v, 2) for v in (*load0[:1], os.getloadavg()[0])],
        "flops_per_forward": flops, "gemm_gflop_per_s": {k: round(v / 1e9, 1) for k, v in gemm_rate.items()},
        "gemm": "torch.matmul 2048x2048x2048, timed in the same rounds",
        "results": res, "ratios": ratios, "checks": checks,
    }
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
