"""``audiozoo bench-embeddings``: linear probes of every encoder with trained weights over the downstream tasks of
:mod:`audiozoo.eval.embeddings_bench`, beside chance and a log-mel mean+std baseline -> one table (md + JSON).

Each encoder embeds each clip once (:class:`~audiozoo.pipelines.embeddings.AudioEmbeddingPipeline`'s scene
embedding: resampled to the model's rate, long clips in windows); the tasks that share clips (the two FSDD tasks)
share the embeddings. A model that cannot load (e.g. a weight set read from a package that is not installed) is
listed as skipped, as is a task whose data is missing.

>>> from audiozoo.pipelines.bench_embeddings import run
>>> res = run(tasks=["yesno_words"], models=["ast_tiny.fsdd_digits"], max_clips=200)   # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import AudiozooError, ConfigError
from ..eval.embeddings_bench import TASKS, ProbeTask, TaskUnavailable, chance, logmel_stats, score_task
from .embeddings import FAMILIES, AudioEmbeddingPipeline

BASELINE = "log-mel mean+std"
CHANCE = "chance (majority class)"


def default_models() -> list[str]:
    """Every weight set of the ``ssl``, ``classify`` and ``embed`` families (``audiozoo list --weights``)."""
    from ..registry import list_models

    return [m for fam in FAMILIES for m in list_models(fam, with_weights=True)]


def build_tasks(names: Sequence[str] | None = None, *, data_root: str | Path | None = None,
                max_clips: int | None = None, cache: str | Path = "cache/bench_embeddings",
                sonic_pi_dir: str | None = None) -> tuple[list[ProbeTask], dict[str, str]]:
    """The tasks ``names`` (default all of :data:`~audiozoo.eval.embeddings_bench.TASKS`) and the skipped ones
    with the reason (``{name: why}``)."""
    from ..data.builders import shared_data_root

    names = list(names or TASKS)
    unknown = [n for n in names if n not in TASKS]
    if unknown:
        raise ConfigError(f"unknown task(s) {unknown}; tasks: {sorted(TASKS)}")
    try:
        root = shared_data_root(data_root)
    except AudiozooError:  # the tasks that need the shared recordings say they are missing; the others run
        root = Path(data_root or "../shared/data")
    tasks, skipped = [], {}
    for n in names:
        try:
            t = TASKS[n](root, max_clips=max_clips, cache=Path(cache), sonic_pi_dir=sonic_pi_dir)
        except TaskUnavailable as e:
            skipped[n] = str(e)
            continue
        if not t.clips or not all(tr and te for tr, te in t.folds):
            skipped[n] = "no clips (or an empty split) after building"
            continue
        tasks.append(t)
    return tasks, skipped


def clip_pool(tasks: Sequence[ProbeTask]) -> tuple[list, dict[str, int]]:
    """The unique clips over ``tasks`` (clips shared by several tasks are embedded once) and their index by key."""
    pool: dict[str, Any] = {}
    for t in tasks:
        for c in t.clips:
            pool.setdefault(c.key, c)
    return list(pool.values()), {k: i for i, k in enumerate(pool)}


def embed_clips(clips: Sequence[Any], pipe: AudioEmbeddingPipeline | None, desc: str = "",
                progress: bool = False) -> np.ndarray:
    """``(N, D)`` float64: ``pipe``'s clip (scene) embedding of every clip, zero-padded to the model's shortest
    input; ``pipe=None``: the log-mel mean + std baseline."""
    out = []
    for c in tqdm(clips, desc=desc, disable=not progress, leave=False):
        wav, sr = c.load()
        if pipe is None:
            out.append(np.asarray(logmel_stats(wav, sr), np.float64))
            continue
        x = pipe.preprocess({"array": wav, "sampling_rate": sr}).wav
        if x.shape[-1] < pipe.min_samples:  # a clip shorter than the model's shortest input: zero-padded
            x = torch.nn.functional.pad(x, (0, pipe.min_samples - x.shape[-1]))
        out.append(np.asarray(pipe.scene(x), np.float64))
    return np.stack(out)


def run(tasks: Sequence[str] | Sequence[ProbeTask] | None = None, models: Sequence[Any] | None = None, *,
        max_clips: int | None = None, data_root: str | Path | None = None, cache: str | Path = "cache/bench_embeddings",
        sonic_pi_dir: str | None = None, seed: int = 0, progress: bool = False,
        device: str = "cpu") -> dict[str, Any]:
    """Run the benchmark; returns ``{"tasks", "descriptions", "scores": {row: {task: {...}}}, "skipped",
    "skipped_models", "seconds"}`` with rows chance, :data:`BASELINE` and every model.

    ``tasks``: names (built from the project data) or ready :class:`ProbeTask` objects (tests); ``models``: specs
    or modules (default :func:`default_models`).
    """
    t0 = time.time()
    if tasks and all(isinstance(t, ProbeTask) for t in tasks):
        built, skipped = list(tasks), {}
    else:
        built, skipped = build_tasks(tasks, data_root=data_root, max_clips=max_clips, cache=cache,
                                     sonic_pi_dir=sonic_pi_dir)
    names = [t.name for t in built] + list(skipped)
    res: dict[str, Any] = {"tasks": names, "descriptions": {t.name: t.description for t in built},
                           "scores": {CHANCE: {t.name: chance(t) for t in built}, BASELINE: {}},
                           "skipped": skipped, "skipped_models": {}, "models": {}, "max_clips": max_clips, "seed": seed}
    clips, index = clip_pool(built)

    def score_all(row: str, emb: np.ndarray) -> None:
        res["scores"][row] = {t.name: score_task(t, emb[[index[c.key] for c in t.clips]], seed=seed) for t in built}

    if built:
        score_all(BASELINE, embed_clips(clips, None, BASELINE, progress))
    for spec in (default_models() if models is None else models):
        name = spec if isinstance(spec, str) else getattr(spec, "model_name", type(spec).__name__)
        try:
            pipe = AudioEmbeddingPipeline(spec, device=device)
        except (AudiozooError, ImportError) as e:
            res["skipped_models"][name] = f"{type(e).__name__}: {e}"
            continue
        if not built:
            continue
        tm = time.time()
        emb = embed_clips(clips, pipe, name, progress)
        score_all(name, emb)
        res["models"][name] = {"family": pipe.model_family, "embed_dim": int(emb.shape[1]),
                               "embed_seconds": round(time.time() - tm, 1)}
    res["seconds"] = round(time.time() - t0, 1)
    return res
