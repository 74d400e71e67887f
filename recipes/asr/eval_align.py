"""How good are ``audiozoo align``'s word boundaries? Compared with the Piper voice's own durations.

The ``piper-speech`` corpus records, for every utterance, how many 256-sample frames (11.6 ms at 22.05 kHz) the
VITS voice spent on each phoneme id it read (``durations``): the true time of every phoneme in the audio. Word
boundaries follow from them (ids between word-separator ids). This script force-aligns each held-out utterance's
text with an ASR model's CTC head (:class:`audiozoo.pipelines.asr.AlignPipeline`) and reports, over every word
whose phoneme and text word counts agree:

* ``start_mae_ms`` / ``end_mae_ms``: mean absolute error of word starts and ends (``*_bias_ms``: mean signed
  error, predicted minus true);
* ``within_50ms`` / ``within_100ms``: the fraction of boundaries (starts and ends) that close to the truth;
* the same for a trivial baseline that spreads the words over the utterance by character count.

    python recipes/asr/eval_align.py runs/conformer_aed_small/best --manifest cache/asr/piper/test.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from audiozoo.data.manifest import read_manifest
from audiozoo.eval.asr import normalize_text

HOP, SR = 256, 22050
SPECIAL = {0, 1, 2}  # "_" pad, "^" bos, "$" eos in Piper's phoneme_id_map
SPACE = 3
PUNCT = {4, 5, 6, 7, 8, 9, 10, 11, 12, 13}  # ! ' ( ) , - . : ; ?


def piper_words(ids: list[int], durations: list[int]) -> list[tuple[float, float]]:
    """(start, end) seconds of every word: from its first to the end of its last phoneme id."""
    t, words, cur = 0, [], None
    for i, d in zip(ids, durations):
        if i == SPACE or i in (1, 2):
            if cur is not None:
                words.append(cur)
            cur = None
        elif i not in SPECIAL and i not in PUNCT:
            cur = (t, t + d) if cur is None else (cur[0], t + d)
        t += d
    if cur is not None:
        words.append(cur)
    return [(a * HOP / SR, b * HOP / SR) for a, b in words]


def proportional(words: list[str], duration: float) -> list[tuple[float, float]]:
    """Baseline: words laid end to end over the whole clip, each as long as its share of characters."""
    n = np.array([len(w) for w in words], dtype=float)
    edges = np.concatenate([[0.0], np.cumsum(n) / n.sum() * duration])
    return list(zip(edges[:-1], edges[1:]))


def scores(pred: list[tuple[float, float]], true: list[tuple[float, float]]) -> dict[str, float]:
    p, t = np.array(pred), np.array(true)
    signed = p - t
    err = np.abs(signed)
    return {"start_mae_ms": round(1000 * err[:, 0].mean(), 1), "end_mae_ms": round(1000 * err[:, 1].mean(), 1),
            "start_bias_ms": round(1000 * signed[:, 0].mean(), 1), "end_bias_ms": round(1000 * signed[:, 1].mean(), 1),
            "within_50ms": round(float((err < 0.05).mean()), 3), "within_100ms": round(float((err < 0.1).mean()), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--manifest", default="cache/asr/piper/test.jsonl")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    from audiozoo.pipelines import pipeline

    pipe = pipeline("align", model=args.model)
    preds, bases, trues, skipped = [], [], [], 0
    for it in read_manifest(args.manifest):
        true = piper_words(it["phoneme_ids"], it["durations"])
        words = normalize_text(it["text"]).split()
        if len(true) != len(words):  # e.g. an abbreviation read as several words
            skipped += 1
            continue
        res = pipe.align(it["audio_filepath"], it["text"])
        preds += [(w["start"], w["end"]) for w in res["words"]]
        bases += proportional(words, float(it["duration"]))
        trues += true
    out = {"model": args.model, "manifest": args.manifest, "words": len(trues), "skipped_utterances": skipped,
           "ctc_alignment": scores(preds, trues), "proportional_baseline": scores(bases, trues)}
    print(json.dumps(out, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
