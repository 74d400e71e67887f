"""Does self-supervised pretraining help? One encoder, pretrained vs randomly initialised, same protocol (issue #13).

For one ``ssl`` encoder architecture, every initialisation goes through the same downstream protocol:

- **frozen linear probe** on the tasks of :mod:`audiozoo.eval.embeddings_bench` (its task builders, its probe
  :func:`~audiozoo.eval.embeddings_bench.linear_probe` with ``C`` picked on a validation split, its scoring
  :func:`~audiozoo.eval.embeddings_bench.score_task`, its chance and log-mel mean+std baseline). The clip
  embedding is the time-mean of ONE hidden state fixed in advance: the last layer by default (``--layer``),
  computed by :class:`~audiozoo.pipelines.embeddings.AudioEmbeddingPipeline` (``scene``), as ``audiozoo
  bench-embeddings`` does. Each probe runs under ``--probe-seeds`` (the seed of the probe's validation split,
  hence of the ``C`` it picks).
- **short fine-tuning** (optional, ``--ft-task``): encoder + a linear head on the time-mean of the last hidden
  state (``pooled`` of ``fsdd_loso.py``), AdamW with one-cycle LR, the SAME number of steps and batch size for
  every initialisation, on one fold of one task; accuracy on that fold's test split after the last step.
  Clips are resampled to the model's rate and cut / zero-padded to ``--ft-seconds``.

Initialisations: ``--init RUN [RUN ...]`` (checkpoint folders of pretraining runs: ``config.json`` +
``model.safetensors``; one per pretraining seed) and random initialisations drawn from ``--random-seeds`` with
the architecture and config of the first ``--init`` (or ``--model`` + ``--set k=v``). Writes a JSON and a markdown
table (task x initialisation, mean ± sample standard deviation and [min, max] over seeds, beside chance and the
log-mel baseline) and prints the table.

    python recipes/ssl/pretrain_vs_random.py --init runs/pvr/tera_small_speech_s0/best --random-seeds 0 1 \\
        --probe-seeds 0 1 --tasks fsdd_speaker fsdd_digits_loso yesno_words --out runs/pvr/tera_vs_random
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml

import audiozoo
from audiozoo.dsp import resample
from audiozoo.eval.embeddings_bench import ProbeTask, chance, score_task
from audiozoo.hub import read_config
from audiozoo.pipelines.bench_embeddings import build_tasks, clip_pool, embed_clips
from audiozoo.pipelines.embeddings import AudioEmbeddingPipeline
from audiozoo.registry import from_pretrained

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fsdd_loso import pooled, step  # noqa: E402  (time-mean of the last hidden state; one update)

BASELINE = "log-mel mean+std"


# --------------------------------------------------------------------------------------------- encoders
def encoder_spec(init: str | None, model: str | None, overrides: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Architecture name and config of the comparison: the pretraining run's ``config.json`` (its config,
    updated by ``overrides``) or ``model`` + ``overrides``."""
    if init:
        cfg = read_config(init)
        return cfg["model_name"], {**cfg["config"], **overrides}
    if not model:
        raise SystemExit("give --init RUN/best or --model NAME")
    return model, dict(overrides)


def random_encoder(name: str, config: dict[str, Any], seed: int) -> torch.nn.Module:
    """The architecture with random weights drawn from ``seed`` (the model's own initialisation)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = audiozoo.create_model(name, **config)
    model.model_name = name
    return model.eval()


# --------------------------------------------------------------------------------------------- probe
def embed_with(clips: Sequence[Any], model: torch.nn.Module | None, layer: int) -> np.ndarray:
    """``(N, D)`` clip embeddings: time-mean of hidden state ``layer`` (``model=None``: the log-mel baseline)."""
    return embed_clips(clips, None if model is None else AudioEmbeddingPipeline(model, layer=layer))


def probe_all(tasks: Sequence[ProbeTask], emb: np.ndarray, index: dict[str, int],
              seeds: Sequence[int]) -> dict[str, list[float]]:
    """``{task: [accuracy per probe seed]}`` (embeddings_bench's probe and scoring; mean over the task's folds)."""
    return {t.name: [score_task(t, emb[[index[c.key] for c in t.clips]], seed=s)["accuracy"] for s in seeds]
            for t in tasks}


# --------------------------------------------------------------------------------------------- fine-tuning
def load_fixed(clips: Sequence[Any], sample_rate: int, seconds: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips at ``sample_rate``, cut / zero-padded to ``seconds``: ``(N, T)`` and valid lengths ``(N,)``."""
    n = round(seconds * sample_rate)
    wavs, lengths = [], []
    for c in clips:
        wav, sr = c.load()
        w = (resample(wav, sr, sample_rate) if sr != sample_rate else wav)[:n]
        lengths.append(w.shape[0])
        wavs.append(F.pad(w, (0, n - w.shape[0])))
    return torch.stack(wavs), torch.tensor(lengths)


