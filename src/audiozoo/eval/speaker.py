"""Speaker similarity and speaker-verification error rates from embeddings.

This module never loads a model (``eval`` does not import ``models``): it takes embeddings, or an embedding
function such as ``create_model("ge2e_speaker_encoder.resemblyzer").embed``.

- :func:`speaker_similarity`: cosine similarity of paired embeddings (the "speaker similarity" / SECS of TTS
  and voice-conversion papers, e.g. SV2TTS §3.3 computes it on GE2E d-vectors).
- :func:`similarity_matrix`: all-pairs cosine similarity.
- :func:`eer`: equal error rate of verification scores: the point of the ROC where the false-acceptance rate
  equals the false-rejection rate, linearly interpolated between the two operating points that bracket it (the
  usual ``roc_curve`` + interpolation definition).
- :func:`voice_ranking`: how close the utterances of a generated voice are to its target voice, against every
  other voice of a set (mean cosine to each voice's centroid; the target's rank) — the zero-shot / adaptation
  criterion "closer to the target than to any other voice".
- :func:`verification_trials` / :func:`speaker_verification`: every pair of utterances as a trial (target if
  both have the same speaker), its EER and the leave-one-out nearest-neighbour speaker identification accuracy.

Scores are "higher = more likely the same speaker"; a trial is accepted when ``score >= threshold``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from audiozoo.errors import AudioError, ConfigError

from ._common import ArrayLike, to_numpy, to_tensor

__all__ = ["eer", "error_rates", "nearest_neighbour_accuracy", "similarity_matrix", "speaker_similarity",
           "speaker_verification", "verification_trials", "voice_ranking"]


def _embeddings(x: ArrayLike, name: str) -> torch.Tensor:
    t = to_tensor(x, name)
    if t.ndim < 1 or t.shape[-1] < 1:
        raise AudioError(f"{name}: embeddings must have a last (feature) axis, got shape {tuple(t.shape)}")
    return t


def speaker_similarity(estimate: ArrayLike, reference: ArrayLike,
                       embed: Callable[[Any], ArrayLike] | None = None) -> torch.Tensor:
    """Cosine similarity of paired speaker embeddings, in [-1, 1] (1: same direction).

    Args:
        estimate, reference: embeddings ``(..., D)`` of the same shape (or broadcastable), or, with ``embed``,
            whatever ``embed`` takes (e.g. waveforms ``(B, T)`` at the encoder's rate).
        embed: optional embedding function applied to both inputs first.

    Returns:
        ``(...)``: one similarity per pair.
    """
    if embed is not None:
        estimate, reference = embed(estimate), embed(reference)
    a, b = _embeddings(estimate, "estimate"), _embeddings(reference, "reference")
    if a.shape[-1] != b.shape[-1]:
        raise AudioError(f"speaker_similarity: embedding sizes differ ({a.shape[-1]} vs {b.shape[-1]})")
    dtype = torch.promote_types(a.dtype, b.dtype)
    return torch.nn.functional.cosine_similarity(a.to(dtype), b.to(dtype), dim=-1, eps=1e-12)


def similarity_matrix(embeddings: ArrayLike, others: ArrayLike | None = None) -> torch.Tensor:
    """All-pairs cosine similarity: ``(N, D)`` (and ``(M, D)``) -> ``(N, M)`` (``M = N`` without ``others``)."""
    a = _embeddings(embeddings, "embeddings")
    b = a if others is None else _embeddings(others, "others")
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise AudioError(f"similarity_matrix expects (N, D) and (M, D) embeddings, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    dtype = torch.promote_types(a.dtype, b.dtype)
    a = torch.nn.functional.normalize(a.to(dtype), dim=-1, eps=1e-12)
    b = torch.nn.functional.normalize(b.to(dtype), dim=-1, eps=1e-12)
    return a @ b.T


def _trials(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s = to_numpy(scores, "scores").reshape(-1)
    lab = to_numpy(labels, "labels", dtype=np.float64).reshape(-1)
    if s.shape != lab.shape:
        raise AudioError(f"scores and labels must have the same number of trials, got {s.size} and {lab.size}")
    if not np.isin(lab, (0.0, 1.0)).all():
        raise AudioError("labels must be 0 (different speakers) or 1 (same speaker)")
    lab = lab.astype(bool)
    if lab.all() or not lab.any():
        raise AudioError(f"an EER needs both target and non-target trials; got {int(lab.sum())} target and "
                         f"{int((~lab).sum())} non-target")
    return s, lab


def error_rates(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Operating points of a verification system, from the strictest threshold to the most lenient.

    Returns ``(thresholds, far, frr)``: the thresholds are ``+inf`` followed by every distinct score in
    decreasing order; at threshold ``t`` (accept when ``score >= t``) ``far`` is the fraction of non-target
    trials accepted and ``frr`` the fraction of target trials rejected.
    """
    s, lab = _trials(scores, labels)
    order = np.argsort(-s, kind="stable")
    s, lab = s[order], lab[order]
    # the last index of each run of equal scores: a threshold accepts a whole tie at once
    last = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]
    accepted_target = np.cumsum(lab)[last]
    accepted_nontarget = np.cumsum(~lab)[last]
    n_t, n_n = lab.sum(), (~lab).sum()
    thresholds = np.r_[np.inf, s[last]]
    far = np.r_[0.0, accepted_nontarget / n_n]
    frr = np.r_[1.0, 1.0 - accepted_target / n_t]
    return thresholds, far, frr


