"""Score a query-conditioned separator (USS) on held-out 2-class sound mixtures, queried by label and by example.

Mixtures: ``--pairs`` seeded pairs of clips of two different classes from a held-out manifest (default
``cache/uss_sounds/test.jsonl``: clips the separator never trained on), the second scaled to the first's energy
(the training recipe's ``match_energy``), summed. The target is the first clip. For each mixture:

* **mixture**: the mixture itself as the estimate (SI-SDRi 0 by definition: the baseline);
* **label query**: ``SeparatePipeline(query=LABEL)`` as ``audiozoo separate --query`` runs it (per window the
  query tagger's probabilities of the mixture kept only at the target class);
* **example query**: the tagger's probabilities of *another* held-out clip of the target class (``--query-audio``);
* **wrong query** (control): the label query of the partner's class, scored against the target: it should stay
  near or below 0 dB if the conditioning works;
* **oracle IRM** (upper bound): ``|A| / (|A| + |B|)`` on the model's own STFT (n_fft / hop of its config).

Prints mean SI-SDR and SI-SDRi (dB) per system, overall and per target class, and writes ``--json``.

    python recipes/separate/eval_uss.py -m runs/uss_small_sounds/best --json recipes/separate/results_uss.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from audiozoo.data.manifest import read_manifest
from audiozoo.data.queries import tagger_condition
from audiozoo.dsp.io import load_audio
from audiozoo.eval.separation import oracle_irm, si_sdr
from audiozoo.pipelines import pipeline
from audiozoo.resolve import resolve_model
from audiozoo.train.checkpoint import load_ema_weights


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-m", "--model", required=True, help="USS weight set or checkpoint folder")
    ap.add_argument("--manifest", default="cache/uss_sounds/test.jsonl")
    ap.add_argument("--pairs", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.manual_seed(0)
    model = resolve_model(a.model, family="separate")
    load_ema_weights(model, a.model)  # a training folder: its EMA weights
    model = model.eval()
    cfg = model.config
    tagger = resolve_model(cfg.query_model, family="classify", trained=True).eval()
    meta = getattr(tagger, "pretrained_metadata", None) or {}
    sr, labels = int(model.sample_rate), [str(x) for x in (cfg.labels or meta.get("labels") or [])]
    pipes = {lab: pipeline("separate", model=model, query=lab, query_model=tagger) for lab in labels}
    by_class: dict[str, list[torch.Tensor]] = defaultdict(list)
    for it in read_manifest(a.manifest):
        by_class[it["label"]].append(load_audio(it["audio_filepath"], sample_rate=sr)[0])
    classes = sorted(c for c in by_class if len(by_class[c]) >= 2)
    rng = np.random.default_rng(a.seed)
    systems = ("mixture", "label query", "example query", "wrong query", "oracle IRM")
    rows: list[dict] = []
    t0 = time.perf_counter()
    for _ in range(a.pairs):
        ca, cb = rng.choice(classes, 2, replace=False)
        ia, iq = rng.choice(len(by_class[ca]), 2, replace=False)
        xa, xq = by_class[ca][ia], by_class[ca][iq]
        xb = by_class[cb][int(rng.integers(len(by_class[cb])))]
        n = min(xa.shape[-1], xb.shape[-1])
        xa, xb = xa[:n], xb[:n]
        xb = xb * (xa.pow(2).mean() / xb.pow(2).mean().clamp_min(1e-10)).sqrt()
        mix = xa + xb
        with torch.no_grad():
            est = {"mixture": mix,
                   "label query": pipes[ca].separate(mix[None])[0, 0],
                   "wrong query": pipes[cb].separate(mix[None])[0, 0],
                   "oracle IRM": oracle_irm(mix, torch.stack([xa, xb]), int(cfg.n_fft), int(cfg.hop_length))[0]}
            p = pipes[ca]
            saved, p.condition = p.condition, tagger_condition(tagger, xq[None], sr)
            est["example query"] = p.separate(mix[None])[0, 0]
            p.condition = saved
        base = float(si_sdr(mix, xa))
        rows.append({"target": ca, "other": cb, **{s: float(si_sdr(est[s], xa)) - base for s in systems},
                     "mixture_si_sdr": base})
    wall = time.perf_counter() - t0
    table = {s: round(float(np.mean([r[s] for r in rows])), 2) for s in systems}
    per_class = {c: {s: round(float(np.mean([r[s] for r in rows if r["target"] == c])), 2) for s in systems}
                 | {"n": sum(r["target"] == c for r in rows)} for c in classes}
    print(f"{len(rows)} held-out 2-class mixtures ({a.manifest}), SI-SDRi (dB) of the target, mean:")
    for s in systems:
        print(f"  {s:<14} {table[s]:6.2f}")
    print("per target class:", json.dumps(per_class))
    res = {"model": a.model, "manifest": a.manifest, "pairs": len(rows), "seed": a.seed, "classes": classes,
           "mixture_si_sdr_mean": round(float(np.mean([r["mixture_si_sdr"] for r in rows])), 2),
           "si_sdri": table, "per_target_class": per_class, "wall_s": round(wall, 1)}
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2) + "\n")
        print(f"-> {a.json}")


if __name__ == "__main__":
    main()
