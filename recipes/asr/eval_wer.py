"""WER / CER of ASR models on held-out speech of known text, with Whisper tiny.en as the reference point.

For every model (checkpoint folders, weight sets, or ``whisper`` = Whisper tiny.en through CTranslate2, the judge of
``audiozoo.eval.judges``) and every manifest (default: ``cache/asr/test_real.jsonl`` — CMU ARCTIC and FSDD digits,
real people none of the models trained on — and ``cache/asr/test_synth.jsonl`` — held-out synthetic sentences):

* ``wer`` / ``cer``: corpus rates after GigaSpeech 2's scoring normalisation (NFKC, case, punctuation,
  whitespace: :func:`audiozoo.eval.asr.normalize_text`);
* ``wer_whisper_norm``: WER after Whisper's English normaliser on both sides (numbers as digits, spelling), which
  is fairer to Whisper on the digit clips (it writes "7" for "seven").

    python recipes/asr/eval_wer.py runs/conformer_aed_small/best whisper --beam 1 4 --out results.json

``--decoders attention ctc``: for audiozoo models, the attention decoder (each ``--beam``) and the CTC head's
best path.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from audiozoo.data.manifest import read_manifest
from audiozoo.dsp.io import load_audio
from audiozoo.eval.asr import cer, wer


def transcribe_all(spec: str, items: list[dict], beam: int, decoder: str) -> tuple[list[str], float]:
    """Hypotheses for every item and the real-time factor (processing seconds / audio seconds)."""
    audio_s = sum(float(it["duration"]) for it in items)
    t0 = time.perf_counter()
    if spec == "whisper":
        from audiozoo.eval.judges.asr import transcribe

        wavs = [load_audio(it["audio_filepath"], sample_rate=16000)[0] for it in items]
        t0 = time.perf_counter()
        hyps = transcribe(wavs, 16000, beam_size=beam)
        return hyps, (time.perf_counter() - t0) / audio_s
    from audiozoo.pipelines import pipeline

    pipe = pipeline("asr", model=spec, beam_size=beam, decoder=decoder, word_timestamps=False)
    hyps = [pipe(it["audio_filepath"])["text"] for it in items]  # decoder given explicitly
    return hyps, (time.perf_counter() - t0) / audio_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", help="checkpoint folders, weight sets, or 'whisper'")
    ap.add_argument("--manifests", nargs="+", default=["cache/asr/test_real.jsonl", "cache/asr/test_synth.jsonl"])
    ap.add_argument("--beam", type=int, nargs="+", default=[1])
    ap.add_argument("--decoders", nargs="+", default=["attention", "ctc"], choices=["attention", "ctc"])
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from audiozoo.eval.judges.asr import whisper_wer

    rows = []
    for man in args.manifests:
        items = read_manifest(man)
        refs = [it["text"] for it in items]
        for spec in args.models:
            runs = [(b, "attention") for b in args.beam] if spec == "whisper" else \
                [(b, d) for d in args.decoders for b in (args.beam if d == "attention" else [1])]
            for beam, decoder in runs:
                hyps, rtf = transcribe_all(spec, items, beam, decoder)
                row = {"manifest": Path(man).name, "model": spec, "decoder": decoder, "beam": beam,
                       "items": len(items),
                       "wer": round(wer(refs, hyps), 4), "cer": round(cer(refs, hyps), 4),
                       "wer_whisper_norm": round(whisper_wer(hyps, refs), 4), "rtf": round(rtf, 4),
                       "examples": [{"ref": r, "hyp": h} for r, h in list(zip(refs, hyps))[:3]]}
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "examples"}), flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
