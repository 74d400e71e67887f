"""Score a 2-speaker separator on held-out mixtures against the unprocessed mixture and the oracle IRM.

For every mixture of a ``mixtures`` manifest (default: ``cache/separate_speech/mix_real``, real voices no
model trained on; build it with ``prepare_speech.py``) and each of its two sources this prints, for three
systems — the unprocessed **mixture** (each source "estimated" by the mixture), the **oracle IRM** (upper bound:
the ideal ratio mask ``|S_i| / (|S_1| + |S_2|)`` on a 32 ms / 8 ms Hann STFT of the mixture, from the true
sources) and the **model** (outputs matched to the sources by utterance-level PIT on SI-SDR):

* SI-SDR and SI-SDRi (dB, Le Roux et al. 2019; improvement over the mixture), mean over sources;
* SDR (dB): BSS-eval v3 ``mir_eval.separation.bss_eval_sources`` (512-tap distortion filter), per mixture;
* WER (%): Whisper tiny.en (``audiozoo.eval.judges``) of each output against Whisper's transcript of the clean
  source (no human transcripts exist for most real voices); corpus WER after Whisper's normaliser;
* DNSMOS P.835 OVRL / SIG / BAK of each output (no-reference; clean sources given for scale).

Usage: ``python recipes/separate/eval_real.py -m runs/conv_tasnet_small_speech/best [--manifest M] [--limit N]
[--no-judges] [--json OUT]``. ``-m`` takes anything ``audiozoo.resolve_model`` does (a weight set such as
``conv_tasnet_speech.TAG``, a checkpoint folder, ...); a checkpoint folder's EMA weights are used when present.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from audiozoo import resolve_model
from audiozoo.data.manifest import read_manifest
from audiozoo.dsp.io import load_audio
from audiozoo.eval.separation import bss_eval_sources, oracle_irm, pit_si_sdr, si_sdr
from audiozoo.train.checkpoint import load_ema_weights

N_FFT, HOP = 256, 64  # 32 ms / 8 ms at 8 kHz


def load_separator(spec: str) -> torch.nn.Module:
    model = resolve_model(spec, family="separate")
    load_ema_weights(model, spec)  # a training folder: its EMA weights
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("--manifest", default="cache/separate_speech/mix_real/manifest.jsonl")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--no-judges", action="store_true", help="skip Whisper WER and DNSMOS")
    ap.add_argument("--judge-limit", type=int, default=None, help="WER and DNSMOS on the first N mixtures only")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.manual_seed(0)
    model = load_separator(a.model)
    sr = int(model.sample_rate)
    items = read_manifest(a.manifest)[: a.limit]
    systems = ("mixture", "oracle IRM", "model")
    outs: dict[str, list[torch.Tensor]] = {s: [] for s in systems}
    refs: list[torch.Tensor] = []
    seconds = 0.0
    for it in items:
        mix = load_audio(it["audio_filepath"], sample_rate=sr)[0]
        src = torch.stack([load_audio(p, sample_rate=sr)[0] for p in it["stems"].values()])
        t0 = time.perf_counter()
        with torch.no_grad():
            est = model(mix[None, None])[0, :, 0]  # (S, T)
        seconds += time.perf_counter() - t0
        _, perm = pit_si_sdr(est, src)
        refs.append(src)
        outs["model"].append(est[perm])
        outs["oracle IRM"].append(oracle_irm(mix, src, N_FFT, HOP))
        outs["mixture"].append(mix[None].expand_as(src).clone())
    ref = torch.stack(refs)  # (N, S, T)
    res: dict[str, dict[str, float]] = {}
    base = si_sdr(torch.stack(outs["mixture"]), ref)
    # per speaker: the model's SI-SDRi on every source that speaker utters (a voice it separates badly shows)
    gains = (si_sdr(torch.stack(outs["model"]), ref) - base).tolist()
    per_speaker: dict[str, list[float]] = {}
    for it, g in zip(items, gains):
        for spk, v in zip(it.get("speakers", ["?"] * len(g)), g):
            per_speaker.setdefault(spk, []).append(v)
    for s in systems:
        est = torch.stack(outs[s])
        sis = si_sdr(est, ref)
        sdr = [float(np.mean(bss_eval_sources(e.numpy(), r.numpy(), compute_permutation=False)["sdr"]))
               for e, r in zip(est, ref)]
        res[s] = {"si_sdr": float(sis.mean()), "si_sdri": float((sis - base).mean()), "sdr": float(np.mean(sdr))}
    if not a.no_judges:
        from audiozoo.eval.judges import dnsmos, transcribe, whisper_wer

        nj = a.judge_limit or len(items)

        def flat(x: torch.Tensor) -> list[torch.Tensor]:
            x = x[:nj]
            return [w * min(1.0, 0.9 / max(float(w.abs().max()), 1e-8)) for w in x.flatten(0, 1)]  # soxr overshoot

        truth = transcribe(flat(ref), sr)
        keep = [i for i, t in enumerate(truth) if t.strip()]  # sources Whisper hears no words in are skipped
        res["clean source"] = {"wer": 0.0}
        for s in systems:
            hyp = transcribe(flat(torch.stack(outs[s])), sr)
            res[s]["wer"] = 100 * whisper_wer([hyp[i] for i in keep], [truth[i] for i in keep])
        for s, x in (("clean source", ref), *((s, torch.stack(outs[s])) for s in systems)):
            d = dnsmos(flat(x), sr)
            res[s].update({k: float(d[k].mean()) for k in ("ovrl", "sig", "bak")})
        res["clean source"]["wer_items"] = len(keep)
        res["clean source"]["judged_mixtures"] = min(nj, len(items))
    n = len(items)
    print(f"{n} mixtures x 2 sources of {a.manifest} ({ref.shape[-1] / sr:g} s each, {sr} Hz); model {a.model}; "
          f"separation {seconds / n * 1000:.1f} ms per mixture (1 thread: {torch.get_num_threads()})")
    cols = ("si_sdr", "si_sdri", "sdr", "wer", "ovrl", "sig", "bak")
    print(f"| system | {' | '.join(c.replace('_', '-').upper().replace('SI-SDRI', 'SI-SDRi') for c in cols)} |")
    print("|---" * (len(cols) + 1) + "|")
    for s, r in res.items():
        print(f"| {s} | " + " | ".join(f"{r[c]:.2f}" if c in r else "" for c in cols) + " |")
    print("model SI-SDRi per speaker (dB, sources): " + ", ".join(
        f"{k} {np.mean(v):+.2f} ({len(v)})" for k, v in sorted(per_speaker.items())))
    if "clean source" in res:
        c = res["clean source"]
        print(f"WER and DNSMOS on the first {c['judged_mixtures']} mixtures; WER over the {c['wer_items']} sources "
              "Whisper hears words in (reference: Whisper's transcript of the clean source)")
    if a.json:
        Path(a.json).write_text(json.dumps({"manifest": a.manifest, "model": a.model, "items": n, "results": res,
                                            "model_si_sdri_per_speaker": {k: [float(np.mean(v)), len(v)] for k, v
                                                                          in sorted(per_speaker.items())}},
                                           indent=1))


if __name__ == "__main__":
    main()
