"""Benchmark: CPU inference time of ``fastspeech2_conformer`` against transformers' ``FastSpeech2ConformerModel``.

Both get the **same random weights** (transformers' initialisation of the default config = ESPnet's LJSpeech
conformer FastSpeech 2, 70.3M parameters, through audiozoo's converter; the duration predictor's output bias is set
to ``--dur-bias`` so that ~4 frames per token come out, as a trained model's) and the **same input ids**: 5
"sentences" of 96-104 random ids of the 78-symbol table. Inference with predicted durations, pitch and energy:

- ``single``: each sentence alone (batch 1; 5 calls per round); the mels are compared here (durations must be
  equal; max |mel difference| over every frame of every sentence, fp32);
- ``batch``: the 5 sentences in one padded batch (transformers: ``attention_mask``; audiozoo: ``lengths``). Timed
  only: transformers runs its decoder unmasked at inference, so its padded items differ from the same items alone
  (audiozoo masks padding), and only the longest item is compared.

Precisions: fp32 and ``torch.autocast("cpu", bfloat16)`` around fp32 weights. Rounds rotate the job order so
machine noise hits all alike; the median over ``--repeats`` rounds is reported after one warm-up call per job, and
``ratio = audiozoo / transformers`` (< 1: audiozoo faster), of wall-clock medians and of process CPU-time medians
(the latter is less sensitive to other jobs on a shared machine).

    python benchmarks/fastspeech2_conformer_vs_transformers.py --repeats 3 --threads 1 \
        --out benchmarks/results/fastspeech2_conformer_cpu.json
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
from audiozoo.models.tts.fastspeech2_conformer import checkpoint_filter_fn

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dur-bias", type=float, default=1.6, help="duration predictor output bias (ln(d + 1))")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fastspeech2_conformer_cpu.json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    import transformers
    from transformers import FastSpeech2ConformerConfig, FastSpeech2ConformerModel

    torch.manual_seed(0)
    ref = FastSpeech2ConformerModel(FastSpeech2ConformerConfig()).eval()
    with torch.no_grad():
        ref.duration_predictor.linear.bias.fill_(a.dur_bias)
    ours = audiozoo.create_model("fastspeech2_conformer").eval()
    ours.load_state_dict(checkpoint_filter_fn(ref.state_dict(), ours))
    g = torch.Generator().manual_seed(1)
    lens = [96, 104, 99, 101, 100]
    sents = [torch.randint(1, 78, (1, n), generator=g) for n in lens]
    batch = torch.zeros(len(lens), max(lens), dtype=torch.long)
    for i, s in enumerate(sents):
        batch[i, : s.shape[1]] = s[0]
    lengths = torch.tensor(lens)
    attn = (torch.arange(max(lens))[None] < lengths[:, None]).long()

    # correctness on the same inputs (fp32 and bf16)
    checks: dict[str, float | bool | int] = {}
    with torch.no_grad():
        diffs, frames, dur_equal = [], 0, True
        for s in sents:
            r, o = ref(s, return_dict=True), ours(s)
            dur_equal &= torch.equal(r.duration_outputs, o.durations)
            diffs.append(float((o.mel[0] - r.spectrogram[0].T).abs().max()))
            frames += int(o.mel_lengths[0])
        checks.update(durations_equal=bool(dur_equal), max_abs_mel_diff_fp32=max(diffs), frames_total=frames,
                      mel_abs_max=float(r.spectrogram.abs().max()))
        rb, ob = ref(batch, attention_mask=attn, return_dict=True), ours(batch, lengths)
        k = int(ob.mel_lengths.argmax())
        checks["batch_longest_item_max_abs_mel_diff_fp32"] = float((ob.mel[k] - rb.spectrogram[k].T).abs().max())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            r, o = ref(sents[0], return_dict=True), ours(sents[0])
        if torch.equal(r.duration_outputs, o.durations):
            diff = (o.mel[0].float() - r.spectrogram[0].T.float()).abs().max()
            checks["max_abs_mel_diff_bf16_sentence0"] = float(diff)
        else:
            checks["bf16_durations_differ_sentence0"] = True

    jobs = {
        ("single", "transformers"): lambda: [ref(s, return_dict=True) for s in sents],
        ("single", "audiozoo"): lambda: [ours(s) for s in sents],
        ("batch", "transformers"): lambda: ref(batch, attention_mask=attn, return_dict=True),
        ("batch", "audiozoo"): lambda: ours(batch, lengths),
    }
    runs = [(mode, impl, prec) for (mode, impl) in jobs for prec in ("fp32", "bf16")]
    times: dict[tuple, list[tuple[float, float]]] = {r: [] for r in runs}

    def call(mode: str, impl: str, prec: str) -> tuple[float, float]:
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if prec == "bf16" else nullcontext()
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.no_grad(), ctx:
            jobs[(mode, impl)]()
        return time.perf_counter() - t0, time.process_time() - c0

    for r in runs:
        call(*r)  # warm-up
    for k in range(a.repeats):
        for r in runs[k % len(runs):] + runs[:k % len(runs)]:
            times[r].append(call(*r))
        print(f"round {k + 1}/{a.repeats} done", flush=True)
    results: dict[str, dict] = {}
    for (mode, impl, prec), ts in times.items():
        d = results.setdefault(mode, {}).setdefault(prec, {})
        d[impl] = statistics.median(t[0] for t in ts)
        d[f"{impl}_cpu"] = statistics.median(t[1] for t in ts)
    for per in results.values():
        for d in per.values():
            d["ratio"] = d["audiozoo"] / d["transformers"]
            d["ratio_cpu"] = d["audiozoo_cpu"] / d["transformers_cpu"]
    doc = {"benchmark": "conformer FastSpeech 2 CPU inference, audiozoo vs transformers, same weights and ids",
           "sentences": lens, "threads": a.threads, "repeats": a.repeats, "dur_bias": a.dur_bias,
           "torch": torch.__version__, "transformers": transformers.__version__, "platform": platform.platform(),
           "cpu_count": os.cpu_count(), "load_average_at_end": os.getloadavg(), "checks": checks,
           "seconds_median": results}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(checks, indent=1))
    print(f"{'mode':<8} {'prec':<5} {'transformers s':>15} {'audiozoo s':>11} {'ratio':>6} {'ratio (CPU time)':>17}")
    for mode, per in results.items():
        for prec, d in per.items():
            print(f"{mode:<8} {prec:<5} {d['transformers']:>15.3f} {d['audiozoo']:>11.3f} {d['ratio']:>6.3f} "
                  f"{d['ratio_cpu']:>17.3f}")


if __name__ == "__main__":
    main()
