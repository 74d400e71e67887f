"""Classification metrics: accuracy, top-k, macro-F1, mAP, ROC AUC and d-prime.

All functions take torch tensors or numpy arrays and return Python floats (or a numpy array of
per-class values). They follow scikit-learn's definitions, so results agree with
``sklearn.metrics`` (checked in tests), and the AudioSet conventions of Gemmeke et al. (2017) and
PANNs (Kong et al., 2020) for mAP / AUC / d-prime. Numpy is used on purpose: these are ranking
metrics over a whole evaluation set, computed once, not differentiated.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from audiozoo.errors import DataError

from ._common import ArrayLike, to_numpy

__all__ = [
    "accuracy",
    "top_k_accuracy",
    "macro_f1",
    "average_precision",
    "mean_average_precision",
    "roc_auc",
    "roc_auc_per_class",
    "d_prime",
]


def _labels(target: ArrayLike, name: str = "target") -> np.ndarray:
    y = to_numpy(target, name)
    if y.ndim != 1:
        raise DataError(f"{name}: expected class indices of shape (N,), got shape {y.shape}")
    if y.size == 0:
        raise DataError(f"{name}: empty (no examples to score)")
    if np.any(y != np.round(y)) or np.any(y < 0):
        raise DataError(f"{name}: class indices must be non-negative integers")
    return y.astype(np.int64)


def _scores_2d(scores: ArrayLike, n: int, name: str = "scores") -> np.ndarray:
    s = to_numpy(scores, name)
    if s.ndim != 2 or s.shape[0] != n:
        raise DataError(f"{name}: expected shape (N={n}, C), got {s.shape}")
    return s


def _predicted_labels(pred: ArrayLike, n: int) -> np.ndarray:
    """(N,) labels as given, or argmax over classes of (N, C) scores/logits."""
    p = to_numpy(pred, "pred")
    if p.shape[:1] != (n,) or p.ndim > 2:
        raise DataError(f"pred: expected (N={n},) labels or (N={n}, C) scores, got shape {p.shape}")
    if p.ndim == 2:
        p = p.argmax(axis=1)
    return _labels(p, "pred")


def accuracy(pred: ArrayLike, target: ArrayLike) -> float:
    """Fraction of examples whose predicted class equals the target class.

    Args:
        pred: ``(N,)`` predicted class indices, or ``(N, C)`` scores/logits (argmax is taken).
        target: ``(N,)`` true class indices.
    """
    y = _labels(target)
    return float(np.mean(_predicted_labels(pred, y.size) == y))


def top_k_accuracy(scores: ArrayLike, target: ArrayLike, k: int = 5) -> float:
    """Fraction of examples whose true class is among the ``k`` highest scores.

    Args:
        scores: ``(N, C)`` scores/logits/probabilities.
        target: ``(N,)`` true class indices.
        k: how many top classes count as a hit (``k >= C`` gives 1.0, as scikit-learn does).
    """
    y = _labels(target)
    s = _scores_2d(scores, y.size)
    if k < 1:
        raise DataError(f"top_k_accuracy: k must be >= 1, got {k}")
    if y.max() >= s.shape[1]:
        raise DataError(f"target: class index {y.max()} out of range for {s.shape[1]} score columns")
    # A hit iff fewer than k classes score strictly higher than the true class. (Ties with the true
    # class are counted in its favour; with continuous scores there are none.)
    true_score = s[np.arange(y.size), y]
    higher = (s > true_score[:, None]).sum(axis=1)
    return float(np.mean(higher < k))


def macro_f1(pred: ArrayLike, target: ArrayLike, num_classes: int | None = None, threshold: float = 0.5) -> float:
    """Unweighted mean over classes of F1 = 2 TP / (2 TP + FP + FN) (scikit-learn ``average="macro"``).

    Single-label: ``target`` is ``(N,)`` class indices and ``pred`` is ``(N,)`` indices or ``(N, C)``
    scores (argmax). Classes averaged are those present in ``target`` or the predictions (scikit-learn's
    default ``labels``), or all ``range(num_classes)`` when given; a class never true nor predicted then
    scores 0 (scikit-learn's ``zero_division=0``).

    Multi-label: ``target`` is ``(N, C)`` multi-hot and ``pred`` is ``(N, C)`` scores thresholded at
    ``score >= threshold`` (or already 0/1). All ``C`` classes are averaged, as scikit-learn does.
    """
    t = to_numpy(target, "target")
    if t.ndim == 2:
        p = _scores_2d(pred, t.shape[0], "pred")
        if p.shape != t.shape:
            raise DataError(f"pred {p.shape} and multi-hot target {t.shape} must have the same shape")
        yp, yt = p >= threshold, t > 0.5
        tp = (yp & yt).sum(axis=0)
        fp = (yp & ~yt).sum(axis=0)
        fn = (~yp & yt).sum(axis=0)
    else:
        y = _labels(target)
        yp_lab = _predicted_labels(pred, y.size)
        if num_classes is None:
            classes = np.union1d(y, yp_lab)
        else:
            if max(y.max(), yp_lab.max()) >= num_classes:
                raise DataError(f"macro_f1: a class index is >= num_classes={num_classes}")
            classes = np.arange(num_classes)
        yt = y[:, None] == classes[None, :]
        yp = yp_lab[:, None] == classes[None, :]
        tp = (yp & yt).sum(axis=0)
        fp = (yp & ~yt).sum(axis=0)
        fn = (~yp & yt).sum(axis=0)
    denom = 2 * tp + fp + fn
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    return float(f1.mean())


def _multi_hot(target: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(scores (N, C), multi-hot target (N, C))``; ``(N,)`` binary scores become one column."""
    s = to_numpy(scores, "scores")
    t = to_numpy(target, "target")
    if s.ndim == 1:  # binary task: one score per example, target 0/1
        s, t = s[:, None], t.reshape(-1, 1) if t.ndim == 1 else t
    if s.ndim != 2:
        raise DataError(f"scores: expected shape (N, C) or (N,), got {s.shape}")
    if t.ndim == 1 and s.shape[1] > 1:  # class indices -> one-hot (one-vs-rest)
        y = _labels(t)
        if y.max() >= s.shape[1]:
            raise DataError(f"target: class index {y.max()} out of range for {s.shape[1]} score columns")
        t = np.eye(s.shape[1])[y]
    if t.shape != s.shape:
        raise DataError(f"target {t.shape} does not match scores {s.shape}")
    if s.shape[0] == 0:
        raise DataError("scores: empty (no examples to score)")
    return s, t > 0.5


def _average_precision_1d(s: np.ndarray, y: np.ndarray) -> float:
    # Non-interpolated AP = sum_n (R_n - R_{n-1}) P_n over *distinct* score thresholds (tied scores form
    # one threshold), which is exactly sklearn.metrics.average_precision_score.
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_group = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tps = np.cumsum(y)[last_of_group]
    precision = tps / (last_of_group + 1)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def average_precision(scores: ArrayLike, target: ArrayLike) -> np.ndarray:
    """Per-class average precision, ``(C,)``; NaN for classes with no positive example.

    Args:
        scores: ``(N, C)`` scores (any monotone scale: logits or probabilities), or ``(N,)`` for binary.
        target: ``(N, C)`` multi-hot labels, or ``(N,)`` class indices (one-vs-rest), or ``(N,)`` 0/1
            with binary scores.
    """
    s, t = _multi_hot(target, scores)
    ap = np.full(s.shape[1], np.nan)
    for c in range(s.shape[1]):
        if t[:, c].any():
            ap[c] = _average_precision_1d(s[:, c], t[:, c])
    return ap


def mean_average_precision(scores: ArrayLike, target: ArrayLike) -> float:
    """mAP, AudioSet convention: mean over classes of average precision (see :func:`average_precision`).

    Classes without any positive example in ``target`` are **skipped** (their AP is undefined; the
    AudioSet eval set has positives for all 527 classes, but small subsets do not). scikit-learn's
    ``average_precision_score(average="macro")`` would instead include them, so pass only classes with
    positives when comparing with it.
    """
    ap = average_precision(scores, target)
    if np.all(np.isnan(ap)):
        raise DataError("mean_average_precision: no class has a positive example in target")
    return float(np.nanmean(ap))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank (like scipy.stats.rankdata)."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    end = np.cumsum(counts)
    return ((end - counts + 1 + end) / 2.0)[inverse]


def roc_auc_per_class(scores: ArrayLike, target: ArrayLike) -> np.ndarray:
    """Per-class area under the ROC curve, ``(C,)``; NaN where a class lacks positives or negatives.

    Computed as the Mann-Whitney U statistic, AUC = P(score_pos > score_neg) + 0.5 P(tie), which equals
    the trapezoidal area scikit-learn's ``roc_auc_score`` computes. Inputs as in
    :func:`average_precision`.
    """
    s, t = _multi_hot(target, scores)
    auc = np.full(s.shape[1], np.nan)
    for c in range(s.shape[1]):
        n_pos = int(t[:, c].sum())
        n_neg = t.shape[0] - n_pos
        if n_pos == 0 or n_neg == 0:
            continue
        ranks = _average_ranks(s[:, c])
        auc[c] = (ranks[t[:, c]].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    return auc


def roc_auc(scores: ArrayLike, target: ArrayLike) -> float:
    """Macro ROC AUC: mean over classes of :func:`roc_auc_per_class`, skipping undefined classes."""
    auc = roc_auc_per_class(scores, target)
    if np.all(np.isnan(auc)):
        raise DataError("roc_auc: no class has both positive and negative examples in target")
    return float(np.nanmean(auc))


def d_prime(auc: float | ArrayLike) -> float | np.ndarray | torch.Tensor:
    """Sensitivity index d' = sqrt(2) * Phi^{-1}(AUC), as reported for AudioSet (Gemmeke et al., 2017;
    Hershey et al., 2017) and PANNs (Kong et al., 2020).

    It is the separation, in standard deviations, of two unit-variance Gaussians whose ROC has this
    AUC. AUC 0.5 -> 0, AUC 0.9 -> 1.8124, AUC 1 -> inf. Returns the input's kind (float, numpy array
    or tensor).
    """
    is_tensor = isinstance(auc, torch.Tensor)
    a = auc.detach().double().cpu() if is_tensor else torch.as_tensor(to_numpy(auc, "auc"))
    if torch.any((a < 0) | (a > 1)):
        raise DataError(f"d_prime: AUC must lie in [0, 1], got {a.min().item()}..{a.max().item()}")
    d = math.sqrt(2.0) * torch.special.ndtri(a)
    if is_tensor:
        return d.to(device=auc.device, dtype=auc.dtype if auc.is_floating_point() else torch.float64)
    if d.ndim == 0:
        return float(d)
    return d.numpy()