def finetune(model: torch.nn.Module, wav: torch.Tensor, lengths: torch.Tensor, y: torch.Tensor, train: torch.Tensor,
             test: torch.Tensor, num_classes: int, *, steps: int, batch: int, lr: float, seed: int) -> float:
    """Fine-tune a copy of ``model`` + a linear head for exactly ``steps`` steps on ``train`` (indices), return
    the test accuracy. Batches are drawn from a seeded permutation (reshuffled each pass)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        enc = copy.deepcopy(model).train()
        head = torch.nn.Linear(enc.embed_dim, num_classes)
        params = list(enc.parameters()) + list(head.parameters())
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
        order: list[int] = []
        for _ in range(steps):
            if len(order) < batch:
                order += train[torch.randperm(len(train), generator=gen)].tolist()
            idx, order = torch.tensor(order[:batch]), order[batch:]
            feats, frames = enc.frontend(wav[idx], lengths[idx])
            step(F.cross_entropy(head(pooled(enc, feats, frames)), y[idx]), opt, sched, params)
        enc.eval()
        with torch.no_grad():
            logits = []
            for j in test.split(64):
                feats, frames = enc.frontend(wav[j], lengths[j])
                logits.append(head(pooled(enc, feats, frames)))
    return float((torch.cat(logits).argmax(-1) == y[test]).float().mean())


# --------------------------------------------------------------------------------------------- summary
def summarise(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one value), min and max."""
    v = [float(x) for x in values]
    return {"mean": statistics.fmean(v), "sd": statistics.stdev(v) if len(v) > 1 else 0.0, "min": min(v),
            "max": max(v), "n": len(v)}


def compare(pre: Sequence[float], rnd: Sequence[float]) -> dict[str, Any]:
    """Pretrained vs random: difference of means (points of accuracy) and whether every pretrained value beats
    every random one (``beats_all``)."""
    p, r = summarise(pre), summarise(rnd)
    return {"pretrained": p, "random": r, "delta": p["mean"] - r["mean"], "beats_all": p["min"] > r["max"]}


def _fmt(s: dict[str, float]) -> str:
    return f"{100 * s['mean']:.1f} ± {100 * s['sd']:.1f} [{100 * s['min']:.1f}, {100 * s['max']:.1f}]"


def markdown(res: dict[str, Any]) -> str:
    """Rows: probed tasks (and the fine-tuning), columns: chance, log-mel, pretrained, random, delta."""
    lines = ["| task | chance | log-mel mean+std | pretrained | random init | Δ (pre − rand) | pre > every rand |",
             "|---|---:|---:|---:|---:|---:|:---:|"]
    for t, c in res["comparison"].items():
        ch = res["chance"].get(t)
        base = res["baseline"].get(t)
        lines.append(f"| {t} (probe) | {'-' if ch is None else f'{100 * ch:.1f}'} | "
                     f"{'-' if base is None else f'{100 * statistics.fmean(base):.1f}'} | {_fmt(c['pretrained'])} | "
                     f"{_fmt(c['random'])} | {100 * c['delta']:+.1f} | {'yes' if c['beats_all'] else 'no'} |")
    ft = res.get("finetune")
    if ft:
        c = ft["comparison"]
        lines.append(f"| {ft['task']} fold {ft['fold']} (fine-tune {ft['steps']} steps) | "
                     f"{100 * ft['chance']:.1f} | - | {_fmt(c['pretrained'])} | {_fmt(c['random'])} | "
                     f"{100 * c['delta']:+.1f} | {'yes' if c['beats_all'] else 'no'} |")
    notes = [f"- accuracy %, mean ± sample sd [min, max]; pretrained: {len(res['inits'])} pretraining run(s) x "
             f"{len(res['probe_seeds'])} probe seeds; random: {len(res['random_seeds'])} init seeds x "
             f"{len(res['probe_seeds'])} probe seeds; embedding = time-mean of hidden state {res['layer']} "
             f"(-1 = last) of {res['model']}."]
    notes += [f"- **{t}**: {d}" for t, d in res["descriptions"].items()]
    notes += [f"- **{t}**: skipped ({why})" for t, why in res.get("skipped", {}).items()]
    return "\n".join(lines) + "\n\n" + "\n".join(notes) + "\n"


