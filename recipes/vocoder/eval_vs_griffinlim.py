"""Evaluate a trained vocoder against Griffin-Lim (32 and 100 iterations) on held-out real speech.

Every system vocodes the SAME log-mel: the vocoder's front-end applied to the reference recording (APNet:
80 Slaney mels, n_fft 1024, hop 80, window 320, 16 kHz). Griffin-Lim inverts it by the pseudo-inverse of
the mel filterbank then fast Griffin-Lim (momentum 0.99, random initial phase with a fixed seed).
Metrics, each against the reference trimmed to the output's length, averaged over the utterances:

* ``mrstft``: multi-resolution STFT distance (Parallel WaveGAN resolutions; spectral convergence +
  log-magnitude), lower is better;
* ``mcd_db``: mel-cepstral distortion in dB (c1..c24) between WORLD (pyworld) coded spectral envelopes
  (``code_spectral_envelope``, 25 dims, CheapTrick envelopes on each signal's own Harvest F0), frame by
  frame (same timing, no DTW), lower is better;
* ``f0_rmse_hz``: F0 RMSE over frames voiced in both (Harvest, 5 ms hop), lower is better; ``vuv_error``:
  voiced/unvoiced disagreement;
* ``pesq_wb``: wide-band PESQ (P.862.2) at 16 kHz, higher is better; ``stoi``.

Usage::

    python recipes/vocoder/eval_vs_griffinlim.py --checkpoint runs/apnet_small_speech/best \
        [--manifest cache/vocoder_speech/test.jsonl] [--out runs/apnet_small_speech/eval]

Writes ``results.json`` (per utterance and mean) and ``results.md`` (the table) under ``--out``; the
Griffin-Lim rows are cached there (``griffinlim_cache.json``, keyed by front-end settings and file) so that
evaluating another checkpoint does not recompute them (their RTF is then the cached one).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from audiozoo.dsp.io import load_audio, resample
from audiozoo.errors import require
from audiozoo.eval.speech import (
    f0_rmse,
    mel_cepstral_distortion,
    multi_resolution_stft_distance,
    pesq,
    stoi,
    vuv_error_rate,
)
from audiozoo.nn.griffinlim import GriffinLimVocoder
from audiozoo.resolve import resolve_model

METRICS = ("mrstft", "mcd_db", "f0_rmse_hz", "vuv_error", "pesq_wb", "stoi")
HIGHER_IS_BETTER = {"pesq_wb", "stoi"}


def world_features(wav: np.ndarray, sr: int, frame_ms: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """(Harvest F0 (L,), coded spectral envelope (25, L)) of a float waveform."""
    pw = require("pyworld", "WORLD features for MCD / F0", extra="metrics")
    x = wav.astype(np.float64)
    f0, t = pw.harvest(x, sr, frame_period=frame_ms)
    sp = pw.cheaptrick(x, f0, t, sr)
    return f0, pw.code_spectral_envelope(sp, sr, 25).T


def metrics(est: torch.Tensor, ref: torch.Tensor, sr: int) -> dict[str, float]:
    n = min(est.shape[-1], ref.shape[-1])
    est, ref = est[:n].double(), ref[:n].double()
    out = {"mrstft": float(multi_resolution_stft_distance(est, ref)["total"])}
    f0_e, mc_e = world_features(est.numpy(), sr)
    f0_r, mc_r = world_features(ref.numpy(), sr)
    out["mcd_db"] = float(mel_cepstral_distortion(mc_e, mc_r))
    out["f0_rmse_hz"] = float(f0_rmse(f0_e, f0_r))
    out["vuv_error"] = float(vuv_error_rate(f0_e, f0_r))
    out["pesq_wb"] = float(pesq(est.float(), ref.float(), sr, mode="wb"))
    out["stoi"] = float(stoi(est.float(), ref.float(), sr))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True, help="vocoder: checkpoint/hub folder or registry name[.tag]")
    ap.add_argument("--manifest", default="cache/vocoder_speech/test.jsonl")
    ap.add_argument("--out", default=None, help="output folder (default: <checkpoint>/../eval)")
    ap.add_argument("--gl-iters", default="32,100")
    ap.add_argument("--name", default=None, help="row label of the trained vocoder")
    a = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = resolve_model(a.checkpoint, "vocoder").eval()
    sr = int(model.sample_rate)
    systems = {a.name or f"{getattr(model, 'model_name', type(model).__name__)} ({Path(a.checkpoint).name})": model}
    for n in (int(v) for v in a.gl_iters.split(",")):
        systems[f"Griffin-Lim {n} it."] = GriffinLimVocoder.like(model, n_iter=n)
    items = [json.loads(line) for line in Path(a.manifest).read_text().splitlines() if line.strip()]
    out_dir = Path(a.out) if a.out else Path(a.checkpoint).parent / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    # Griffin-Lim rows depend only on the mel (front-end settings) and the recordings: cached across runs
    cache_path = out_dir / "griffinlim_cache.json"
    fe_key = json.dumps({k: getattr(model.frontend.config, k, None) for k in
                         ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels", "f_min", "f_max")})
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    per: dict[str, list[dict]] = {k: [] for k in systems}
    seconds = {k: 0.0 for k in systems}
    audio_s = 0.0
    for it in items:
        wav, file_sr = load_audio(it["audio_filepath"], mono=True)
        wav = resample(wav, file_sr, sr) if file_sr != sr else wav
        wav = wav / max(1.0, float(wav.abs().max()) / 0.95)  # no clipping after resampling
        audio_s += wav.shape[-1] / sr
        with torch.no_grad():
            mel = model.frontend(wav.unsqueeze(0))[0]
            for name, sys_ in systems.items():
                key = f"{fe_key}|{it['audio_filepath']}|{name}"
                if isinstance(sys_, GriffinLimVocoder) and key in cache:
                    m, dt = cache[key]["metrics"], cache[key]["seconds"]
                else:
                    t0 = time.perf_counter()
                    out = sys_(mel)[0][0]
                    dt = time.perf_counter() - t0
                    m = metrics(out, wav, sr)
                    if isinstance(sys_, GriffinLimVocoder):
                        cache[key] = {"metrics": m, "seconds": dt}
                        cache_path.write_text(json.dumps(cache))
                seconds[name] += dt
                per[name].append({"file": Path(it["audio_filepath"]).name, **m})
                print(f"{Path(it['audio_filepath']).name:28s} {name:28s} " +
                      " ".join(f"{k}={v:.3f}" for k, v in m.items()), flush=True)
    mean = {k: {m: float(np.nanmean([r[m] for r in rows])) for m in METRICS} for k, rows in per.items()}
    for k in mean:
        mean[k]["rtf"] = seconds[k] / audio_s
    trained, baselines = next(iter(systems)), list(systems)[1:]
    beats = {m: all((mean[trained][m] > mean[b][m]) if m in HIGHER_IS_BETTER else (mean[trained][m] < mean[b][m])
                    for b in baselines) for m in METRICS}
    doc = {"manifest": a.manifest, "utterances": len(items), "audio_seconds": audio_s, "sample_rate": sr,
           "checkpoint": a.checkpoint, "mean": mean, "beats_griffin_lim": beats, "per_utterance": per}
    (out_dir / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    arrow = {m: "↑" if m in HIGHER_IS_BETTER else "↓" for m in METRICS}
    head = "| system | " + " | ".join(f"{m} {arrow[m]}" for m in METRICS) + " | CPU RTF |"
    lines = [head, "|" + "---|" * (len(METRICS) + 2)]
    for k, v in mean.items():
        cells = [f"{v[m]:.3f}" if not math.isnan(v[m]) else "nan" for m in METRICS]
        lines.append(f"| {k} | " + " | ".join(cells) + f" | {v['rtf']:.3f} |")
    table = "\n".join(lines)
    note = (f"\n\n{len(items)} held-out utterances ({audio_s:.1f} s, {sr} Hz): {a.manifest}. "
            f"Beats every Griffin-Lim row on: {', '.join(m for m in METRICS if beats[m]) or 'nothing'}.\n")
    (out_dir / "results.md").write_text(table + note)
    print(table + note)


if __name__ == "__main__":
    main()
