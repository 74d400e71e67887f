"""Held-out evaluation of a FastSpeech 2 checkpoint (+ real HiFi-GAN) against the Piper voice and espeak-ng.

    python recipes/tts/eval_fastspeech2_piper.py --model runs/fastspeech2_small_piper/best \
        --manifest cache/piper_speech/test.jsonl --out recipes/tts/results_fastspeech2_small_piper.json

Systems, all on the same held-out sentences (the corpus' ``test`` split: sentences never in any build's train
split, ``audiozoo.data.builders.piper_speech.sentence_split``):

* ``piper``: the Piper voice itself (en_US-joe-medium, the training data's speaker) — the anchor;
* ``piper -> hifigan``: Piper's audio re-synthesised through its mel by hifigan_v1.universal (the best a perfect
  acoustic model could do with this vocoder);
* ``MODEL + hifigan`` (the acoustic model's registry name): text -> the pipeline (predicted durations, pitch,
  energy) -> hifigan_v1.universal; ``MODEL teacher-forced + hifigan``: the same with Piper's durations, pitch and
  energy (models with variance inputs);
* ``espeak-ng``: the formant synthesiser (``espeak-ng -v en-us``), a second anchor.

Metrics: Whisper tiny.en WER / CER (``audiozoo.eval.judges``, Whisper's English normaliser), DNSMOS P.835 OVRL /
SIG / BAK, MCD-DTW against Piper's rendering of the same text (mel-cepstrum = orthonormal DCT-II of the natural-log
HiFi-GAN mel, c1..c24; not SPTK's mcep, so compare values within this table only), real-time factor of text ->
waveform (FastSpeech 2, fp32 and bf16 autocast, this machine's CPU, one thread).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from audiozoo.data.manifest import read_manifest
from audiozoo.dsp.io import load_audio
from audiozoo.eval.judges import dnsmos, intelligibility
from audiozoo.eval.speech import mel_cepstral_distortion
from audiozoo.pipelines import pipeline
from audiozoo.resolve import resolve_model

SR = 22050


def espeak(text: str) -> torch.Tensor:
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "e.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(f), text], check=True, capture_output=True)
        wav, sr = load_audio(f, mono=True)
    if sr != SR:
        from audiozoo.dsp.io import resample

        wav = resample(wav, sr, SR)
    return wav


def mel_cepstrum(wav: torch.Tensor, mel_fn, n: int = 25) -> torch.Tensor:
    """``(n, L)``: orthonormal DCT-II over the 80 bands of the natural-log mel."""
    logmel = mel_fn(wav[None].float())[0][0]  # (80, L)
    m = logmel.shape[0]
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(m, dtype=torch.float64)[None]
    dct = torch.cos(math.pi / m * (i + 0.5) * k) * math.sqrt(2.0 / m)
    dct[0] /= math.sqrt(2.0)
    return (dct @ logmel.double()).float()


@torch.no_grad()
def teacher_forced(system, items: list[dict], wavs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Mel from the manifest's ids and durations with the target pitch / energy of Piper's audio, vocoded."""
    from audiozoo.train.tasks.tts import TTSTask, token_average

    am = system.acoustic.eval()
    task = TTSTask()
    task.models = {"model": am}
    out = []
    for it, w in zip(items, wavs):
        dur = torch.tensor([it["durations"]])
        _, lf0, en = task.item_targets(w, int(dur.sum()))
        (pm, ps), (em, es) = am.pitch_stats.tolist(), am.energy_stats.tolist()
        p = torch.where(lf0 > 0, (lf0 - pm) / ps, torch.zeros_like(lf0))[None]
        e = ((en - em) / es)[None]
        if am.config.pitch_level == "phoneme":  # DelightfulTTS: per-token targets, as the tts task makes them
            p = token_average(p, dur)
        if am.config.energy_level == "phoneme":
            e = token_average(e, dur)
        res = am(torch.tensor([it["phoneme_ids"]]), durations=dur, pitch=p, energy=e)
        out.append(system.vocoder(res.mel, res.mel_lengths)[0][0])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="FastSpeech 2 weight set or checkpoint folder")
    ap.add_argument("--vocoder", default="hifigan_v1.universal")
    ap.add_argument("--manifest", required=True, help="held-out manifest (piper-speech test.jsonl)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--out", default=None, help="write the results JSON here")
    ap.add_argument("--save-wavs", default=None, help="folder for the synthesised wavs")
    ap.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                    help="also time bf16 autocast (--no-bf16 on CPUs without native bf16: 10-100x slower there)")
    ap.add_argument("--attention-window", type=int, nargs=2, default=None, metavar=("BACK", "FORWARD"),
                    help="autoregressive models: constrain inference attention to this window around a monotonic "
                         "focus (TransformerTTS.synthesize's attention_window)")
    ap.add_argument("--seed", type=int, default=None,
                    help="seed the synthesis (autoregressive models sample their pre-net dropout at inference; "
                         "unseeded by default, as before)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    items = read_manifest(args.manifest)[: args.limit]
    base = Path(args.manifest).parent
    texts = [it["text"] for it in items]
    piper = []
    for it in items:
        p = Path(it["audio_filepath"])
        wav, sr = load_audio(p if p.is_absolute() else base / p, mono=True)
        assert sr == SR, sr
        piper.append(wav)
    voc = resolve_model(args.vocoder, "vocoder", trained=True).eval()
    mel_fn = voc.frontend
    with torch.no_grad():
        copy = [voc(mel_fn(w[None])[0])[0][0] for w in piper]
    tts = pipeline("tts", model=f"{args.model}+{args.vocoder}")
    if args.attention_window:
        acoustic = tts.system.acoustic
        acoustic.synthesize = functools.partial(acoustic.synthesize, attention_window=tuple(args.attention_window))
    fs2, rtf = [], {}
    if args.seed is not None:
        torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    for t in texts:
        fs2.append(tts.synthesize(t)["audio"])
    secs = sum(w.shape[-1] for w in fs2) / SR
    rtf["fp32"] = (time.perf_counter() - t0) / secs
    if args.bf16:
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            for t in texts:
                tts.synthesize(t)
        rtf["bf16"] = (time.perf_counter() - t0) / secs
    esp = [espeak(t) for t in texts]
    # diagnostic: the same model given Piper's own durations, pitch and energy (teacher forcing), so the table
    # separates the decoder's mel quality from the variance predictors'
    has_variance = hasattr(tts.system.acoustic, "pitch_stats")
    label = getattr(tts.system.acoustic, "model_name", None) or str(args.model)
    systems = {"piper (en_US-joe-medium)": piper, "piper -> hifigan (copy-synthesis)": copy,
               f"{label} + hifigan": fs2, "espeak-ng": esp}
    if has_variance and getattr(tts.system.acoustic.config, "pitch_level", "") != "cwt":  # pitch/energy inputs
        systems[f"{label} teacher-forced + hifigan"] = teacher_forced(tts.system, items, piper)
    if args.save_wavs:
        from audiozoo.dsp.io import save_audio

        out = Path(args.save_wavs)
        out.mkdir(parents=True, exist_ok=True)
        for name, wavs in systems.items():
            key = name.split()[0].replace("->", "to")
            for i, w in enumerate(wavs[:5]):
                save_audio(out / f"{i:02d}_{key}_{name.split()[-1].strip('()')}.wav", w.clamp(-1, 1), SR)
    ref_cep = [mel_cepstrum(w, mel_fn) for w in piper]
    results: dict = {"items": len(items), "manifest": str(args.manifest), "model": args.model, "seed": args.seed,
                     "vocoder": args.vocoder, "attention_window": args.attention_window, "rtf_text_to_wave": rtf,
                     "systems": {}}
    for name, wavs in systems.items():
        wavs = [w.clamp(-1, 1) for w in wavs]
        intel = intelligibility(wavs, SR, texts)
        mos = dnsmos(wavs, SR)
        row = {"wer": intel["wer"], "cer": intel["cer"], "dnsmos_ovrl": float(mos["ovrl"].mean()),
               "dnsmos_sig": float(mos["sig"].mean()), "dnsmos_bak": float(mos["bak"].mean()),
               "seconds": sum(w.shape[-1] for w in wavs) / SR, "hypotheses": intel["hypotheses"][:5]}
        if "piper (" not in name:
            mcd = [float(mel_cepstral_distortion(mel_cepstrum(w, mel_fn), r, dtw=True)) for w, r in zip(wavs, ref_cep)]
            row["mcd_dtw_vs_piper"] = sum(mcd) / len(mcd)
        results["systems"][name] = row
        print(f"{name:36s} WER {100 * row['wer']:5.1f}  CER {100 * row['cer']:5.1f}  DNSMOS {row['dnsmos_ovrl']:.2f}"
              + (f"  MCD {row['mcd_dtw_vs_piper']:.2f}" if "mcd_dtw_vs_piper" in row else ""), flush=True)
    results["judge"] = intel["judge"]
    print("real-time factor (text -> wave, 1 thread): " + ", ".join(f"{k} {v:.3f}" for k, v in rtf.items()))
    print(f"references: {texts[:3]}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
