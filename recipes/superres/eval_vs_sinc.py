"""Evaluate a super-resolution checkpoint against sinc interpolation on held-out real speech.

For every test utterance (``cache/superres_speech/test.jsonl``: CMU ARCTIC + LibriSpeech, never seen in
training), at 16 kHz: band-limit it to each input rate (soxr down-sampling), then rebuild 16 kHz with (a) sinc
interpolation of the same band-limited input (soxr HQ) and (b) the model (:class:`UpsamplePipeline`, with and
without the official bandwidth substitution). Scores: log-spectral distance to the original over the whole band
and over the band above the input Nyquist (:func:`audiozoo.eval.speech.log_spectral_distance`, n_fft 2048, hop
512), averaged over utterances.

Usage: ``python recipes/superres/eval_vs_sinc.py --checkpoint runs/hifisr_small_16k/best [--rates 8000 6000 12000]``
(``--checkpoint`` also takes a weight set such as ``hifisr_small_16k.sisec_8k``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from audiozoo.dsp.io import load_audio, resample
from audiozoo.eval.speech import high_band_log_spectral_distance, log_spectral_distance
from audiozoo.pipelines import UpsamplePipeline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--test", default="cache/superres_speech/test.jsonl")
    ap.add_argument("--rates", type=int, nargs="+", default=[8000])
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    a = ap.parse_args()
    items = [json.loads(line) for line in Path(a.test).read_text().splitlines() if line.strip()]
    sinc = UpsamplePipeline(None, rate=16000)
    model = UpsamplePipeline(a.checkpoint, rate=16000)
    raw = UpsamplePipeline(model.model, rate=16000, bandwidth_substitution=False)
    sr = int(model.model.sample_rate)
    results = {}
    for rate in a.rates:
        scores: dict[str, dict[str, list[float]]] = {}
        for it in items:
            ref, _ = load_audio(it["audio_filepath"], sample_rate=sr, mono=True)
            low = resample(ref, sr, rate)
            for name, pipe in (("sinc", sinc), ("hifisr", model), ("hifisr_no_bwsub", raw)):
                est = pipe.upsample(low, rate)[: ref.shape[-1]]
                r = ref[: est.shape[-1]].double()
                s = scores.setdefault(name, {"lsd": [], "lsd_high": []})
                s["lsd"].append(float(log_spectral_distance(est.double(), r, sr)))
                s["lsd_high"].append(float(high_band_log_spectral_distance(est.double(), r, sr, rate / 2)))
        results[rate] = {k: {m: round(float(np.mean(v)), 4) for m, v in d.items()} for k, d in scores.items()}
        print(f"\ninput {rate} Hz -> {sr} Hz, {len(items)} held-out utterances (mean LSD, lower is better)")
        print(f"| method | LSD (0-{sr // 2} Hz) | LSD ({rate // 2}-{sr // 2} Hz) |\n|---|---|---|")
        for k, d in results[rate].items():
            print(f"| {k} | {d['lsd']:.3f} | {d['lsd_high']:.3f} |")
    if a.out:
        Path(a.out).write_text(json.dumps({"checkpoint": a.checkpoint, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
