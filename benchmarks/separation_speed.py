"""Benchmark: separation speed on CPU, side by side with the peers (same weights, same input, same output).

* ``demucs_v2`` vs the ``demucs`` package's ``demucs.demucs.Demucs`` built as the v2 network (no DConv, no
  GroupNorm, ReLU, 2-layer BiLSTM; the parity test's settings) with the **same random weights** (the package's
  state dict through audiozoo's converter), both separating the same 30 s stereo song at 44.1 kHz in one call.
* ``conv_tasnet_speech`` vs asteroid's ``ConvTasNet(n_src=2)`` (the paper's config), same weights, on 30 s of
  8 kHz speech-like audio (the song, mixed down and resampled: speed does not depend on content).
* the real-time factor of every registered separator config (``--models`` to choose), fp32 and bf16
  (``torch.autocast("cpu", bfloat16)`` around fp32 weights), on ``--rtf-seconds`` of the song at its rate.
  ``--precisions fp32`` skips bf16: without native bf16 (AVX2-only CPUs) autocast can be many times slower.

The song is librosa's "Let's Go Fishin'" (Karissa Hobbs, CC BY; ``../shared/data/librosa``), 22.05 kHz mono,
resampled to 44.1 kHz and given a second channel delayed by 5 ms; white noise when the data is absent. Rounds
rotate the order so machine noise hits every system alike; medians over ``--repeats`` rounds after one warm-up.

    python benchmarks/separation_speed.py --repeats 3 --threads 2 --out benchmarks/results/separation_speed_cpu.json
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import statistics
import sys
import time
import types
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch

import audiozoo
from audiozoo.dsp import resample
from audiozoo.dsp.io import load_audio
from audiozoo.hub import load_into

ROOT = Path(__file__).resolve().parents[1]
SONG = "Karissa_Hobbs_-_Lets_Go_Fishin.ogg"


def song(seconds: float, sample_rate: int, channels: int) -> tuple[torch.Tensor, str]:
    """``(channels, seconds * sample_rate)`` of the benchmark song (looped if short) and its source."""
    n = round(seconds * sample_rate)
    path = Path(os.environ.get("AUDIOZOO_SHARED_DATA", ROOT.parent / "shared" / "data")) / "librosa" / SONG
    if path.is_file():
        wav, sr = load_audio(path, mono=True)
        wav = resample(wav, sr, sample_rate)
        wav = wav.repeat(n // wav.shape[-1] + 1)[:n]
        src = str(path)
    else:
        wav, src = 0.1 * torch.randn(n, generator=torch.Generator().manual_seed(0)), "white noise (no shared data)"
    if channels == 1:
        return wav[None], src
    lag = round(0.005 * sample_rate)
    right = torch.nn.functional.pad(wav, (lag, 0))[:n]
    return torch.stack([wav, right] + [wav] * (channels - 2)), src


def demucs_pair() -> tuple[torch.nn.Module, torch.nn.Module] | None:
    try:
        from demucs.demucs import Demucs
    except ImportError:
        return None
    from audiozoo.models.separate.demucs import MUSDB_SOURCES, checkpoint_filter_fn

    torch.manual_seed(0)
    ref = Demucs(list(MUSDB_SOURCES), channels=64, dconv_mode=0, gelu=False, norm_starts=99, normalize=False,
                 lstm_layers=2, context=1).eval()
    ours = audiozoo.create_model("demucs_v2", pad_context=True).eval()
    load_into(ours, ref.state_dict(), converter=checkpoint_filter_fn)
    return ref, ours


def asteroid_pair() -> tuple[torch.nn.Module, torch.nn.Module] | None:
    sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))  # not needed by ConvTasNet itself
    try:
        from asteroid.models import ConvTasNet
    except ImportError:
        return None
    from audiozoo.models.separate.conv_tasnet import checkpoint_filter_fn

    torch.manual_seed(0)
    ref = ConvTasNet(n_src=2).eval()
    ours = audiozoo.create_model("conv_tasnet_speech").eval()
    load_into(ours, {"model_name": "ConvTasNet", "state_dict": ref.state_dict()}, converter=checkpoint_filter_fn)
    return ref, ours


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the side-by-side input")
    ap.add_argument("--rtf-seconds", type=float, default=10.0, help="length of the real-time-factor input")
    ap.add_argument("--models", default=None, help="comma-separated separators for the RTF table (default: all)")
    ap.add_argument("--no-peers", action="store_true", help="only the RTF table")
    ap.add_argument("--precisions", default="fp32,bf16",
                    help="comma-separated subset of fp32,bf16 (bf16 autocast has no native support on AVX2-only "
                         "CPUs and can be many times slower there: 'fp32' alone skips it)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "separation_speed_cpu.json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    jobs: dict[str, tuple[Callable[[], torch.Tensor], float, dict]] = {}  # name -> (call, seconds, meta)
    checks: dict[str, float] = {}
    if not a.no_peers:
        pair = demucs_pair()
        if pair is not None:
            ref, ours = pair
            x, src = song(a.seconds, 44100, 2)
            x = x[None]
            with torch.no_grad():
                err = (ref(x) - ours(x)).abs().max().item()
            checks["demucs_v2 vs demucs package"] = err
            jobs["demucs package (v2 network)"] = (lambda: ref(x), a.seconds, {"peer": "demucs==4.1.0", "input": src})
            jobs["demucs_v2"] = (lambda: ours(x), a.seconds, {"max_abs_diff_vs_package": err, "input": src})
        pair = asteroid_pair()
        if pair is not None:
            ref_t, ours_t = pair
            y, src = song(a.seconds, 8000, 1)
            y = y[None]
            with torch.no_grad():
                err = (ref_t(y) - ours_t(y)[:, :, 0]).abs().max().item()
            checks["conv_tasnet_speech vs asteroid"] = err
            jobs["asteroid ConvTasNet(n_src=2)"] = (lambda: ref_t(y), a.seconds, {"peer": "asteroid==0.7.0",
                                                                                  "input": src})
            jobs["conv_tasnet_speech"] = (lambda: ours_t(y), a.seconds, {"max_abs_diff_vs_asteroid": err,
                                                                         "input": src})
    names = a.models.split(",") if a.models else audiozoo.list_models("separate")
    for name in names:
        torch.manual_seed(0)
        m = audiozoo.create_model(name).eval()
        if "condition" in inspect.signature(m.forward).parameters:
            print(f"skipping {name}: query-conditioned (needs a query embedding)")
            continue
        z, src = song(a.rtf_seconds, int(m.sample_rate), int(m.audio_channels))
        jobs[f"{name} (RTF)"] = (lambda m=m, z=z: m(z[None]), a.rtf_seconds,
                                 {"sample_rate": int(m.sample_rate), "channels": int(m.audio_channels),
                                  "params": sum(p.numel() for p in m.parameters()), "input": src})
    precs = [p for p in ("fp32", "bf16") if p in a.precisions.split(",")]
    if not precs:
        ap.error(f"--precisions: none of fp32, bf16 in {a.precisions!r}")
    runs = [(n, p) for n in jobs for p in precs]
    times: dict[tuple[str, str], list[float]] = {r: [] for r in runs}

    def call(name: str, prec: str) -> float:
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if prec == "bf16" else nullcontext()
        t0 = time.perf_counter()
        with torch.no_grad(), ctx:
            jobs[name][0]()
        return time.perf_counter() - t0

    for r in runs:
        call(*r)  # warm-up
    for k in range(a.repeats):
        for r in runs[k % len(runs):] + runs[:k % len(runs)]:
            times[r].append(call(*r))
        print(f"round {k + 1}/{a.repeats} done", flush=True)
    results: dict[str, dict] = {}
    for (name, prec), ts in times.items():
        r = results.setdefault(name, dict(jobs[name][2]))
        r[f"seconds_{prec}"] = statistics.median(ts)
        r[f"rtf_{prec}"] = statistics.median(ts) / jobs[name][1]
    ratios = {}
    for ours_name, peer in (("demucs_v2", "demucs package (v2 network)"),
                            ("conv_tasnet_speech", "asteroid ConvTasNet(n_src=2)")):
        if ours_name in results and peer in results:
            ratios[f"{ours_name} / {peer}"] = {p: results[ours_name][f"seconds_{p}"] / results[peer][f"seconds_{p}"]
                                              for p in precs}
    doc = {"benchmark": "separation CPU speed", "seconds": a.seconds, "rtf_seconds": a.rtf_seconds,
           "threads": a.threads, "repeats": a.repeats, "precisions": precs,
           "torch": torch.__version__, "platform": platform.platform(),
           "cpu_count": os.cpu_count(), "load_average_at_end": os.getloadavg(), "checks": checks,
           "time_ratios_ours_over_peer": ratios, "results": results}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"{'system':<36}" + "".join(f" {'s ' + p:>8}" for p in precs) + "".join(f" {'RTF ' + p:>9}" for p in precs))
    for name, r in results.items():
        print(f"{name:<36}" + "".join(f" {r['seconds_' + p]:>8.2f}" for p in precs)
              + "".join(f" {r['rtf_' + p]:>9.3f}" for p in precs))
    for k, v in ratios.items():
        print(f"time ratio {k}: " + ", ".join(f"{p} {v[p]:.3f}" for p in precs))
    for k, v in checks.items():
        print(f"max |diff| {k}: {v:.2e}")


if __name__ == "__main__":
    main()
