"""Benchmark: FastSpeech vs Transformer TTS at the same size — mel generation and end-to-end speed on CPU.

The FastSpeech paper (Ren et al. 2019, Table 2) reports 269.40x faster mel generation and 38.30x faster end to end
(with WaveGlow) than its Transformer TTS teacher on a GPU. Here, on CPU, for each size pair (``fastspeech_small``
2.17M vs ``transformer_tts_small`` 2.09M; ``fastspeech_base`` 50.2M vs ``transformer_tts_base`` 53.1M):

* the texts are 5 held-out-style sentences, phonemised into Piper ids (the shipped voices' text scheme);
* the frame count of each sentence is set by the shipped ``fastspeech_small.piper_joe`` (its predicted durations),
  and **both models generate exactly that many frames**: FastSpeech runs its full non-autoregressive inference
  (encoder, duration predictor, length regulator with those durations, decoder), Transformer TTS decodes
  autoregressively with its KV cache, its stop token disabled by pinning min = max length (untrained weights
  would stop anywhere) — the same work as a trained model stopping at that frame;
* end to end adds ``hifigan_v1.universal`` (real weights) on the mel, the same vocoder for both.

One sentence per call (batch 1), as a TTS service would; rounds rotate the order; medians over ``--repeats``.
Weights other than FastSpeech small's are random (speed does not depend on them).

    python benchmarks/tts_speed.py --repeats 3 --threads 2 --out benchmarks/results/tts_speed_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

import audiozoo
from audiozoo.pipelines.tts import PiperTextEncoder
from audiozoo.resolve import resolve_model

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Please call Stella and ask her to bring these things with her from the store.",
    "A rainbow is a division of white light into many beautiful colors.",
    "She sells sea shells by the sea shore every summer morning.",
    "Numbers like four hundred and twelve are spoken out in full.",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", default="small,base")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "tts_speed_cpu.json"))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    teacher = resolve_model("fastspeech_small.piper_joe", "tts", trained=True).eval()
    enc = PiperTextEncoder(dict(teacher.config.text), max_tokens=1000)
    toks = [torch.tensor(enc.encode(s)[0][0])[None] for s in SENTENCES]
    with torch.no_grad():
        durs = [teacher(t).durations for t in toks]  # (1, N) the shipped voice's rounded predicted durations
    frames = [int(d.sum()) for d in durs]
    vocoder = resolve_model("hifigan_v1.universal", "vocoder", trained=True).eval()
    vocoder = vocoder.fuse_for_inference()  # the vocode pipeline's CPU path (prepacked GEMMs, same output)
    vocab = int(teacher.config.vocab_size)
    models: dict[str, torch.nn.Module] = {}
    for size in a.sizes.split(","):
        torch.manual_seed(0)
        models[f"fastspeech_{size}"] = (teacher if size == "small" else
                                        audiozoo.create_model(f"fastspeech_{size}", vocab_size=vocab).eval())
        models[f"transformer_tts_{size}"] = audiozoo.create_model(f"transformer_tts_{size}", vocab_size=vocab).eval()

    def mel(name: str, i: int) -> torch.Tensor:
        m, t, n = models[name], toks[i], frames[i]
        if name.startswith("fastspeech"):
            if m is teacher:
                return m.synthesize(t)[0]
            # random weights: its own inference path, with the teacher's durations so the length is the same
            return m(t, durations=durs[i]).mel
        r = (n + 0.5) / t.shape[1]
        return m.synthesize(t, min_len_ratio=r, max_len_ratio=r, max_frames=n, prenet_dropout=False)[0]

    def call(name: str, part: str) -> float:
        t0 = time.perf_counter()
        with torch.no_grad():
            for i in range(len(toks)):
                m = mel(name, i)
                assert m.shape[-1] == frames[i], (name, m.shape, frames[i])
                if part == "end_to_end":
                    vocoder(m)
        return time.perf_counter() - t0

    runs = [(n, p) for n in models for p in ("mel", "end_to_end")]
    times: dict[tuple[str, str], list[float]] = {r: [] for r in runs}
    for r in runs:
        call(*r)
    for k in range(a.repeats):
        for r in runs[k % len(runs):] + runs[:k % len(runs)]:
            times[r].append(call(*r))
        print(f"round {k + 1}/{a.repeats} done", flush=True)
    audio_s = sum(frames) * 256 / 22050
    results = {f"{n} {p}": {"seconds": statistics.median(ts), "rtf": statistics.median(ts) / audio_s,
                            "params": sum(q.numel() for q in models[n].parameters())}
               for (n, p), ts in times.items()}
    ratios = {size: {p: results[f"transformer_tts_{size} {p}"]["seconds"] / results[f"fastspeech_{size} {p}"]["seconds"]
                     for p in ("mel", "end_to_end")} for size in a.sizes.split(",")}
    doc = {"benchmark": "FastSpeech vs Transformer TTS speed (CPU)", "sentences": list(SENTENCES), "frames": frames,
           "audio_seconds": audio_s, "threads": a.threads, "repeats": a.repeats, "torch": torch.__version__,
           "platform": platform.platform(), "cpu_count": os.cpu_count(), "load_average_at_end": os.getloadavg(),
           "speedup_fastspeech_over_transformer_tts": ratios, "results": results,
           "paper_gpu": {"mel": 269.40, "end_to_end": 38.30}}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"{sum(frames)} frames = {audio_s:.1f} s of audio over {len(toks)} sentences")
    for k, r in results.items():
        print(f"{k:<34} {r['seconds']:8.3f} s  RTF {r['rtf']:.4f}  ({r['params'] / 1e6:.2f}M)")
    for size, r in ratios.items():
        print(f"{size}: FastSpeech speed-up mel {r['mel']:.1f}x, end to end {r['end_to_end']:.1f}x "
              "(paper, GPU: 269.4x / 38.3x)")


if __name__ == "__main__":
    main()
