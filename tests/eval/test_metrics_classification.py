"""Classification metrics vs scikit-learn on random data, plus hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from audiozoo.errors import DataError
from audiozoo.eval import (
    accuracy,
    average_precision,
    d_prime,
    macro_f1,
    mean_average_precision,
    roc_auc,
    roc_auc_per_class,
    top_k_accuracy,
)

# Both sides compute the same rational quantities in float64; 1e-6 only absorbs summation order.
TOL = 1e-6


@pytest.fixture
def single_label():
    rng = np.random.default_rng(1)
    n, c = 300, 8
    scores = rng.standard_normal((n, c))
    target = rng.integers(0, c, n)
    scores[np.arange(n), target] += 0.8  # better than chance, so the metrics are not all ~1/C
    return scores, target


@pytest.fixture
def multi_label():
    rng = np.random.default_rng(2)
    n, c = 250, 6
    target = (rng.random((n, c)) < 0.25).astype(np.int64)
    scores = rng.standard_normal((n, c)) + 1.0 * target
    return scores, target


@pytest.mark.parity
def test_accuracy_topk_f1_match_sklearn(single_label):
    from sklearn import metrics

    scores, target = single_label
    pred = scores.argmax(1)
    assert accuracy(scores, target) == pytest.approx(metrics.accuracy_score(target, pred), abs=TOL)
    assert accuracy(torch.from_numpy(pred), torch.from_numpy(target)) == pytest.approx(
        metrics.accuracy_score(target, pred), abs=TOL
    )
    for k in (1, 3, 5):
        ref = metrics.top_k_accuracy_score(target, scores, k=k, labels=np.arange(scores.shape[1]))
        assert top_k_accuracy(scores, target, k=k) == pytest.approx(ref, abs=TOL)
    assert macro_f1(scores, target) == pytest.approx(metrics.f1_score(target, pred, average="macro"), abs=TOL)
    # num_classes beyond those seen: absent classes count as F1 = 0, as sklearn with explicit labels.
    ref_all = metrics.f1_score(target, pred, average="macro", labels=np.arange(10), zero_division=0)
    assert macro_f1(pred, target, num_classes=10) == pytest.approx(ref_all, abs=TOL)


@pytest.mark.parity
def test_multilabel_f1_map_auc_match_sklearn(multi_label):
    from sklearn import metrics

    scores, target = multi_label
    assert macro_f1(scores, target, threshold=0.5) == pytest.approx(
        metrics.f1_score(target, scores >= 0.5, average="macro", zero_division=0), abs=TOL
    )
    assert mean_average_precision(scores, target) == pytest.approx(
        metrics.average_precision_score(target, scores, average="macro"), abs=TOL
    )
    assert roc_auc(scores, target) == pytest.approx(metrics.roc_auc_score(target, scores, average="macro"), abs=TOL)
    # Tied scores: AP groups ties into one threshold and AUC counts a tie as 1/2, as sklearn does.
    coarse = np.round(scores, 1)
    np.testing.assert_allclose(
        average_precision(coarse, target), metrics.average_precision_score(target, coarse, average=None), atol=TOL
    )
    np.testing.assert_allclose(
        roc_auc_per_class(coarse, target), metrics.roc_auc_score(target, coarse, average=None), atol=TOL
    )


@pytest.mark.parity
def test_single_label_one_vs_rest_and_binary_match_sklearn(single_label):
    from sklearn import metrics

    scores, target = single_label
    onehot = np.eye(scores.shape[1])[target]
    assert mean_average_precision(scores, target) == pytest.approx(
        metrics.average_precision_score(onehot, scores, average="macro"), abs=TOL
    )
    assert roc_auc(scores, target) == pytest.approx(metrics.roc_auc_score(onehot, scores, average="macro"), abs=TOL)
    binary = (target == 0).astype(int)
    assert roc_auc(scores[:, 0], binary) == pytest.approx(metrics.roc_auc_score(binary, scores[:, 0]), abs=TOL)


@pytest.mark.parity
def test_map_skips_classes_without_positives(multi_label):
    from sklearn import metrics

    scores, target = multi_label
    target = target.copy()
    target[:, 2] = 0  # class 2 has no positive example: AP undefined, skipped (AudioSet convention)
    ap = average_precision(scores, target)
    assert np.isnan(ap[2])
    keep = [0, 1, 3, 4, 5]
    ref = metrics.average_precision_score(target[:, keep], scores[:, keep], average="macro")
    assert mean_average_precision(scores, target) == pytest.approx(ref, abs=TOL)
    assert np.isnan(roc_auc_per_class(scores, target)[2])


def test_average_precision_hand_case():
    # Ranked labels 1, 0, 1, 0: precision at the two hits is 1/1 and 2/3, each hit is half the recall.
    ap = average_precision(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 1, 0]))
    assert ap[0] == pytest.approx(0.5 * 1.0 + 0.5 * 2.0 / 3.0, abs=1e-12)  # exact rational arithmetic


def test_d_prime_hand_values():
    # d' = sqrt(2) * Phi^-1(AUC); Phi^-1(0.9) = 1.2815516 (normal table) -> 1.8124. 1e-4 = table precision.
    assert d_prime(0.5) == pytest.approx(0.0, abs=1e-12)
    assert d_prime(0.9) == pytest.approx(math.sqrt(2) * 1.2815516, abs=1e-4)
    assert d_prime(0.9) == pytest.approx(1.8124, abs=1e-4)
    assert d_prime(0.1) == pytest.approx(-d_prime(0.9), abs=1e-12)  # odd symmetry about AUC 0.5
    out = d_prime(torch.tensor([0.5, 0.9]))
    assert isinstance(out, torch.Tensor) and out.shape == (2,)
    with pytest.raises(DataError, match="AUC"):
        d_prime(1.2)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(DataError, match="shape"):
        accuracy(np.zeros((3, 4)), np.zeros(5, dtype=int))
    with pytest.raises(DataError, match="non-negative integers"):
        accuracy(np.zeros(3), np.array([0.5, 1, 2]))
    with pytest.raises(DataError, match="no class has a positive"):
        mean_average_precision(np.ones((4, 2)), np.zeros((4, 2)))
    with pytest.raises(DataError, match="k must be"):
        top_k_accuracy(np.ones((4, 3)), np.array([0, 1, 2, 0]), k=0)
