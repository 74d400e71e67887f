"""An offline HEAR-style benchmark of audio embeddings: linear probes over downstream tasks built from project data.

What is here (``eval`` layer: no models, no resolver): the linear probe, the log-mel mean+std baseline, the
downstream tasks and the results table. :mod:`audiozoo.pipelines.bench_embeddings` runs it over the registered
encoders (CLI ``audiozoo bench-embeddings``).

**Probe** (as HEAR's scene-embedding probe, with a linear model): features standardised with the training
statistics, multinomial logistic regression with an L2 penalty (:func:`fit_logistic`: the objective of
scikit-learn's ``LogisticRegression(C=C)``, solved by L-BFGS in float64), ``C`` picked from :data:`CS` by accuracy
on a validation split of the training data (a held-out group where the task has groups, else a stratified 20 %),
then refitted on all training data with that ``C`` and scored on the test split.

**Tasks** (:data:`TASKS`; clips are loaded at their native rate, the embedder resamples):

- ``fsdd_digits_loso``: spoken digits (10 classes), leave-one-speaker-out over FSDD's 5 speakers (5 folds; C is
  picked on one of the 4 training speakers); the score is the mean over folds.
- ``fsdd_speaker``: speaker identification (5 classes) on FSDD; train takes 5-49, test takes 0-4 (FSDD's split).
- ``yesno_words``: "yes" / "no" (Hebrew *ken* / *lo*) word spotting on words cut from the Kaldi yes/no
  recordings by energy (:func:`cut_words`, each file must give exactly 8 words); Kaldi's split by recording.
- ``sonic_pi_family``: family of Debian's sonic-pi samples (``sonic-pi`` builder and its stratified split; the
  first :data:`MAX_SECONDS` of each sample).
- ``music_instrument``: General-MIDI instrument family (piano, organ, strings, brass, reed, ...) of 3 s excerpts of
  the stems of music21 chorales rendered by the ``music-render`` builder with reassigned instruments; test pieces
  are every 4th piece (no piece in both), test clips of families never seen in training are dropped.

Tasks whose data or tools are missing are reported as skipped, with the reason.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import AudiozooError, ConfigError, DataError

CS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)  # inverse L2 strengths tried on the validation split
MAX_SECONDS = 4.0  # sonic-pi samples are cut to their first 4 s (loops run to 30 s)
GM_FAMILIES = ("piano", "chromatic percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass", "reed",
               "pipe", "synth lead", "synth pad", "synth effects", "ethnic", "percussive", "sound effects")


# --------------------------------------------------------------------------------------------- probe
def fit_logistic(x: torch.Tensor, y: torch.Tensor, num_classes: int, c: float,
                 max_iter: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression: ``x (N, D)``, ``y (N,)`` -> ``(weight (D, K), bias (K,))``.

    Minimises ``sum_i CE_i + ||W||^2 / (2 C)`` (bias not penalised; scikit-learn's ``LogisticRegression(C=c)``
    objective) by L-BFGS with a strong-Wolfe line search in float64.
    """
    if c <= 0:
        raise ConfigError(f"C must be > 0, got {c}")
    x, y = x.double(), y.long()
    n = x.shape[0]
    w = torch.zeros(x.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-9, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        # divided by n: the same minimiser, better-scaled for the line search
        loss = (torch.nn.functional.cross_entropy(x @ w + b, y, reduction="sum") + (w * w).sum() / (2 * c)) / n
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def _standardise(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    mean, std = train.mean(0), train.std(0, unbiased=False).clamp_min(1e-8)
    return [(t - mean) / std for t in (train, *others)]


def _fit_predict(xtr: torch.Tensor, ytr: torch.Tensor, xte: torch.Tensor, k: int, c: float) -> torch.Tensor:
    xtr, xte = _standardise(xtr.double(), xte.double())
    w, b = fit_logistic(xtr, ytr, k, c)
    return (xte @ w + b).argmax(1)


def _validation_split(y: np.ndarray, groups: np.ndarray | None, seed: int) -> np.ndarray:
    """Boolean mask of the validation items: one held-out group (the task's own, e.g. a speaker), else a
    stratified 20 % (at least one item of every class with two or more stays in training)."""
    rng = np.random.default_rng(seed)
    if groups is not None and len(set(groups.tolist())) >= 2:
        names = sorted(set(groups.tolist()))
        return groups == names[int(rng.integers(len(names)))]
    valid = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) < 2:
            continue
        take = max(1, min(len(idx) - 1, round(0.2 * len(idx))))
        valid[rng.permutation(idx)[:take]] = True
    return valid


def linear_probe(x_train: Any, y_train: Any, x_test: Any, y_test: Any, *, groups: Sequence | None = None,
                 cs: Sequence[float] = CS, seed: int = 0) -> dict[str, Any]:
    """Standardise + logistic regression, ``C`` picked on a validation split of the training data.

    Args:
        x_train, x_test: embeddings ``(N, D)``; y_train, y_test: integer labels ``(N,)``.
        groups: per training item, a group (speaker, recording, piece): validation holds one group out.
    Returns ``{"accuracy", "C", "valid_accuracy", "n_train", "n_test"}``.
    """
    xtr, xte = torch.as_tensor(np.asarray(x_train, np.float64)), torch.as_tensor(np.asarray(x_test, np.float64))
    ytr, yte = np.asarray(y_train, np.int64), np.asarray(y_test, np.int64)
    if xtr.ndim != 2 or xte.ndim != 2 or xtr.shape[1] != xte.shape[1]:
        raise DataError(f"probe features must be (N, D) with the same D, got {tuple(xtr.shape)} and {tuple(xte.shape)}")
    if len(ytr) != len(xtr) or len(yte) != len(xte) or not len(ytr) or not len(yte):
        raise DataError("probe: every split needs examples, and one label per example")
    k = int(max(ytr.max(), yte.max())) + 1
    g = np.asarray(groups) if groups is not None else None
    valid = _validation_split(ytr, g, seed)
    best_c, best_acc = float(cs[len(cs) // 2]), -1.0
    if valid.any() and (~valid).any() and len(np.unique(ytr[~valid])) > 1:
        for c in cs:
            pred = _fit_predict(xtr[~valid], torch.as_tensor(ytr[~valid]), xtr[valid], k, c).numpy()
            acc = float((pred == ytr[valid]).mean())
            if acc > best_acc + 1e-12:
                best_c, best_acc = float(c), acc
    pred = _fit_predict(xtr, torch.as_tensor(ytr), xte, k, best_c).numpy()
    return {"accuracy": float((pred == yte).mean()), "C": best_c,
            "valid_accuracy": None if best_acc < 0 else best_acc, "n_train": int(len(ytr)), "n_test": int(len(yte))}


def majority_accuracy(y_train: Any, y_test: Any) -> float:
    """Chance: the accuracy of always answering the most frequent training class."""
    ytr, yte = np.asarray(y_train, np.int64), np.asarray(y_test, np.int64)
    return float((yte == np.bincount(ytr).argmax()).mean())


# --------------------------------------------------------------------------------------------- baseline
def logmel_stats(wav: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """The baseline embedding: mean and standard deviation over time of a 64-band log-mel (dB) at 16 kHz
    (25 ms Hann windows every 10 ms, 50-8,000 Hz): ``(T,)`` -> ``(128,)``."""
    from ..dsp import resample
    from ..dsp.mel import DecibelMelFrontend

    fe = _logmel_frontend(DecibelMelFrontend)
    x = resample(wav.float(), sample_rate, fe.sample_rate) if sample_rate != fe.sample_rate else wav.float()
    if x.shape[-1] < fe.min_samples:
        x = torch.nn.functional.pad(x, (0, fe.min_samples - x.shape[-1]))
    feats, _ = fe(x[None])
    return torch.cat([feats[0].mean(-1), feats[0].std(-1, unbiased=False)])


_LOGMEL: dict[str, Any] = {}


def _logmel_frontend(cls: Any) -> Any:
    if "fe" not in _LOGMEL:
        _LOGMEL["fe"] = cls(sample_rate=16000, n_fft=400, hop_length=160, n_mels=64, f_min=50.0, f_max=8000.0)
    return _LOGMEL["fe"]


# --------------------------------------------------------------------------------------------- tasks
@dataclass
class Clip:
    """One example: ``path`` (read at its native rate; ``start``/``end`` in samples cut an excerpt), its label,
    and a group (speaker, recording, piece) that never straddles a training and a test split."""

    path: str
    label: str
    group: str = ""
    start: int = 0
    end: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.path}:{self.start}:{self.end}"

    def load(self) -> tuple[torch.Tensor, int]:
        """Mono ``(T,)`` float32 at the file's rate, and the rate (only the excerpt is read)."""
        import soundfile as sf

        try:
            x, sr = sf.read(self.path, start=self.start, stop=self.end, dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError) as e:
            raise DataError(f"{self.path}: cannot read audio ({e})") from e
        return torch.from_numpy(x.mean(1)), int(sr)


@dataclass
class ProbeTask:
    """A downstream task: clips, folds (``(train indices, test indices)``; the score is the mean over folds) and
    whether validation holds a group out (``group_valid``)."""

    name: str
    description: str
    clips: list[Clip]
    folds: list[tuple[list[int], list[int]]]
    fold_names: list[str] = field(default_factory=list)
    group_valid: bool = True

    @property
    def labels(self) -> list[str]:
        return sorted({c.label for c in self.clips})


class TaskUnavailable(AudiozooError):
    """The data or tools a task needs are missing (the task is reported as skipped)."""


def _subsample(clips: list[Clip], max_clips: int | None, key: Callable[[Clip], str] = lambda c: c.label,
               seed: int = 0) -> list[Clip]:
    """A deterministic, label-stratified subset of at most ``max_clips`` (round-robin over labels in hash order)."""
    if max_clips is None or len(clips) <= max_clips:
        return clips
    h = lambda c: hashlib.sha256(f"{seed}\0{c.key}".encode()).hexdigest()  # noqa: E731
    by: dict[str, list[Clip]] = {}
    for c in sorted(clips, key=h):
        by.setdefault(key(c), []).append(c)
    out: list[Clip] = []
    queues = [by[k] for k in sorted(by)]
    while len(out) < max_clips and any(queues):
        for q in queues:
            if q and len(out) < max_clips:
                out.append(q.pop(0))
    keep = {c.key for c in out}
    return [c for c in clips if c.key in keep]


def _fsdd_clips(root: Path, max_clips: int | None) -> list[Clip]:
    folder = root / "fsdd"
    files = sorted(folder.glob("*_*_*.wav")) if folder.is_dir() else []
    if not files:
        raise TaskUnavailable(f"FSDD not found in {folder}")
    clips = []
    for p in files:
        m = re.match(r"^(\d)_([a-z]+)_(\d+)$", p.stem)
        if m:
            clips.append(Clip(str(p), m[1], m[2], meta={"take": int(m[3])}))
    if max_clips is not None and len(clips) > max_clips:  # the same takes of every speaker and digit
        takes = max(10, math.ceil(max_clips / max(1, len({(c.group, c.label) for c in clips}))))
        clips = [c for c in clips if c.meta["take"] < takes]
    return clips


def fsdd_digits_loso(root: Path, max_clips: int | None = None, **_: Any) -> ProbeTask:
    clips = _fsdd_clips(root, max_clips)
    speakers = sorted({c.group for c in clips})
    folds = [([i for i, c in enumerate(clips) if c.group != s], [i for i, c in enumerate(clips) if c.group == s])
             for s in speakers]
    return ProbeTask("fsdd_digits_loso", f"FSDD digits (10 classes), leave-one-speaker-out over {len(speakers)} "
                     f"speakers, {len(clips)} clips", clips, folds, speakers)


def fsdd_speaker(root: Path, max_clips: int | None = None, **_: Any) -> ProbeTask:
    clips = [Clip(c.path, c.group, c.label, meta=c.meta) for c in _fsdd_clips(root, max_clips)]  # label = speaker
    test = [i for i, c in enumerate(clips) if c.meta["take"] <= 4]
    train = [i for i, c in enumerate(clips) if c.meta["take"] > 4]
    return ProbeTask("fsdd_speaker", f"FSDD speaker identification ({len({c.label for c in clips})} classes), "
                     f"train takes 5+, test takes 0-4, {len(clips)} clips", clips, [(train, test)], ["takes 0-4"],
                     group_valid=False)


def cut_words(wav: torch.Tensor, sample_rate: int, n_words: int = 8) -> list[tuple[int, int]] | None:
    """Cut ``n_words`` words out of a recording of isolated words: ``[(start, end)]`` in samples, or ``None``.

    Frame energies (25 ms every 10 ms, dB); the highest threshold (from 6 dB under the peak down) that gives
    exactly ``n_words`` runs (gaps under 150 ms bridged, runs under 80 ms dropped) finds the words' cores, which
    are then widened while the energy stays above 30 % of the way from the noise floor (10th percentile) to that
    threshold, never past the midpoint to a neighbour.
    """
    x = wav.double().numpy()
    hop, win = sample_rate // 100, sample_rate * 25 // 1000
    if len(x) < 2 * win:
        return None
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(x, (0, win)), win)[::hop]
    db = 10 * np.log10((frames ** 2).mean(1) + 1e-10)
    floor = float(np.percentile(db, 10))
    for th in np.arange(db.max() - 6.0, floor + 3.0, -1.0):
        edges = np.flatnonzero(np.diff(np.r_[0, (db > th).astype(int), 0]))
        runs: list[list[int]] = []
        for a, b in zip(edges[::2], edges[1::2]):
            if runs and a - runs[-1][1] < 15:
                runs[-1][1] = int(b)
            else:
                runs.append([int(a), int(b)])
        runs = [r for r in runs if r[1] - r[0] >= 8]
        if len(runs) == n_words:
            break
    else:
        return None
    low = floor + 0.3 * (th - floor)
    out = []
    for k, (a, b) in enumerate(runs):
        lo = (runs[k - 1][1] + a) // 2 if k else 0
        hi = (b + runs[k + 1][0]) // 2 if k + 1 < len(runs) else len(db)
        while a > lo and db[a - 1] > low:
            a -= 1
        while b < hi and db[b] > low:
            b += 1
        out.append((a * hop, min(len(x), b * hop + win)))
    return out


def yesno_words(root: Path, max_clips: int | None = None, **_: Any) -> ProbeTask:
    from ..dsp.io import load_audio

    folder = root / "yesno"
    files = sorted(p for p in folder.glob("*.wav") if re.match(r"^[01](_[01]){7}$", p.stem)) if folder.is_dir() else []
    if not files:
        raise TaskUnavailable(f"the yes/no recordings are not in {folder}")
    if max_clips is not None:  # 8 words a file
        files = files[:: max(1, math.ceil(len(files) / max(1, max_clips // 8)))]
    clips, failed = [], 0
    for i, p in enumerate(files):
        wav, sr = load_audio(p, mono=True)
        cuts = cut_words(wav, sr)
        if cuts is None:
            failed += 1
            continue
        subset = "train" if i < len(files) / 2 else "test"  # Kaldi's split: first half of the sorted list trains
        for w, (a, b) in zip(p.stem.split("_"), cuts):
            clips.append(Clip(str(p), "yes" if w == "1" else "no", p.stem, a, b, {"subset": subset}))
    folds = [([i for i, c in enumerate(clips) if c.meta["subset"] == "train"],
              [i for i, c in enumerate(clips) if c.meta["subset"] == "test"])]
    note = f", {failed} recording(s) not cut into 8 words left out" if failed else ""
    return ProbeTask("yesno_words", f"yes/no word spotting (2 classes), words cut from {len(files) - failed} "
                     f"recordings, split by recording (Kaldi), {len(clips)} words{note}", clips, folds, ["kaldi"])


def _build(name: str, out: Path, **options: Any) -> Path:
    from ..data.builders import build
    from ..errors import MissingDependencyError

    try:
        return build(name, out, progress=False, **options)
    except (MissingDependencyError, DataError) as e:
        raise TaskUnavailable(str(e)) from e


def sonic_pi_family(root: Path, max_clips: int | None = None, cache: Path = Path("cache"),
                    sonic_pi_dir: str | None = None, **_: Any) -> ProbeTask:
    from ..data.manifest import read_manifest

    opts = {"source": sonic_pi_dir} if sonic_pi_dir else {}
    manifest = _build("sonic-pi", Path(cache) / "sonic_pi", **opts)
    clips = []
    for subset in ("train", "test"):
        for it in read_manifest(manifest.parent / f"{subset}.jsonl"):
            path = Path(it["audio_filepath"])
            path = path if path.is_absolute() else manifest.parent / path
            sr = int(it.get("sample_rate") or 22050)
            clips.append(Clip(str(path), it["label"], it["name"], 0, round(MAX_SECONDS * sr), {"subset": subset}))
    clips = _subsample(clips, max_clips)
    folds = [([i for i, c in enumerate(clips) if c.meta["subset"] == "train"],
              [i for i, c in enumerate(clips) if c.meta["subset"] == "test"])]
    return ProbeTask("sonic_pi_family", f"sonic-pi sample family ({len({c.label for c in clips})} classes), the "
                     f"builder's stratified split, first {MAX_SECONDS:g} s, {len(clips)} samples", clips, folds,
                     ["builder split"], group_valid=False)


def music_instrument(root: Path, max_clips: int | None = None, cache: Path = Path("cache"), pieces: int = 12,
                     seconds: float = 3.0, **_: Any) -> ProbeTask:
    from ..data.manifest import read_manifest
    from ..dsp.io import load_audio

    manifest = _build("music-render", Path(cache) / f"music_render_{pieces}", pieces=pieces,
                      reassign_instruments=True)
    items = sorted(read_manifest(manifest), key=lambda it: it["audio_filepath"])
    clips = []
    for k, it in enumerate(items):
        for part, rel in sorted(it["stems"].items()):
            path = manifest.parent / rel
            wav, sr = load_audio(path, mono=True)
            n = round(seconds * sr)
            fam = GM_FAMILIES[int(it["programs"][part]) // 8]
            for s in range(0, max(1, len(wav) - n + 1), n):
                seg = wav[s:s + n]
                if float(seg.pow(2).mean().sqrt()) > 1e-3:  # skip rests
                    clips.append(Clip(str(path), fam, it["audio_filepath"], s, s + n, {"test": k % 4 == 3}))
    clips = _subsample(clips, max_clips)
    train = [i for i, c in enumerate(clips) if not c.meta["test"]]
    seen = {clips[i].label for i in train}
    test = [i for i, c in enumerate(clips) if c.meta["test"] and c.label in seen]
    return ProbeTask("music_instrument", f"instrument family ({len(seen)} GM families) of {seconds:g} s stem "
                     f"excerpts, music-render ({len(items)} chorales, reassigned instruments), test = every 4th "
                     f"piece, {len(train) + len(test)} excerpts", clips, [(train, test)], ["pieces"])


TASKS: dict[str, Callable[..., ProbeTask]] = {
    "fsdd_digits_loso": fsdd_digits_loso, "fsdd_speaker": fsdd_speaker, "yesno_words": yesno_words,
    "sonic_pi_family": sonic_pi_family, "music_instrument": music_instrument,
}


# --------------------------------------------------------------------------------------------- scoring
def score_task(task: ProbeTask, embeddings: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """Probe ``embeddings (len(task.clips), D)`` on every fold: ``{"accuracy" (mean), "folds": [...]}``."""
    labels = task.labels
    y = np.array([labels.index(c.label) for c in task.clips])
    groups = np.array([c.group for c in task.clips])
    folds = []
    for (tr, te), name in zip(task.folds, task.fold_names or [str(i) for i in range(len(task.folds))]):
        r = linear_probe(embeddings[tr], y[tr], embeddings[te], y[te], groups=groups[tr] if task.group_valid else None,
                         seed=seed)
        folds.append({"fold": name, **r})
    return {"accuracy": float(np.mean([f["accuracy"] for f in folds])), "folds": folds}


def chance(task: ProbeTask) -> dict[str, Any]:
    labels = task.labels
    y = np.array([labels.index(c.label) for c in task.clips])
    accs = [majority_accuracy(y[tr], y[te]) for tr, te in task.folds]
    return {"accuracy": float(np.mean(accs)), "uniform": 1.0 / len(labels)}


def write_table(results: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    """``results`` (see :func:`audiozoo.pipelines.bench_embeddings.run`) -> ``out.md`` and ``out.json``."""
    out = Path(out)
    base = out.with_suffix("") if out.suffix in (".md", ".json") else out
    base.parent.mkdir(parents=True, exist_ok=True)
    md, js = base.with_suffix(".md"), base.with_suffix(".json")
    js.write_text(json.dumps(results, indent=1) + "\n")
    md.write_text(markdown_table(results))
    return md, js


def markdown_table(results: dict[str, Any]) -> str:
    """Rows: chance, the log-mel baseline and every model; columns: the tasks run (accuracy, %)."""
    tasks = [t for t in results["tasks"] if t not in results.get("skipped", {})]
    lines = ["| model | " + " | ".join(tasks) + " |", "|---|" + "---:|" * len(tasks)]
    for row, scores in results["scores"].items():
        cells = []
        for t in tasks:
            s = scores.get(t)
            cells.append("-" if s is None or "accuracy" not in s else f"{100 * s['accuracy']:.1f}")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    parts = ["\n".join(lines), ""]
    parts += [f"- **{t}**: {results['descriptions'][t]}" for t in tasks]
    for t, why in results.get("skipped", {}).items():
        parts.append(f"- **{t}**: skipped ({why})")
    for m, why in results.get("skipped_models", {}).items():
        parts.append(f"- model **{m}** skipped ({why})")
    return "\n".join(parts) + "\n"
