"""Benchmark: CPU real-time factors of codec encode and decode, against the ``encodec`` package.

``encodec_24khz`` and the ``encodec`` package's ``EncodecModel.encodec_model_24khz(pretrained=False)`` get the
**same random weights** (the package's state dict through audiozoo's converter; the codes are checked equal),
then both encode and decode the same 10 s of real speech (a SiSec 2011 source from ../shared/data, resampled to
24 kHz; noise when the data is absent) at 6 kbit/s (8 codebooks). Every other registered codec (and any weight
set given with ``--models``) is timed at its own rate and full bitrate. ``RTF = wall seconds / 10 s``; bf16 is
``torch.autocast("cpu", bfloat16)`` around fp32 weights. Rounds rotate the order so machine noise hits all
alike; the median over ``--repeats`` rounds is reported after a short warm-up call each.

    python benchmarks/codec_rtf.py --repeats 3 --threads 2 --out benchmarks/results/codec_rtf_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import types
from contextlib import nullcontext
from pathlib import Path

import torch

import audiozoo
from audiozoo.resolve import resolve_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vocoder_rtf import SECONDS, speech_10s  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def reference_encodec() -> tuple[torch.nn.Module, torch.nn.Module] | None:
    """(package model, audiozoo model with its weights), or None without the ``encodec`` package."""
    sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))  # imported at module level, unused here
    try:
        import encodec
    except ImportError:
        return None
    from audiozoo.models.codec.encodec import checkpoint_filter_fn

    torch.manual_seed(0)
    ref = encodec.EncodecModel.encodec_model_24khz(pretrained=False).eval()
    ref.set_target_bandwidth(6.0)
    ours = audiozoo.create_model("encodec_24khz").eval()
    ours.load_state_dict(checkpoint_filter_fn(ref.state_dict(), ours))
    return ref, ours


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", default=None, help="comma-separated codec specs (default: every registered codec)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "codec_rtf_cpu.json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    jobs: dict[str, tuple] = {}  # name -> (encode fn, decode fn, wav, meta)
    pair = reference_encodec()
    if pair is not None:
        ref, ours = pair
        wav, src = speech_10s(24000)
        x = wav[None, None]
        with torch.no_grad():
            ref_codes = ref.encode(x)[0][0]  # (B, Q, L)
            our_codes = ours.encode(wav[None], bandwidth=6.0)
        assert torch.equal(ref_codes, our_codes), "same weights must give the same codes"
        jobs["encodec package 24 kHz @6 kbps"] = (lambda: ref.encode(x), lambda: ref.decode([(ref_codes, None)]),
                                                 {"codec": "encodec==0.1.1", "input": src})
        jobs["encodec_24khz @6 kbps"] = (lambda: ours.encode(wav[None], bandwidth=6.0), lambda: ours.decode(our_codes),
                                        {"codec": "audiozoo", "input": src, "codes_equal_to_package": True})
    names = a.models.split(",") if a.models else [n for n in audiozoo.list_models("codec") if n != "encodec_24khz"]
    for name in names:
        torch.manual_seed(0)
        m = resolve_model(name, family="codec").eval()
        w, src = speech_10s(int(m.sample_rate))
        with torch.no_grad():
            codes = m.encode(w[None])
        jobs[name] = (lambda m=m, w=w: m.encode(w[None]), lambda m=m, c=codes: m.decode(c),
                      {"sample_rate": int(m.sample_rate), "bitrate": m.bitrate, "input": src,
                       "params": sum(p.numel() for p in m.parameters())})
    runs = [(n, part, p) for n in jobs for part in ("encode", "decode") for p in ("fp32", "bf16")]
    times: dict[tuple, list[float]] = {r: [] for r in runs}

    def call(name: str, part: str, prec: str) -> float:
        fn = jobs[name][0 if part == "encode" else 1]
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if prec == "bf16" else nullcontext()
        t0 = time.perf_counter()
        with torch.no_grad(), ctx:
            fn()
        return time.perf_counter() - t0

    for r in runs:
        call(*r)  # warm-up (full length: the reference has no cheap short call)
    for k in range(a.repeats):
        for r in runs[k % len(runs):] + runs[:k % len(runs)]:
            times[r].append(call(*r))
        print(f"round {k + 1}/{a.repeats} done", flush=True)
    results: dict[str, dict] = {}
    for (name, part, prec), ts in times.items():
        results.setdefault(name, dict(jobs[name][2])).setdefault(part, {})[prec] = statistics.median(ts) / SECONDS
    doc = {"benchmark": "codec CPU real-time factors, 10 s of speech", "seconds": SECONDS, "threads": a.threads,
           "repeats": a.repeats, "torch": torch.__version__, "platform": platform.platform(),
           "cpu_count": os.cpu_count(), "load_average_at_end": os.getloadavg(), "results": results}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"{'codec':<34} {'enc fp32':>9} {'enc bf16':>9} {'dec fp32':>9} {'dec bf16':>9}")
    for name, r in results.items():
        print(f"{name:<34} {r['encode']['fp32']:>9.4f} {r['encode']['bf16']:>9.4f} {r['decode']['fp32']:>9.4f} "
              f"{r['decode']['bf16']:>9.4f}")


if __name__ == "__main__":
    main()