# --------------------------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--init", nargs="*", default=[], help="checkpoint folder(s) of pretraining run(s)")
    ap.add_argument("--model", default=None, help="registry name (when no --init)")
    ap.add_argument("--set", nargs="*", default=[], help="config overrides key=value (YAML values)")
    ap.add_argument("--random-seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--probe-seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--layer", type=int, default=-1, help="hidden state probed (fixed in advance; -1 = last)")
    ap.add_argument("--tasks", nargs="+", default=["fsdd_speaker", "fsdd_digits_loso", "yesno_words"])
    ap.add_argument("--max-clips", type=int, default=None, help="per task (embeddings_bench's subsampling)")
    ap.add_argument("--cache", default="cache/bench_embeddings")
    ap.add_argument("--ft-task", default=None, help="fine-tune on this task's --ft-fold (default: no fine-tuning)")
    ap.add_argument("--ft-fold", type=int, default=0)
    ap.add_argument("--ft-steps", type=int, default=60)
    ap.add_argument("--ft-batch", type=int, default=16)
    ap.add_argument("--ft-lr", type=float, default=5e-4)
    ap.add_argument("--ft-seconds", type=float, default=1.0)
    ap.add_argument("--ft-seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--out", required=True, help="output path without suffix (.json and .md are written)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()
    overrides = {k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    name, config = encoder_spec(args.init[0] if args.init else None, args.model, overrides)
    inits: dict[str, torch.nn.Module] = {}
    for run in args.init:
        m = from_pretrained(run, **overrides).eval()
        inits[f"pretrained:{run}"] = m
    for s in args.random_seeds:
        inits[f"random:{s}"] = random_encoder(name, config, s)
    tasks, skipped = build_tasks(args.tasks, max_clips=args.max_clips, cache=args.cache)
    clips, index = clip_pool(tasks)
    res: dict[str, Any] = {"model": name, "config": config, "layer": args.layer, "inits": args.init,
                           "random_seeds": args.random_seeds, "probe_seeds": args.probe_seeds,
                           "tasks": [t.name for t in tasks], "skipped": skipped,
                           "descriptions": {t.name: t.description for t in tasks},
                           "chance": {t.name: chance(t)["accuracy"] for t in tasks}, "timing_s": {}}
    tb = time.time()
    res["baseline"] = probe_all(tasks, embed_with(clips, None, args.layer), index, args.probe_seeds)
    res["timing_s"][BASELINE] = round(time.time() - tb, 1)
    print(f"[{time.time() - t0:.0f}s] {BASELINE}: {res['baseline']}", flush=True)
    res["scores"] = {}
    for label, model in inits.items():
        tb = time.time()
        res["scores"][label] = probe_all(tasks, embed_with(clips, model, args.layer), index, args.probe_seeds)
        res["timing_s"][label] = round(time.time() - tb, 1)
        print(f"[{time.time() - t0:.0f}s] {label}: {res['scores'][label]}", flush=True)
    pre = [k for k in inits if k.startswith("pretrained:")]
    rnd = [k for k in inits if k.startswith("random:")]
    if pre and rnd:
        res["comparison"] = {t.name: compare([a for k in pre for a in res["scores"][k][t.name]],
                                             [a for k in rnd for a in res["scores"][k][t.name]]) for t in tasks}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")  # the probes, before fine-tuning
    if args.ft_task:
        task = next((t for t in tasks if t.name == args.ft_task), None)
        if task is None:
            raise SystemExit(f"--ft-task {args.ft_task} is not among the tasks built ({res['tasks']})")
        tr, te = task.folds[args.ft_fold]
        sr = int(next(iter(inits.values())).frontend.sample_rate)
        wav, lengths = load_fixed(task.clips, sr, args.ft_seconds)
        y = torch.tensor([task.labels.index(c.label) for c in task.clips])
        ft: dict[str, Any] = {"task": task.name, "fold": (task.fold_names or [str(args.ft_fold)])[args.ft_fold],
                              "steps": args.ft_steps, "batch": args.ft_batch, "lr": args.ft_lr,
                              "seconds": args.ft_seconds, "seeds": args.ft_seeds, "n_train": len(tr),
                              "n_test": len(te), "chance": float((y[te] == torch.bincount(y[tr]).argmax()).float()
                                                                 .mean()), "scores": {}}
        for label, model in inits.items():
            tb = time.time()
            ft["scores"][label] = [finetune(model, wav, lengths, y, torch.tensor(tr), torch.tensor(te),
                                            len(task.labels), steps=args.ft_steps, batch=args.ft_batch,
                                            lr=args.ft_lr, seed=s) for s in args.ft_seeds]
            res["timing_s"][f"finetune {label}"] = round(time.time() - tb, 1)
            print(f"[{time.time() - t0:.0f}s] fine-tune {label}: {ft['scores'][label]}", flush=True)
        if pre and rnd:
            ft["comparison"] = compare([a for k in pre for a in ft["scores"][k]],
                                       [a for k in rnd for a in ft["scores"][k]])
        res["finetune"] = ft
    res["seconds"] = round(time.time() - t0, 1)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    if "comparison" in res:
        table = markdown(res)
        out.with_suffix(".md").write_text(table)
        print(table)
    return res


if __name__ == "__main__":
    main()
