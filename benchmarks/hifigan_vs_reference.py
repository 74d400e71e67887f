"""Benchmark: audiozoo HiFi-GAN V1 vs transformers' ``FastSpeech2ConformerHifiGan`` (HiFi-GAN V1), same weights.

Input: the log-mel of 862 x 256 samples (10.01 s) of real speech at 22.05 kHz (a SiSec 2011 source from
../shared/data, resampled; white noise when absent) by ``hifigan_v1.frontend`` -> 862 frames, batch 1, fp32.
Weights: the reference seeded with PyTorch's default conv init x1.5 (as ``tests/models/test_hifigan.py``: a
waveform far from 0 and from tanh saturation), loaded into audiozoo by the registered converter.

Variants (each called once per round in a rotated order, so machine noise hits all alike; the machine may
be shared: the load average is recorded; medians, min/max and per-round paired ratios to the reference):

- ``ref_hf``: the reference as ``transformers`` runs it (plain weights: HF stores them weight-norm-removed);
- ``az_eager_wn``: audiozoo as built for training (weight-norm parametrization recomputed every call);
- ``az_eager``: audiozoo with weight norm folded (``remove_weight_norm``), PyTorch's NCW conv1d;
- ablations of the fused path, cumulative: ``abl_channels_last`` (the same op sequence as conv2d on
  ``(B, C, 1, T)`` channels-last tensors), ``abl_prepacked`` (+ weights reordered once for oneDNN,
  still one op per elementwise step);
- ``az_fused``: ``model.fuse_for_inference()`` (+ leaky-ReLU / residual-add / tanh as oneDNN post-ops,
  in-place residual sums, one shared ``leaky_relu`` per MRF, the MRF's 1/3 folded into the next weights);
- with ``--jit``: ``ref_jit_frozen`` (``torch.jit.trace`` + ``freeze`` + ``optimize_for_inference``);
  with ``--compile``: ``ref_compiled`` (``torch.compile``, inductor with ``freezing=True``: weight prepacking
  and its own conv/pointwise fusion); compile / freeze time is reported, not timed in the rounds;
- ``gemm_fp32``: a 2048^3 matmul in the same rounds, the machine's achievable fp32 FLOP rate right then.

Wall time and process CPU time are both recorded (with 1 thread, CPU time is insensitive to time slicing by
other jobs). FLOPs by ``torch.utils.flop_counter`` on the reference. Output check in the same run: max abs
difference of each variant vs ``ref_hf`` on the full input.

    python benchmarks/hifigan_vs_reference.py --threads 2,1 --repeats 5 --no-ablations \
        --out benchmarks/results/hifigan_cpu_main.json
    python benchmarks/hifigan_vs_reference.py --threads 2,1 --repeats 3 --jit --compile   # + ablations
    python benchmarks/hifigan_vs_reference.py --per-conv --repeats 3 --out benchmarks/results/hifigan_per_conv_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
FRAMES, HOP, SR = 862, 256, 22050


def reference_v1(seed: int = 0) -> nn.Module:
    from transformers import FastSpeech2ConformerHifiGan, FastSpeech2ConformerHifiGanConfig

    torch.manual_seed(seed)
    ref = FastSpeech2ConformerHifiGan(FastSpeech2ConformerHifiGanConfig(normalize_before=False)).eval()
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d)):
                m.reset_parameters()
                m.weight.mul_(1.5)
    return ref


def speech_mel(model: nn.Module) -> tuple[torch.Tensor, str]:
    from vocoder_rtf import speech_10s

    wav, src = speech_10s(SR)
    n = FRAMES * HOP
    wav = F.pad(wav, (0, max(0, n - wav.shape[-1])))[:n]  # 10 s + 172 samples of zeros
    with torch.no_grad():
        mel = model.frontend(wav[None])[0]
    return mel, src


class EagerAblation:
    """The reference op sequence on ``(B, C, 1, T)`` channels-last tensors: ``packed=False`` calls
    ``F.conv2d``/``F.conv_transpose2d`` (oneDNN reorders the weight every call); ``packed=True`` calls the
    prepacked :class:`~audiozoo.nn.fast_conv.PackedConv1d` without post-ops. Elementwise steps stay separate."""

    def __init__(self, model: nn.Module, packed: bool):
        from audiozoo.nn.fast_conv import PackedConv1d

        self.m, self.packed, self.s = model, packed, model.lrelu_slope
        self.p = {n: PackedConv1d(c) for n, c in model.named_modules()
                  if isinstance(c, (nn.Conv1d, nn.ConvTranspose1d))} if packed else {}
        self.w = {n: c.weight.detach().unsqueeze(2).contiguous(memory_format=torch.channels_last)
                  for n, c in model.named_modules() if isinstance(c, (nn.Conv1d, nn.ConvTranspose1d))}

    def conv(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if self.packed:
            return self.p[name](x)
        c = self.m.get_submodule(name)
        if isinstance(c, nn.ConvTranspose1d):
            return F.conv_transpose2d(x, self.w[name], c.bias, (1, c.stride[0]), (0, c.padding[0]))
        return F.conv2d(x, self.w[name], c.bias, 1, (0, c.padding[0]), (1, c.dilation[0]))

    @torch.no_grad()
    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv("conv_pre", mel.unsqueeze(2).contiguous(memory_format=torch.channels_last))
        for i, mrf in enumerate(self.m.mrfs):
            x = self.conv(f"ups.{i}", F.leaky_relu(x, self.s))
            total = None
            for j, rb in enumerate(mrf.resblocks):
                h = x
                for k in range(len(rb.convs1)):
                    t = self.conv(f"mrfs.{i}.resblocks.{j}.convs1.{k}", F.leaky_relu(h, self.s))
                    h = self.conv(f"mrfs.{i}.resblocks.{j}.convs2.{k}", F.leaky_relu(t, self.s)) + h
                total = h if total is None else total + h
            x = total / len(mrf.resblocks)
        return torch.tanh(self.conv("conv_post", F.leaky_relu(x))).reshape(mel.shape[0], -1)


def per_conv_table(repeats: int) -> list[dict]:
    """Every distinct resblock conv shape of V1 at half the 10 s length, 1 thread, thread CPU time (best of
    ``repeats``, interleaved): PyTorch's NCW ``conv1d`` vs the prepacked channels-last oneDNN conv."""
    from audiozoo.nn.fast_conv import PackedConv1d

    torch.set_num_threads(1)
    rows = []
    for c, t in ((256, FRAMES * 8 // 2), (128, FRAMES * 64 // 2), (64, FRAMES * 128 // 2), (32, FRAMES * 256 // 2)):
        for k in (3, 7, 11):
            for d in (1, 3, 5):
                conv = nn.Conv1d(c, c, k, dilation=d, padding=d * (k - 1) // 2)
                x = torch.randn(1, c, t)
                pc, x4 = PackedConv1d(conv), x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
                fns = {"ncw": lambda conv=conv, x=x: conv(x), "nwc_packed": lambda pc=pc, x4=x4: pc(x4)}
                best: dict[str, float] = {}
                with torch.no_grad():
                    for f in fns.values():
                        f()
                    for _ in range(repeats):
                        for name, f in fns.items():
                            t0 = time.thread_time()
                            f()
                            best[name] = min(best.get(name, 1e9), time.thread_time() - t0)
                flop = 2 * c * c * k * t
                rows.append({"channels": c, "length": t, "kernel": k, "dilation": d,
                             **{f"{n}_gflop_per_s": round(flop / v / 1e9, 1) for n, v in best.items()}})
                print(rows[-1], flush=True)
    return rows


def _stats(ts: list[float]) -> dict:
    return {"median_s": round(statistics.median(ts), 4), "min_s": round(min(ts), 4), "max_s": round(max(ts), 4),
            "all_s": [round(t, 4) for t in ts]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", default="2,1", help="comma-separated thread counts, each a separate block")
    ap.add_argument("--no-ablations", action="store_true")
    ap.add_argument("--jit", action="store_true", help="add torch.jit trace+freeze of the reference")
    ap.add_argument("--compile", action="store_true", help="add torch.compile (inductor, freezing) of the reference")
    ap.add_argument("--per-conv", action="store_true", help="only the per-conv-shape table (NCW vs packed NWC)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "hifigan_cpu.json"))
    a = ap.parse_args()
    import audiozoo

    if a.per_conv:
        doc = {"benchmark": "HiFi-GAN V1 resblock conv shapes, 1 thread, thread CPU time, best of repeats",
               "torch": torch.__version__, "load_average_at_start": os.getloadavg(),
               "rows": per_conv_table(a.repeats), "load_average_at_end": os.getloadavg()}
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(doc, indent=2) + "\n")
        return

    load_start = os.getloadavg()
    ref = reference_v1()
    az_wn = audiozoo.create_model("hifigan_v1", pretrained=ref.state_dict()).eval()
    t0 = time.perf_counter()
    az_fused = az_wn.fuse_for_inference()
    fuse_s = time.perf_counter() - t0
    az = audiozoo.create_model("hifigan_v1", pretrained=ref.state_dict()).eval()
    az.remove_weight_norm()
    mel, src = speech_mel(az)
    mel_hf = mel.transpose(1, 2).contiguous()  # HF takes (B, L, n_mels)

    def az_call(model):
        return lambda: model(mel)[0]

    variants = {"ref_hf": lambda: ref(mel_hf), "az_eager_wn": az_call(az_wn), "az_eager": az_call(az),
                "az_fused": az_call(az_fused)}
    if not a.no_ablations:
        cl, pk = EagerAblation(az, packed=False), EagerAblation(az, packed=True)
        variants.update(abl_channels_last=lambda: cl(mel), abl_prepacked=lambda: pk(mel))
    extra: dict[str, float] = {"fuse_for_inference_s": round(fuse_s, 3)}
    if a.jit:
        t0 = time.perf_counter()
        with torch.no_grad():
            jm = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(ref, mel_hf[:, :64]).eval()))
            jm(mel_hf[:, :64])
        extra["jit_trace_freeze_s"] = round(time.perf_counter() - t0, 2)
        variants["ref_jit_frozen"] = lambda: jm(mel_hf)
    if a.compile:
        import torch._inductor.config as ic

        ic.freezing = True
        cm = torch.compile(ref)
        t0 = time.perf_counter()
        with torch.no_grad():
            cm(mel_hf)
        extra["compile_first_call_s"] = round(time.perf_counter() - t0, 2)
        variants["ref_compiled"] = lambda: cm(mel_hf)

    with torch.no_grad():  # outputs on the full input, same run
        expected = ref(mel_hf)
        check = {k: float((f() - expected).abs().max()) for k, f in variants.items() if k != "ref_hf"}
    gm = torch.randn(2048, 2048)
    timed = {**variants, "gemm_fp32": lambda: gm @ gm}
    flops = _flops(ref, mel_hf)
    blocks = {}
    for nt in (int(t) for t in a.threads.split(",")):
        torch.set_num_threads(nt)
        with torch.no_grad():
            for f in timed.values():  # warm-up: oneDNN primitive caches, allocator
                f()
        wall: dict[str, list[float]] = {k: [] for k in timed}
        cpu: dict[str, list[float]] = {k: [] for k in timed}
        names = list(timed)
        for r in range(a.repeats):
            for k in names[r % len(names):] + names[: r % len(names)]:
                c0, t0 = time.process_time(), time.perf_counter()
                with torch.no_grad():
                    timed[k]()
                wall[k].append(time.perf_counter() - t0)
                cpu[k].append(time.process_time() - c0)
            print(f"threads {nt}: round {r + 1}/{a.repeats} " + " ".join(f"{k}={wall[k][-1]:.2f}" for k in names),
                  flush=True)
        gemm_rate = 2 * 2048**3 / statistics.median(wall["gemm_fp32"])
        res = {}
        for k in variants:
            med = statistics.median(wall[k])
            paired = [tr / tk for tr, tk in zip(wall["ref_hf"], wall[k])]
            paired_cpu = [tr / tk for tr, tk in zip(cpu["ref_hf"], cpu[k])]
            res[k] = {"wall": _stats(wall[k]), "cpu": _stats(cpu[k]), "rtf": round(med / (FRAMES * HOP / SR), 4),
                      "speedup_vs_ref_paired_median": round(statistics.median(paired), 3),
                      "speedup_vs_ref_paired_min": round(min(paired), 3),
                      "speedup_vs_ref_paired_max": round(max(paired), 3),
                      "speedup_vs_ref_cpu_time_paired_median": round(statistics.median(paired_cpu), 3),
                      "gflop_per_s": round(flops / med / 1e9, 1),
                      "fraction_of_gemm_rate": round(flops / med / gemm_rate, 3)}
        blocks[str(nt)] = {"gemm_fp32_gflop_per_s": round(gemm_rate / 1e9, 1), "gemm_wall": _stats(wall["gemm_fp32"]),
                           "variants": res, "load_average_after": os.getloadavg()}
    doc = {"benchmark": "HiFi-GAN V1 fp32 CPU inference, audiozoo vs transformers FastSpeech2ConformerHifiGan",
           "frames": FRAMES, "seconds_of_audio": FRAMES * HOP / SR, "batch": 1, "input": src,
           "gflop_per_forward": round(flops / 1e9, 1), "repeats": a.repeats, "torch": torch.__version__,
           "transformers": __import__("transformers").__version__, "platform": platform.platform(),
           "cpu_count": os.cpu_count(), "load_average_at_start": load_start, "setup": extra,
           "max_abs_diff_vs_ref": check, "ref_output_std": float(expected.std()),
           "ref_output_max_abs": float(expected.abs().max()), "threads": blocks}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"max |diff| vs ref: {check}")
    for nt, b in blocks.items():
        print(f"--- {nt} thread(s): GEMM {b['gemm_fp32_gflop_per_s']} GFLOP/s")
        for k, r in b["variants"].items():
            print(f"{k:<18} wall {r['wall']['median_s']:>7.2f} s  cpu {r['cpu']['median_s']:>7.2f} s  "
                  f"speedup {r['speedup_vs_ref_paired_median']:.2f} [{r['speedup_vs_ref_paired_min']:.2f}-"
                  f"{r['speedup_vs_ref_paired_max']:.2f}] (cpu {r['speedup_vs_ref_cpu_time_paired_median']:.2f})  "
                  f"{r['gflop_per_s']:>6.1f} GFLOP/s")


def _flops(model: nn.Module, x: torch.Tensor) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(x)
    return fc.get_total_flops()


if __name__ == "__main__":
    main()
