"""Evaluate a trained HiFiNet (16 kHz mel -> 48 kHz) against Griffin-Lim at 16 kHz + sinc upsampling.

Griffin-Lim cannot change the rate, so the baseline is: Griffin-Lim (32 and 100 iterations, fast GL, momentum
0.99, fixed random initial phase) on the SAME 16 kHz log-mel, then soxr (band-limited sinc) upsampling to
48 kHz. Every system then goes back to 16 kHz with soxr and is scored against the 16 kHz reference recording
(held-out real speech: CMU ARCTIC + LibriSpeech, never seen in training, peak-normalised to 0.95 as
``eval_vs_griffinlim.py``), on:

* ``mrstft``: multi-resolution STFT distance (Parallel WaveGAN resolutions; SC + log-magnitude), lower is better;
* ``pesq_wb``: wide-band PESQ (P.862.2), higher is better; ``stoi``;
* ``mel_l1``: L1 between the 16 kHz log-mels of output and reference (HiFiNet's own front-end);
* ``hf_db`` (48 kHz outputs only): energy above 8.5 kHz relative to the total, in dB - what each system puts
  in the band the 16 kHz mel does not describe (the reference has none: it is 16 kHz audio).

The mel is the model's front-end applied to the 16 kHz recording (``sample_rate=16000``: no decimation), as a
TTS acoustic model's 16 kHz target. HiFiNet's mel frames are uncentred (HiFi-GAN convention: frame ``l`` is
centred on sample ``l * hop + hop / 2``); Griffin-Lim runs a centred STFT, so its output is delayed by
``hop / 2`` samples to line up.

Usage::

    python recipes/vocoder/eval_hifinet.py --checkpoint runs/hifinet_small/best [--out runs/hifinet_small/eval]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from audiozoo.dsp.griffinlim import griffin_lim, mel_to_linear
from audiozoo.dsp.io import load_audio, resample
from audiozoo.eval.speech import multi_resolution_stft_distance, pesq, stoi
from audiozoo.resolve import resolve_model

METRICS = ("mrstft", "pesq_wb", "stoi", "mel_l1", "hf_db")
HIGHER_IS_BETTER = {"pesq_wb", "stoi"}


def griffin_lim_16k(model: torch.nn.Module, mel: torch.Tensor, n_iter: int) -> torch.Tensor:
    """Griffin-Lim inverse ``(T16,)`` of a HiFiNet log-mel ``(1, n_mels, L)`` at the mel's own rate."""
    fe = model.frontend.mel
    hop, n_fft = model.mel_hop_length, fe.n_fft
    mag = mel_to_linear(torch.exp(mel.double()), fe.fb.double())
    gen = torch.Generator().manual_seed(0)
    y = griffin_lim(mag, n_iter, n_fft, hop, fe.spec.win_length, length=(mel.shape[-1] - 1) * hop, generator=gen)[0]
    # centred GL frames sit hop/2 earlier than HiFiNet's uncentred ones: delay, then pad to L * hop
    y = F.pad(y, (hop // 2, 0))
    return F.pad(y, (0, mel.shape[-1] * hop - y.shape[-1])).float()


def hf_db(wav48: torch.Tensor, edge_hz: float = 8500.0) -> float:
    spec = torch.fft.rfft(wav48.double()).abs().square()
    freqs = torch.fft.rfftfreq(wav48.shape[-1], 1 / 48000)
    return float(10 * torch.log10(spec[freqs > edge_hz].sum() / spec.sum().clamp(min=1e-30)).clamp(min=-200))


def scores(est16: torch.Tensor, ref16: torch.Tensor, model: torch.nn.Module) -> dict[str, float]:
    n = min(est16.shape[-1], ref16.shape[-1])
    est, ref = est16[:n], ref16[:n]
    mel_e = model.frontend(est[None], sample_rate=16000)[0]
    mel_r = model.frontend(ref[None], sample_rate=16000)[0]
    return {"mrstft": float(multi_resolution_stft_distance(est.double(), ref.double())["total"]),
            "pesq_wb": float(pesq(est, ref, 16000, mode="wb")), "stoi": float(stoi(est, ref, 16000)),
            "mel_l1": float((mel_e - mel_r).abs().mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--manifest", default="cache/vocoder_speech/test.jsonl")
    ap.add_argument("--out", default=None)
    ap.add_argument("--gl-iters", default="32,100")
    a = ap.parse_args()
    model = resolve_model(a.checkpoint, "vocoder").eval()
    items = [json.loads(line) for line in Path(a.manifest).read_text().splitlines() if line.strip()]
    names = ["HiFiNet (48 kHz)"] + [f"Griffin-Lim {n} it. @16k + sinc" for n in a.gl_iters.split(",")]
    per: dict[str, list[dict]] = {k: [] for k in names}
    seconds = dict.fromkeys(names, 0.0)
    audio_s = 0.0
    for it in items:
        ref, sr = load_audio(it["audio_filepath"], mono=True)
        ref = resample(ref, sr, 16000) if sr != 16000 else ref
        ref = ref / max(1.0, float(ref.abs().max()) / 0.95)
        ref = ref[: ref.shape[-1] // model.mel_hop_length * model.mel_hop_length]
        audio_s += ref.shape[-1] / 16000
        with torch.no_grad():
            mel = model.frontend(ref[None], sample_rate=16000)[0]
            for name in names:
                t0 = time.perf_counter()
                if name.startswith("HiFiNet"):
                    out48 = model(mel)[0][0]
                else:
                    out48 = resample(griffin_lim_16k(model, mel, int(name.split()[1])), 16000, 48000)
                seconds[name] += time.perf_counter() - t0
                m = scores(resample(out48, 48000, 16000), ref, model)
                m["hf_db"] = hf_db(out48)
                per[name].append({"file": Path(it["audio_filepath"]).name, **m})
                print(f"{Path(it['audio_filepath']).name:28s} {name:32s} " +
                      " ".join(f"{k}={v:.3f}" for k, v in m.items()), flush=True)
    mean = {k: {m: float(np.mean([r[m] for r in rows])) for m in METRICS} for k, rows in per.items()}
    for k in mean:
        mean[k]["rtf"] = seconds[k] / audio_s
    first, base = names[0], names[1:]
    cmp_metrics = ("mrstft", "pesq_wb", "stoi", "mel_l1")
    beats = {m: all((mean[first][m] > mean[b][m]) if m in HIGHER_IS_BETTER else (mean[first][m] < mean[b][m])
                    for b in base) for m in cmp_metrics}
    out_dir = Path(a.out) if a.out else Path(a.checkpoint).parent / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {"manifest": a.manifest, "utterances": len(items), "audio_seconds": audio_s, "checkpoint": a.checkpoint,
           "mean": mean, "beats_baselines": beats, "per_utterance": per}
    (out_dir / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    arrow = {m: "↑" if m in HIGHER_IS_BETTER else "↓" for m in METRICS}
    arrow["hf_db"] = ""
    lines = ["| system | " + " | ".join(f"{m} {arrow[m]}".strip() for m in METRICS) + " | CPU RTF |",
             "|" + "---|" * (len(METRICS) + 2)]
    for k, v in mean.items():
        lines.append(f"| {k} | " + " | ".join(f"{v[m]:.3f}" for m in METRICS) + f" | {v['rtf']:.3f} |")
    won = ", ".join(m for m in cmp_metrics if beats[m]) or "nothing"
    note = (f"\n\n{len(items)} held-out utterances ({audio_s:.1f} s at 16 kHz): {a.manifest}. Metrics at 16 kHz "
            f"after soxr downsampling; beats both baselines on: {won}.\n")
    (out_dir / "results.md").write_text("\n".join(lines) + note)
    print("\n".join(lines) + note)


if __name__ == "__main__":
    main()