def eer(scores: ArrayLike, labels: ArrayLike) -> tuple[float, float]:
    """Equal error rate of verification ``scores`` with ``labels`` (1 = same speaker): ``(eer, threshold)``.

    Along the operating points of :func:`error_rates`, ``frr - far`` falls from 1 to -1; the EER is where the
    straight ROC segment between the two points that bracket ``frr == far`` crosses it (exactly ``far`` when a
    threshold reaches equality). ``threshold`` is the score threshold of the bracketing point nearer the
    crossing. Perfectly separated scores give 0.
    """
    thresholds, far, frr = error_rates(scores, labels)
    d = frr - far
    k = int(np.argmax(d <= 0))  # first point at or past the crossing (d[-1] = -1, so one exists)
    if d[k] == 0 or k == 0:
        return float(far[k]), float(thresholds[k])
    s = d[k - 1] / (d[k - 1] - d[k])  # in (0, 1]: where the segment k-1 -> k meets frr == far
    value = far[k - 1] + s * (far[k] - far[k - 1])
    t = thresholds[k] if s >= 0.5 or not np.isfinite(thresholds[k - 1]) else thresholds[k - 1]
    return float(value), float(t)


def verification_trials(embeddings: ArrayLike, speakers: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Every unordered pair ``i < j`` of ``(N, D)`` embeddings as a trial: ``(scores, labels)`` with the cosine
    similarity and 1 where ``speakers[i] == speakers[j]``."""
    sim = similarity_matrix(embeddings).double().numpy()
    n = sim.shape[0]
    if len(speakers) != n:
        raise AudioError(f"got {n} embeddings but {len(speakers)} speaker labels")
    if n < 2:
        raise AudioError("verification needs at least two embeddings")
    i, j = np.triu_indices(n, k=1)
    spk = np.asarray([str(s) for s in speakers])
    return sim[i, j], (spk[i] == spk[j]).astype(np.int64)


def nearest_neighbour_accuracy(embeddings: ArrayLike, speakers: Sequence[Any]) -> float:
    """Leave-one-out 1-NN speaker identification: the fraction of utterances whose most similar other utterance
    has the same speaker."""
    sim = similarity_matrix(embeddings).double()
    n = sim.shape[0]
    if len(speakers) != n or n < 2:
        raise AudioError(f"need >= 2 embeddings with one speaker label each, got {n} and {len(speakers)}")
    sim.fill_diagonal_(-torch.inf)
    nn_idx = sim.argmax(dim=1).tolist()
    spk = [str(s) for s in speakers]
    return float(np.mean([spk[i] == spk[j] for i, j in enumerate(nn_idx)]))


def speaker_verification(embeddings: ArrayLike, speakers: Sequence[Any]) -> dict[str, float]:
    """All-pairs verification on ``(N, D)`` embeddings with speaker labels: ``{"eer", "threshold",
    "nn_accuracy", "target_mean", "nontarget_mean", "n_target", "n_nontarget"}``."""
    if len({str(s) for s in speakers}) < 2:
        raise ConfigError("speaker verification needs utterances of at least two speakers")
    scores, labels = verification_trials(embeddings, speakers)
    e, t = eer(scores, labels)
    tgt = labels.astype(bool)
    return {"eer": e, "threshold": t, "nn_accuracy": nearest_neighbour_accuracy(embeddings, speakers),
            "target_mean": float(scores[tgt].mean()), "nontarget_mean": float(scores[~tgt].mean()),
            "n_target": int(tgt.sum()), "n_nontarget": int((~tgt).sum())}


def voice_ranking(embeddings: ArrayLike, centroids: dict[str, ArrayLike], target: str) -> dict[str, Any]:
    """Where the utterances ``(N, D)`` of one generated voice stand among the voices of a set.

    ``centroids`` maps each voice to its centroid ``(D,)`` (e.g. the normalised mean embedding of its recorded
    utterances); it must contain ``target``. Each voice is scored by the mean cosine of the utterances to its
    centroid. Returns ``{"to_target", "best_other": [voice, cosine], "target_rank"`` (1 = the target is the
    closest voice), ``"utterances_closest_to_target"`` (of ``"n"``), ``"n"``, ``"voices"`` (cosine per voice)``}``.
    """
    if target not in centroids or len(centroids) < 2:
        raise ConfigError(f"voice_ranking needs the target {target!r} among >= 2 centroids, got {list(centroids)}")
    names = list(centroids)
    e = _embeddings(embeddings, "embeddings")
    if e.ndim == 1:
        e = e[None]
    sim = similarity_matrix(e, torch.stack([to_tensor(centroids[v], v) for v in names]))  # (N, V)
    mean = sim.mean(0)
    order = sorted(range(len(names)), key=lambda i: -float(mean[i]))
    ti = names.index(target)
    other = next(i for i in order if i != ti)
    return {"to_target": round(float(mean[ti]), 4), "best_other": [names[other], round(float(mean[other]), 4)],
            "target_rank": order.index(ti) + 1, "utterances_closest_to_target": int((sim.argmax(1) == ti).sum()),
            "n": int(e.shape[0]), "voices": {v: round(float(mean[i]), 4) for i, v in enumerate(names)}}
